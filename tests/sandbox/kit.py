"""Helpers for the sandbox tests (their fixtures are in ``conftest.py``):

- ``sandbox_params(scenario)``: Params for a sandbox target, every name from the example file;
- ``make_state(scenario)``, ``sample(name)``: emulator state, a recorded API response;
- ``LoopThread``: an asyncio loop in a thread, for in-process servers under a synchronous test;
- ``FakeView``: a ``DataPlaneView`` whose answers a test sets directly; the ``app`` role's names.
"""
from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, TypeVar

from runbook_lib.params import Params, load_params
from runbook_lib.sandbox.dataplane_view import CertKind, ProxyPolicy
from runbook_lib.sandbox.scenario import load_scenario
from runbook_lib.sandbox.state import SandboxState

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "parameters" / "staging.example.yaml"
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "gcpdiag"  # vendored: see PROVENANCE.md
TIME_SCALE = 0.02


def sandbox_params(scenario: str = "issue-1278", time_scale: float = TIME_SCALE) -> Params:
    return load_params(EXAMPLE, {"target.name": "sandbox", "target.mode": "sandbox",
                                 "target.scenario": scenario, "target.time_scale": time_scale})


def make_state(scenario: str, **kwargs: Any) -> SandboxState:
    return SandboxState(sandbox_params(scenario), load_scenario(scenario), **kwargs)


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


class LoopThread:
    """Runs coroutines on a private event loop in a daemon thread; ``close()`` stops it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="cp-test-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


PG_APP_USER = "app"
PG_APP_DB = "app"
PG_APP_PASSWORD = "sandbox-app-password"  # a test credential for a throwaway server


@dataclass
class FakeView:
    """A ``DataPlaneView`` with settable answers (the real one reads the API emulator's state)."""

    time_scale: float = 0.02
    policy: ProxyPolicy = field(default_factory=ProxyPolicy)
    certificates: dict[str, CertKind] = field(default_factory=dict)
    default_certificate: CertKind = "valid"
    ws_lifetime: float | None = None
    startup_remaining: float = 0.0
    secrets: dict[str, str] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    dark: bool = False

    def proxy_policy(self) -> ProxyPolicy:
        return self.policy

    def certificate_for(self, domain: str) -> CertKind:
        return self.certificates.get(domain, self.default_certificate)

    def ws_lifetime_s(self) -> float | None:
        return self.ws_lifetime

    def startup_remaining_s(self) -> float:
        return self.startup_remaining

    def secret_problems(self) -> list[str]:
        return [name for name in self.required if name not in self.secrets]

    def secret_value(self, name: str) -> str | None:
        return self.secrets.get(name)

    def blackout(self) -> bool:
        return self.dark
