"""TCP prober: resolve, then open (and drop) a connection to ``host:port``."""
from __future__ import annotations

from runbook_lib.probes.base import Attempt, NetContext, ProbeResult, split_host_port


async def probe(target: str, net: NetContext, deadline_s: float, **_options: object) -> ProbeResult:
    run = Attempt("tcp", target, net)

    async def steps() -> None:
        host, port = split_host_port(target)
        await run.connect(await run.resolve(host, port))

    return await run.run(steps(), deadline_s)
