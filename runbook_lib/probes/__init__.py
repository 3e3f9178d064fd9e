"""Active probes, one per protocol, all with the shape described in ``base``.

    result = await PROBERS["tls"]("api.example.com:443", net, deadline_s=10)
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from runbook_lib.probes import dns, http, postgres, tcp, tls, websocket
from runbook_lib.probes.base import PHASES, NetContext, ProbeResult, Reason

Prober = Callable[..., Awaitable[ProbeResult]]

PROBERS: dict[str, Prober] = {
    "dns": dns.probe,
    "tcp": tcp.probe,
    "tls": tls.probe,
    "http": http.probe,
    "postgres": postgres.probe,
    "websocket": websocket.probe,
}


async def run_all(jobs: dict[str, Awaitable[Any]]) -> dict[str, Any]:
    """Await every job concurrently; the answers keep the jobs' keys (evidence keys, usually)."""
    results = await asyncio.gather(*jobs.values())
    return dict(zip(jobs.keys(), results))


__all__ = ["PHASES", "PROBERS", "NetContext", "ProbeResult", "Reason", "Prober", "run_all"]
