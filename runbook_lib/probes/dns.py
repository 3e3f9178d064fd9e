"""DNS prober: does the name resolve, to what, and how long did it take."""
from __future__ import annotations

from runbook_lib.probes.base import Attempt, NetContext, ProbeResult, split_host_port


async def probe(target: str, net: NetContext, deadline_s: float, **_options: object) -> ProbeResult:
    """Resolve ``host`` or ``host:port`` (port 443 by default); ``info["addresses"]`` lists the answer."""
    run = Attempt("dns", target, net)

    async def steps() -> None:
        host, port = split_host_port(target, default_port=443)
        await run.resolve(host, port)

    return await run.run(steps(), deadline_s)
