"""Fixtures for the sandbox control-plane tests (imported by those tests, not auto-loaded, so they
never clash with the data-plane fixtures in ``conftest.py``).

- ``sandbox_params(scenario)``: Params for a sandbox target, every name from the example file;
- ``LoopThread``: an asyncio loop in a thread, for in-process servers under a synchronous test;
- ``sandbox``: a real sandbox process (``manager.running``), issue-1278 unless parametrized
  indirectly with another scenario; yields ``RunningSandbox`` (info, effective Params, workdir).
"""
from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any, Awaitable, Iterator, TypeVar

import pytest

from runbook_lib.params import Params, dump_params, load_params
from runbook_lib.sandbox.manager import RunningSandbox, running
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


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


@pytest.fixture
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningSandbox]:
    scenario = getattr(request, "param", "issue-1278")
    params_file = tmp_path / "sandbox.yaml"
    params_file.write_text(dump_params(sandbox_params(scenario)))
    with running(params_file, scenario, tmp_path / "sandbox") as sb:
        yield sb
