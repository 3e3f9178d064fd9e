"""Helpers for end-to-end tests against a real sandbox (servers on loopback, started per test)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from runbook_lib.util.aio import run_sync
from runbook_lib.checks import evaluate_all
from runbook_lib.gather.environment import open_environment
from runbook_lib.sandbox.manager import RunningSandbox, running

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "parameters" / "sandbox.yaml"


@contextlib.contextmanager
def sandbox(scenario: str, *overrides: str) -> Iterator[RunningSandbox]:
    with running(PARAMS, scenario, overrides=list(overrides)) as sb:
        yield sb


def diagnose(sb: RunningSandbox, phase: str = "diagnose", *, golden_path: bool = False):
    env = open_environment(sb.params)
    ev = run_sync(env.gather(phase, golden_path=golden_path))
    return ev, evaluate_all(ev, sb.params)


def mutations(sb: RunningSandbox) -> list[dict]:
    """Every mutating request the emulator has seen (its own request log, all APIs), except the
    diagnosis' own Connectivity Test, which every gather creates and deletes (it changes nothing)."""
    seen = []
    for api in ("vpcaccess", "sqladmin", "compute", "secretmanager", "run"):
        log = httpx.get(sb.control_url(api) + "/_sandbox/requests", timeout=5).json()["requests"]
        seen += [r for r in log if r["method"] in ("POST", "PATCH", "PUT", "DELETE") and not r["path"].endswith("/getHealth")
                 and "/connectivityTests" not in r["path"]]
    return seen


@pytest.fixture
def sandbox_factory():
    return sandbox
