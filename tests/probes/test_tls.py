"""TLS prober against the SNI-routing local listener: valid, wrong name, expired, unknown CA."""
from __future__ import annotations

import asyncio
import datetime as dt

from runbook_lib.probes import tls
from runbook_lib.probes.base import NetContext, Reason


def test_valid_certificate_via_override_sends_the_original_name(lb, certs) -> None:
    net = NetContext(connect_to=lb.route(lb.api), ca_bundle=certs.ca_bundle)
    result = asyncio.run(tls.probe(f"{lb.api}:443", net, 3))
    assert result.ok, result.detail
    assert result.phases["resolve"] == 0.0
    assert result.phases["connect"] > 0 and result.phases["tls"] > 0
    assert result.info["override"] is True and result.info["addresses"] == ["127.0.0.1"]
    assert lb.sni_seen[-1] == lb.api  # the listener refuses names it does not serve
    cert = result.info["cert"]
    assert cert["verified"] is True and cert["verify_error"] == ""
    assert cert["subject"] == lb.api and lb.api in cert["sans"]
    assert "runbook sandbox CA" in cert["issuer"]
    assert dt.datetime.fromisoformat(cert["not_after"]) > dt.datetime.fromisoformat(cert["not_before"])
    assert int(cert["serial"], 16) > 0
    assert result.info["tls_version"].startswith("TLS")
    assert result.info["cipher"]


def test_resolving_localhost_without_override(lb, net) -> None:
    result = asyncio.run(tls.probe(f"localhost:{lb.tls_port}", net, 3))
    assert result.ok, result.detail
    assert result.info["override"] is False
    assert result.phases["resolve"] > 0


def test_hostname_mismatch_still_reports_the_served_certificate(lb, certs) -> None:
    net = NetContext(connect_to=lb.route(lb.mismatch), ca_bundle=certs.ca_bundle)
    result = asyncio.run(tls.probe(f"{lb.mismatch}:443", net, 3))
    assert not result.ok
    assert result.reason is Reason.hostname_mismatch, result.detail
    assert result.phases["tls"] > 0  # the handshake completed; the answer was "no"
    cert = result.info["cert"]
    assert cert["verified"] is False
    assert cert["sans"] == [lb.other]
    assert "mismatch" in cert["verify_error"].lower()
    assert lb.sni_seen[-1] == lb.mismatch  # the unverified second look sent the same name


def test_server_name_option_sets_sni_and_the_checked_name(lb, certs) -> None:
    net = NetContext(connect_to=lb.route(lb.mismatch), ca_bundle=certs.ca_bundle)
    result = asyncio.run(tls.probe(f"{lb.mismatch}:443", net, 3, server_name=lb.other))
    assert result.ok, result.detail
    assert lb.sni_seen[-1] == lb.other and result.info["server_name"] == lb.other


def test_expired_certificate(lb, certs) -> None:
    net = NetContext(connect_to=lb.route(lb.expired), ca_bundle=certs.ca_bundle)
    result = asyncio.run(tls.probe(f"{lb.expired}:443", net, 3))
    assert not result.ok
    assert result.reason is Reason.expired, result.detail
    cert = result.info["cert"]
    assert cert["verified"] is False and "expired" in cert["verify_error"]
    assert dt.datetime.fromisoformat(cert["not_after"]) < dt.datetime.now(dt.timezone.utc)


def test_unknown_ca_without_bundle(lb) -> None:
    net = NetContext(connect_to=lb.route(lb.api))  # certifi's roots do not know the local CA
    result = asyncio.run(tls.probe(f"{lb.api}:443", net, 3))
    assert not result.ok
    assert result.reason is Reason.tls_verify, result.detail
    assert result.info["cert"]["subject"] == lb.api
    assert result.info["cert"]["verified"] is False


def test_sni_the_listener_does_not_serve_is_a_tls_failure(lb, certs) -> None:
    net = NetContext(connect_to=lb.route("unknown.example.test"), ca_bundle=certs.ca_bundle)
    result = asyncio.run(tls.probe("unknown.example.test:443", net, 3))
    assert not result.ok
    assert result.reason is Reason.reset  # the listener hangs up on names it does not serve
    assert "cert" not in result.info


def test_refused(closed_port: int, net) -> None:
    result = asyncio.run(tls.probe(f"127.0.0.1:{closed_port}", net, 2))
    assert result.reason is Reason.refused
    assert result.phases["connect"] == 0.0 and result.phases["tls"] == 0.0


def test_timeout_names_the_tls_phase(blackhole: int, net) -> None:
    result = asyncio.run(tls.probe(f"127.0.0.1:{blackhole}", net, 0.3))
    assert result.reason is Reason.timeout
    assert "no answer during tls" in result.detail
    assert result.phases["connect"] > 0 and result.phases["tls"] == 0.0


def test_reset_during_handshake(resetter: int, net) -> None:
    result = asyncio.run(tls.probe(f"127.0.0.1:{resetter}", net, 2))
    assert result.reason is Reason.reset, result.detail
