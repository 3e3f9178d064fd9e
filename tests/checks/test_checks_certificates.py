"""Certificate checks: the client's view step by step, then the managed certificate and the proxy."""
from __future__ import annotations

from datetime import timedelta

from runbook_lib.checks import certificates
from runbook_lib.probes.base import Reason
from runbook_lib.results import ResultSet, Status
from tests.checks.checks_testkit import (
    API,
    FRONTEND,
    NOW,
    cert_info,
    certificates_body,
    failed,
    healthy_evidence,
    make_params,
    ok,
    probe,
    proxy_body,
    sample,
)

PARAMS = make_params()
STEPS = ["dns", "tcp", "handshake", "chain", "hostname", "expiry"]


def results(ev, params=PARAMS) -> ResultSet:
    return ResultSet(results=certificates.evaluate(ev, params))


def test_healthy_ids_and_passes():
    rs = results(healthy_evidence())
    assert [r.id for r in rs] == ([f"tls.staging.{s}" for s in STEPS] + [f"tls.api-staging.{s}" for s in STEPS]
                                  + ["cert.managed", "cert.attached"])
    assert all(r.status is Status.PASS for r in rs)


def test_recorded_failed_not_visible_sample_gives_dns_advice():
    params = make_params(**{"domains.frontend": "natka123.com", "domains.api": "second.natka123.com",
                            "load_balancer.https_proxy": "https-lb-proxy"})
    ev = healthy_evidence()
    ev.api["compute.sslCertificates"] = ok("compute.sslCertificates", sample("lb3--compute-sslCertificates.json"))
    ev.api["compute.targetHttpsProxy"] = ok("compute.targetHttpsProxy",
                                            sample("lb3--compute-targetHttpsProxies.json")["items"][0])
    rs = results(ev, params)
    managed = rs.by_id("cert.managed")
    assert managed.status is Status.FAIL
    assert managed.observed.startswith("cert1 PROVISIONING")
    assert "FAILED_NOT_VISIBLE" in managed.reason
    assert ("point natka123.com and second.natka123.com A/AAAA records at the load balancer IP" in managed.remediation
            and "then wait; see the per-domain status" in managed.remediation)
    attached = rs.by_id("cert.attached")
    assert attached.status is Status.WARN and "certificate map cert-map" in attached.reason  # map takes precedence


def test_no_managed_certificate_fails_with_create_command():
    ev = healthy_evidence()
    ev.api["compute.sslCertificates"] = ok("compute.sslCertificates", sample("lb3--compute-sslCertificates.json"))
    ev.api["compute.targetHttpsProxy"] = ok("compute.targetHttpsProxy", proxy_body(certs=("staging-legacy-cert",)))
    rs = results(ev)
    managed = rs.by_id("cert.managed")
    assert managed.status is Status.FAIL and managed.observed == "none"
    assert ("`gcloud compute ssl-certificates create staging-netrasystems-cert "
            "--domains=staging.netrasystems.ai,api-staging.netrasystems.ai --global --project netra-staging`") in managed.remediation
    attached = rs.by_id("cert.attached")
    assert attached.status is Status.FAIL
    # added BESIDE the certificate served now (issue 10): never a list without the current one
    assert ("gcloud compute target-https-proxies update staging-https-proxy "
            "--ssl-certificates=staging-legacy-cert,staging-netrasystems-cert") in attached.remediation
    assert "cert.detach-legacy" in attached.remediation


def test_caa_failure_gives_caa_advice_and_plain_provisioning_warns():
    ev = healthy_evidence()
    ev.api["compute.sslCertificates"] = ok("compute.sslCertificates",
                                           certificates_body(status="PROVISIONING", domain_status="FAILED_CAA_FORBIDDEN"))
    assert "CAA" in results(ev).by_id("cert.managed").remediation
    ev.api["compute.sslCertificates"] = ok("compute.sslCertificates",
                                           certificates_body(status="PROVISIONING", domain_status="PROVISIONING"))
    r = results(ev).by_id("cert.managed")
    assert r.status is Status.WARN and "wait and re-run" in r.reason


def test_certificate_covering_one_domain_only_is_not_enough():
    ev = healthy_evidence()
    ev.api["compute.sslCertificates"] = ok("compute.sslCertificates", certificates_body(domains=(API,)))
    r = results(ev).by_id("cert.managed")
    assert r.status is Status.FAIL and "partial" in r.observed


def test_wildcard_managed_certificate_covers_both():
    ev = healthy_evidence()
    ev.api["compute.sslCertificates"] = ok("compute.sslCertificates", certificates_body(domains=("*.netrasystems.ai",)))
    assert results(ev).by_id("cert.managed").status is Status.PASS


def test_hostname_mismatch_fails_hostname_only():
    ev = healthy_evidence()
    bad = cert_info(["*.staging.netrasystems.ai"], verified=False, verify_error="Hostname mismatch")
    ev.probes[f"tls.{API}"] = [probe("tls", f"{API}:443", False, reason=Reason.hostname_mismatch,
                                     detail="certificate does not name the host", cert=bad)]
    rs = results(ev)
    assert rs.by_id("tls.api-staging.handshake").status is Status.PASS
    assert rs.by_id("tls.api-staging.chain").status is Status.PASS
    host = rs.by_id("tls.api-staging.hostname")
    assert host.status is Status.FAIL and host.observed == "*.staging.netrasystems.ai"
    assert "gcloud compute ssl-certificates create" in host.remediation


