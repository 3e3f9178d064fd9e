"""Sandboxes for the end-to-end tests: real servers on loopback, one process per sandbox.

- ``sandbox(scenario, *overrides)``: a sandbox for the block; ``diagnose(sb)``: Phase 1 (or 3)
  gathered and evaluated in-process; ``mutations(sb)`` and the emulator's fault and request-log
  hooks (``inject_fault``, ``clear_faults``, ``requests_seen``, ``mutating``, ``clear_requests``).
- fixture ``shared_sandbox(scenario)``: one sandbox per scenario for the whole session and its
  first Phase 1 diagnosis, which any number of tests read (``.ev``, ``.results``); at most one
  test changes that sandbox, inside ``with shared.claim() as sb:`` (the sandbox stops when that
  block ends). A sandbox start and a diagnosis take many seconds on a 2-core machine, and a
  diagnosis changes nothing, so tests that only look at the first diagnosis of a scenario share it.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from runbook_lib.checks import evaluate_all
from runbook_lib.evidence import Evidence
from runbook_lib.gather.environment import open_environment
from runbook_lib.results import ResultSet
from runbook_lib.sandbox.manager import RunningSandbox, running
from runbook_lib.util.aio import run_sync

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


# --- the sandbox emulator's test hooks -----------------------------------------------------------

def inject_fault(sb: RunningSandbox, path_prefix: str, kind: str, count: int = 1, **extra: Any) -> None:
    """The next ``count`` requests whose path starts with ``path_prefix`` misbehave as ``kind``.

    The emulator keeps one fault list and one request log for all five APIs (on any port).
    """
    r = httpx.post(sb.control_url() + "/_sandbox/faults", timeout=5,
                   json={"path_prefix": path_prefix, "kind": kind, "count": count, **extra})
    r.raise_for_status()


def clear_faults(sb: RunningSandbox) -> None:
    httpx.delete(sb.control_url() + "/_sandbox/faults", timeout=5).raise_for_status()


def requests_seen(sb: RunningSandbox) -> list[dict[str, Any]]:
    """The emulator's request log, every API (api, method, path, status, fault; never a body)."""
    return httpx.get(sb.control_url() + "/_sandbox/requests", timeout=5).json()["requests"]


def mutating(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in requests if r["method"] not in ("GET", "HEAD") and not r["path"].endswith("/getHealth")]


def clear_requests(sb: RunningSandbox) -> None:
    httpx.delete(sb.control_url() + "/_sandbox/requests", timeout=5).raise_for_status()


# --- sandboxes shared by several tests -------------------------------------------------------------

class SharedSandbox:
    """A sandbox of ``scenario`` and its first Phase 1 diagnosis (``ev``, ``results``), taken right
    after the start; ``claim()`` hands the running sandbox to the one test that changes it."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self._stack = contextlib.ExitStack()
        self.sb: RunningSandbox = self._stack.enter_context(sandbox(scenario))
        try:
            self.ev: Evidence
            self.results: ResultSet
            self.ev, self.results = diagnose(self.sb)
        except BaseException:
            self._stack.close()
            raise
        self._claimed_by: str | None = None

    @property
    def params(self):
        return self.sb.params

    @contextlib.contextmanager
    def claim(self, by: str = "a test") -> Iterator[RunningSandbox]:
        """The running sandbox, for one test only; it stops when the block ends."""
        assert self._claimed_by is None, (
            f"shared sandbox {self.scenario} was already changed by {self._claimed_by}; {by} needs its own")
        self._claimed_by = by
        try:
            yield self.sb
        finally:
            self.close()

    def close(self) -> None:
        self._stack.close()


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[Callable[[str], SharedSandbox]]:
    """``shared_sandbox(scenario)``: the session's ``SharedSandbox`` of that scenario (started on
    first use). Read ``.ev``/``.results`` freely; change the sandbox only inside ``.claim()``."""
    pool: dict[str, SharedSandbox] = {}

    def get(scenario: str) -> SharedSandbox:
        if scenario not in pool:
            pool[scenario] = SharedSandbox(scenario)
        return pool[scenario]

    try:
        yield get
    finally:
        for shared in pool.values():
            shared.close()
