"""HTTP prober and the routed httpx client against the local load balancer."""
from __future__ import annotations

import asyncio

import httpx

from runbook_lib.probes import http
from runbook_lib.probes.base import PHASES, NetContext, Reason
from runbook_lib.redact import MASK


def routed(lb, certs, *names: str) -> NetContext:
    return NetContext(connect_to=lb.route(*names), ca_bundle=certs.ca_bundle)


def test_https_success_times_every_phase(lb, certs) -> None:
    result = asyncio.run(http.probe(f"https://{lb.api}/health", routed(lb, certs, lb.api), 3))
    assert result.ok, result.detail
    assert list(result.phases) == list(PHASES["http"])
    assert result.phases["resolve"] == 0.0  # connect_to override
    for phase in ("connect", "tls", "processing", "transfer"):
        assert result.phases[phase] > 0, phase
    assert result.info["status"] == 200
    assert result.info["http_version"] == "HTTP/1.1"
    assert result.info["body_snippet"] == "ok"
    assert result.info["headers"]["content-type"].startswith("text/plain")
    assert result.info["cert"]["verified"] is True
    assert result.info["override"] is True


def test_override_keeps_host_header_and_sni(lb, certs) -> None:
    result = asyncio.run(http.probe(f"https://{lb.api}/host", routed(lb, certs, lb.api), 3))
    assert result.ok, result.detail
    assert f'"host": "{lb.api}"' in result.info["body_snippet"]
    assert lb.sni_seen[-1] == lb.api


def test_plain_http_resolving_localhost(lb) -> None:
    result = asyncio.run(http.probe(f"http://localhost:{lb.plain_port}/health", NetContext(), 3))
    assert result.ok, result.detail
    assert result.phases["resolve"] > 0 and result.phases["tls"] == 0.0
    assert result.info["override"] is False


def test_status_mismatch(lb, certs) -> None:
    result = asyncio.run(http.probe(f"https://{lb.api}/status/503", routed(lb, certs, lb.api), 3))
    assert not result.ok
    assert result.reason is Reason.http_status
    assert result.detail == "HTTP 503 (expected 200)"
    assert result.info["status"] == 503
    assert result.phases["processing"] > 0


def test_expected_status_list_and_post_body(lb, certs) -> None:
    net = routed(lb, certs, lb.api)
    result = asyncio.run(http.probe(f"https://{lb.api}/status/204", net, 3, expect_status=[200, 204]))
    assert result.ok, result.detail
    posted = asyncio.run(http.probe(f"https://{lb.api}/host", net, 3, method="POST", body={"a": 1}))
    assert posted.ok and '"method": "POST"' in posted.info["body_snippet"]
    assert '{\\"a\\": 1}' in posted.info["body_snippet"]


def test_body_is_capped_and_snippet_redacted(lb, certs) -> None:
    net = routed(lb, certs, lb.api)
    big = asyncio.run(http.probe(f"https://{lb.api}/big", net, 3, max_body=1000))
    assert big.ok and big.info["truncated"] is True and big.info["body_bytes"] == 1000
    assert len(big.info["body_snippet"]) == 512
    leaky = asyncio.run(http.probe(f"https://{lb.api}/leaky", net, 3))
    assert lb.secret_in_body not in leaky.info["body_snippet"]
    assert MASK in leaky.info["body_snippet"]


def test_certificate_problems_are_classified_like_tls(lb, certs) -> None:
    mismatch = asyncio.run(http.probe(f"https://{lb.mismatch}/health", routed(lb, certs, lb.mismatch), 3))
    assert mismatch.reason is Reason.hostname_mismatch, mismatch.detail
    assert mismatch.info["cert"]["sans"] == [lb.other]
    assert mismatch.phases["tls"] > 0 and mismatch.phases["processing"] == 0.0
    expired = asyncio.run(http.probe(f"https://{lb.expired}/health", routed(lb, certs, lb.expired), 3))
    assert expired.reason is Reason.expired, expired.detail
    unknown_ca = asyncio.run(http.probe(f"https://{lb.api}/health", NetContext(connect_to=lb.route(lb.api)), 3))
    assert unknown_ca.reason is Reason.tls_verify, unknown_ca.detail
    assert unknown_ca.info["cert"]["subject"] == lb.api


