"""Shared helpers for the control-plane tests: parameters, recorded samples, a routed MockTransport."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import httpx

from runbook_lib.gcp.client import ApiClient
from runbook_lib.params import Params, load_params

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "parameters" / "staging.example.yaml"
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "gcpdiag"  # vendored: see PROVENANCE.md
FIXTURES = ROOT / "tests" / "fixtures" / "api"


def make_params(**overrides: Any) -> Params:
    """The example staging parameters with dotted overrides (``**{"deadlines.api_s": 1}``)."""
    return load_params(EXAMPLE, overrides)


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


Handler = Callable[[httpx.Request], Any]


def client(handler: Handler, params: Params | None = None, **kw: Any) -> ApiClient:
    params = params or make_params()
    return ApiClient(params.endpoints, params.deadlines, project=params.project,
                     transport=httpx.MockTransport(handler), **kw)


class Router:
    """A MockTransport handler answering ``(METHOD, path)`` with canned JSON, recording requests."""

    def __init__(self, routes: dict[tuple[str, str], Any]):
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"error": {"code": 404, "message": "not routed", "status": "NOT_FOUND"}})
        if callable(answer):
            return answer(request)
        return httpx.Response(200, json=answer)


class SleepRecorder:
    """Replaces ``ApiClient._sleep``: remembers each backoff instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
