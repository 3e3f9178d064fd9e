"""Every probe records where it ran from, for the address it actually dialed (issue 10, vantage)."""
from __future__ import annotations

import asyncio
import socket

from runbook_lib.probes import tcp
from runbook_lib.probes.base import NetContext, vantage


def test_loopback_is_routable_and_public_is_routable():
    v = vantage("127.0.0.1", environ={})
    assert v["routable"] == "yes" and v["private"] is False and v["source"] == "127.0.0.1"
    assert v["host"] == socket.gethostname()


def test_private_address_from_a_hosted_runner_is_not_routable():
    v = vantage("10.20.0.3", environ={"RUNNER_ENVIRONMENT": "github-hosted"})
    assert v["private"] is True
    if "route_error" not in v:  # with a route, the platform decides
        assert v["routable"] == "no" and v["why"] == "a GitHub-hosted runner is outside every VPC"


def test_private_address_inside_cloud_run_is_routable_and_unknown_elsewhere():
    inside = vantage("10.20.0.3", environ={"CLOUD_RUN_JOB": "runbook-probe"})
    elsewhere = vantage("10.20.0.3", environ={})
    if "route_error" not in inside:
        assert inside["routable"] == "yes" and elsewhere["routable"] == "unknown"
    else:  # no route at all from this machine: never routable, whatever the platform says
        assert inside["routable"] == elsewhere["routable"] == "no"


def test_a_probe_records_the_vantage_of_the_address_connect_to_dials():
    async def go():
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        net = NetContext(connect_to={f"db.internal.example:{port}": f"127.0.0.1:{port}"})
        try:
            return await tcp.probe(f"db.internal.example:{port}", net, 5)
        finally:
            server.close()
            await server.wait_closed()

    result = asyncio.run(go())
    assert result.ok
    v = result.info["vantage"]
    assert v["address"] == "127.0.0.1" and v["routable"] == "yes" and v["host"] == socket.gethostname()