def test_refused(closed_port: int) -> None:
    result = asyncio.run(http.probe(f"http://127.0.0.1:{closed_port}/", NetContext(), 2))
    assert result.reason is Reason.refused, result.detail
    assert result.phases["connect"] == 0.0


def test_timeout_while_the_server_processes(lb, certs) -> None:
    result = asyncio.run(http.probe(f"https://{lb.api}/slow", routed(lb, certs, lb.api), 0.3))
    assert result.reason is Reason.timeout
    assert "no answer during processing" in result.detail
    assert result.phases["tls"] > 0 and result.phases["processing"] == 0.0


def test_timeout_on_a_silent_peer(blackhole: int) -> None:
    result = asyncio.run(http.probe(f"https://localhost:{blackhole}/", NetContext(), 0.3))
    assert result.reason is Reason.timeout
    assert "no answer during tls" in result.detail


def test_reset(resetter: int) -> None:
    result = asyncio.run(http.probe(f"http://127.0.0.1:{resetter}/", NetContext(), 2))
    assert result.reason is Reason.reset, result.detail


def test_dns_failure() -> None:
    result = asyncio.run(http.probe("https://no-such-host.invalid/", NetContext(), 5))
    assert result.reason is Reason.dns, result.detail


def test_routed_httpx_client(lb, certs) -> None:
    async def fetch() -> tuple[httpx.Response, httpx.Response]:
        async with http.make_async_client(routed(lb, certs, lb.api), 3, base_url=f"https://{lb.api}") as client:
            return await client.get("/host"), await client.get("/status/404")

    ok, missing = asyncio.run(fetch())
    assert ok.status_code == 200 and ok.json()["host"] == lb.api
    assert missing.status_code == 404


def test_routed_httpx_client_raises_httpx_errors(lb, closed_port: int) -> None:
    async def fetch() -> None:
        async with http.make_async_client(NetContext(connect_to=lb.route(lb.api)), 3) as client:
            await client.get(f"https://{lb.api}/health")

    try:
        asyncio.run(fetch())
    except httpx.ConnectError as exc:
        assert "certificate" in str(exc).lower()
    else:
        raise AssertionError("an untrusted certificate must fail")


def test_routed_httpx_client_streams_and_passes_extensions(lb, certs) -> None:
    """The transport hands httpx's extensions (timeouts, trace) to httpcore and streams the body."""
    events: list[str] = []

    async def trace(event: str, _info: dict) -> None:
        events.append(event)

    async def fetch() -> bytes:
        async with http.make_async_client(routed(lb, certs, lb.api), 3) as client:
            async with client.stream("GET", f"https://{lb.api}/big", extensions={"trace": trace}) as resp:
                return b"".join([chunk async for chunk in resp.aiter_bytes()])

    body = asyncio.run(fetch())
    assert len(body) > http.MAX_BODY
    assert "connection.start_tls.complete" in events


def test_routed_httpx_client_maps_refusal_and_timeout(lb, closed_port: int, blackhole: int) -> None:
    async def fetch(port: int, timeout: float) -> None:
        net = NetContext(connect_to={f"{lb.api}:443": f"127.0.0.1:{port}"})
        async with http.make_async_client(net, timeout) as client:
            await client.get(f"https://{lb.api}/health")

    for port, timeout, expected in ((closed_port, 3, httpx.ConnectError), (blackhole, 0.3, httpx.TimeoutException)):
        try:
            asyncio.run(fetch(port, timeout))
        except expected as exc:
            assert exc.request.url.host == lb.api
            assert type(exc.__cause__).__module__.startswith("httpcore")  # the root cause stays visible
        else:
            raise AssertionError(f"{expected.__name__} expected")