def test_untrusted_chain_fails():
    ev = healthy_evidence()
    self_signed = cert_info([FRONTEND, API], verified=False, verify_error="self-signed certificate", issuer="CN=me")
    ev.probes[f"tls.{FRONTEND}"] = [probe("tls", f"{FRONTEND}:443", False, reason=Reason.tls_verify, cert=self_signed)]
    r = results(ev).by_id("tls.staging.chain")
    assert r.status is Status.FAIL and "self-signed" in r.observed


def test_expiry_uses_evidence_now():
    ev = healthy_evidence()
    for days, status in ((80, Status.PASS), (20, Status.WARN), (3, Status.FAIL), (-1, Status.FAIL)):
        ev.probes[f"tls.{API}"] = [probe("tls", f"{API}:443", cert=cert_info([FRONTEND, API], days_left=days))]
        r = results(ev).by_id("tls.api-staging.expiry")
        assert r.status is status, (days, r)
    assert "expired" in r.observed


def test_an_unreadable_expiry_date_is_an_error_with_the_value_not_a_crash():
    ev = healthy_evidence()
    cert = {**cert_info([FRONTEND, API]), "not_after": "someday"}
    ev.probes[f"tls.{API}"] = [probe("tls", f"{API}:443", cert=cert)]
    rs = results(ev)
    r = rs.by_id("tls.api-staging.expiry")
    assert r.status is Status.ERROR and "'someday'" in r.reason
    assert not any(x.id.endswith(".internal") for x in rs)


def test_tcp_refused_skips_later_steps_with_the_reason():
    ev = healthy_evidence()
    ev.probes[f"tcp.{FRONTEND}"] = [probe("tcp", f"{FRONTEND}:443", False, reason=Reason.refused,
                                          detail="connection refused (nothing listening)")]
    rs = results(ev)
    assert rs.by_id("tls.staging.tcp").status is Status.FAIL
    for step in ("handshake", "chain", "hostname", "expiry"):
        r = rs.by_id(f"tls.staging.{step}")
        assert r.status is Status.SKIP and r.reason == "TCP connect failed: refused"


def test_dns_failure_and_handshake_timeout():
    ev = healthy_evidence()
    ev.probes[f"dns.{API}"] = [probe("dns", f"{API}:443", False, reason=Reason.dns, detail="name does not resolve")]
    rs = results(ev)
    assert rs.by_id("tls.api-staging.dns").status is Status.FAIL
    assert "A/AAAA records for api-staging.netrasystems.ai" in rs.by_id("tls.api-staging.dns").remediation
    assert rs.by_id("tls.api-staging.tcp").reason == "DNS resolution failed: dns"
    ev = healthy_evidence()
    ev.probes[f"tls.{API}"] = [probe("tls", f"{API}:443", False, reason=Reason.timeout, detail="no answer during tls")]
    rs = results(ev)
    assert rs.by_id("tls.api-staging.handshake").status is Status.FAIL
    assert rs.by_id("tls.api-staging.hostname").reason == "TLS handshake failed: timeout"


def test_override_is_named_in_dns_observed():
    ev = healthy_evidence()
    ev.probes[f"dns.{API}"] = [probe("dns", f"{API}:443", addresses=["127.0.0.1"], override=True)]
    assert "connect_to override" in results(ev).by_id("tls.api-staging.dns").observed


def test_missing_probe_is_error_and_failed_api_is_error():
    ev = healthy_evidence()
    del ev.probes[f"dns.{FRONTEND}"]
    ev.api["compute.sslCertificates"] = failed("compute.sslCertificates", "permission", "needs roles/compute.viewer", 403)
    ev.api["compute.targetHttpsProxy"] = failed("compute.targetHttpsProxy", "not_found", "target HTTPS proxy not found", 404)
    rs = results(ev)
    assert rs.by_id("tls.staging.dns").status is Status.ERROR
    assert rs.by_id("tls.staging.expiry").status is Status.SKIP
    assert rs.by_id("cert.managed").status is Status.ERROR and "roles/compute.viewer" in rs.by_id("cert.managed").reason
    attached = rs.by_id("cert.attached")
    assert attached.status is Status.FAIL and "target-https-proxies create staging-https-proxy" in attached.remediation


def test_not_yet_valid_certificate():
    ev = healthy_evidence()
    cert = cert_info([FRONTEND, API])
    cert["not_before"] = (NOW + timedelta(days=1)).isoformat()
    ev.probes[f"tls.{API}"] = [probe("tls", f"{API}:443", cert=cert)]
    assert results(ev).by_id("tls.api-staging.expiry").status is Status.FAIL


def test_refused_certificate_that_could_not_be_fetched_skips_with_the_reason():
    ev = healthy_evidence()
    ev.probes[f"tls.{API}"] = [probe("tls", f"{API}:443", False, reason=Reason.tls_verify,
                                     cert_error="deadline passed before the certificate could be fetched")]
    rs = results(ev)
    assert rs.by_id("tls.api-staging.handshake").status is Status.PASS
    for step in ("chain", "hostname", "expiry"):
        r = rs.by_id(f"tls.api-staging.{step}")
        assert r.status is Status.SKIP and "deadline passed" in r.reason
