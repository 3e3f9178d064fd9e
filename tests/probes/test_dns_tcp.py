"""DNS and TCP probers against loopback: resolve, refuse, hang, override."""
from __future__ import annotations

import asyncio

from runbook_lib.probes import dns, tcp
from runbook_lib.probes.base import PHASES, NetContext, Reason


def test_dns_resolves_localhost_with_port_defaulting_to_443() -> None:
    result = asyncio.run(dns.probe("localhost", NetContext(), 2))
    assert result.ok, result.detail
    assert "127.0.0.1" in result.info["addresses"]
    assert result.info["override"] is False
    assert result.phases["resolve"] > 0


def test_dns_failure_names_the_reason() -> None:
    result = asyncio.run(dns.probe("no-such-host.invalid", NetContext(), 5))
    assert not result.ok
    assert result.reason is Reason.dns
    assert "does not resolve" in result.detail
    assert list(result.phases) == list(PHASES["dns"])


def test_dns_override_skips_the_resolver() -> None:
    net = NetContext(connect_to={"api.example.test:443": "127.0.0.1:8443"})
    result = asyncio.run(dns.probe("api.example.test", net, 2))
    assert result.ok
    assert result.info["addresses"] == ["127.0.0.1"]
    assert result.info["override"] is True
    assert result.phases["resolve"] == 0.0


def test_tcp_connects(lb) -> None:
    net = NetContext()
    result = asyncio.run(tcp.probe(f"127.0.0.1:{lb.plain_port}", net, 2))
    assert result.ok, result.detail
    assert result.phases["connect"] > 0
    assert result.info["peer"] == f"127.0.0.1:{lb.plain_port}"
    assert result.started_s >= 0 and result.total_s >= result.phases["connect"]


def test_tcp_refused(closed_port: int) -> None:
    result = asyncio.run(tcp.probe(f"127.0.0.1:{closed_port}", NetContext(), 2))
    assert not result.ok
    assert result.reason is Reason.refused
    assert result.phases["connect"] == 0.0


def test_tcp_timeout_when_nobody_answers_the_syn(syn_blackhole: int) -> None:
    result = asyncio.run(tcp.probe(f"127.0.0.1:{syn_blackhole}", NetContext(), 0.3))
    assert not result.ok
    assert result.reason is Reason.timeout
    assert "no answer during connect" in result.detail
    assert result.phases["connect"] == 0.0


def test_tcp_against_a_resetting_server(resetter: int) -> None:
    # TCP only proves the handshake. On loopback the RST can beat our "connected" check, and
    # then it is reported as such; it is never mistaken for a refusal or a timeout.
    for _ in range(5):
        result = asyncio.run(tcp.probe(f"127.0.0.1:{resetter}", NetContext(), 2))
        assert result.ok or (result.reason is Reason.reset and "reset" in result.detail), result


def test_tcp_via_override_keeps_the_name_as_target(lb) -> None:
    net = NetContext(connect_to={"db.example.test:5432": f"127.0.0.1:{lb.plain_port}"})
    result = asyncio.run(tcp.probe("db.example.test:5432", net, 2))
    assert result.ok, result.detail
    assert result.target == "db.example.test:5432"
    assert result.info["override"] is True
    assert result.info["connect_to"] == f"127.0.0.1:{lb.plain_port}"


def test_every_protocol_has_one_prober_of_the_shared_shape() -> None:
    import importlib
    import inspect

    for protocol in PHASES:
        probe = importlib.import_module(f"runbook_lib.probes.{protocol}").probe
        assert inspect.iscoroutinefunction(probe), protocol
        assert list(inspect.signature(probe).parameters)[:3] == ["target", "net", "deadline_s"], protocol


def test_probes_run_concurrently_and_keep_their_own_outcome(lb, closed_port: int) -> None:
    net = NetContext()

    async def both():
        return await asyncio.gather(tcp.probe(f"127.0.0.1:{lb.plain_port}", net, 2),
                                    tcp.probe(f"127.0.0.1:{closed_port}", net, 2))

    up, down = asyncio.run(both())
    assert up.ok and not down.ok
