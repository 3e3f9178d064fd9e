"""Remediation for the load balancer and certificates (issue 10): never PATCH a serverless-NEG
backend service; the managed certificate is ADDED beside the current ones; the legacy one goes
only when the managed one is ACTIVE and served (``cert.detach-legacy``)."""
from __future__ import annotations

import asyncio

from runbook_lib.checks import evaluate_all
from runbook_lib.checks.certificates import managed_served
from runbook_lib.evidence import ApiRecord
from runbook_lib.gcp import compute
from runbook_lib.probes.base import Reason
from runbook_lib.remediate.certificate_wait import detach_ready
from runbook_lib.remediate.plan import build_plan
from tests.checks import checks_testkit
from tests.checks.checks_testkit import (
    API,
    FRONTEND,
    certificates_body,
    healthy_evidence,
    make_params,
    ok,
    probe,
    proxy_body,
    serverless_backend_services_body,
    serverless_evidence,
)

PARAMS = make_params()
LEGACY = "staging-legacy-cert"


def plan_for(ev, params=PARAMS):
    return build_plan(evaluate_all(ev, params), ev, params)


def test_serverless_backends_are_never_patched():
    ev = serverless_evidence()
    ev.api["compute.backendServices"] = ok("compute.backendServices",
                                           serverless_backend_services_body(health_checks=True, timeout=600))
    plan = plan_for(ev)
    calls = [c for a in plan.actions for c in a.calls]
    assert not any(c.method == "PATCH" and "/backendServices/" in c.path for c in calls)
    assert not any(c.path.endswith("/healthChecks/staging-backend-health-check") for c in calls)
    manual = {a.id: a for a in plan.actions if a.component == "load_balancer"}
    assert set(manual) == {"lb.serverless.staging-backend-service", "lb.serverless.staging-auth-service"}
    assert all(a.manual for a in manual.values())


def test_instance_group_backends_still_get_their_patches():
    ev = healthy_evidence()
    ev.api["compute.backendServices"] = ok("compute.backendServices",
                                           checks_testkit.backend_services_body(timeout=30))
    ids = {a.id for a in plan_for(ev).actions}
    assert {"lb.timeout.staging-backend-service", "lb.timeout.staging-auth-service"} <= ids


def legacy_evidence():
    """The incident: the proxy serves a legacy self-managed certificate; no managed one exists yet."""
    ev = serverless_evidence()
    legacy = certificates_body(name=LEGACY)["items"][0]
    legacy.pop("managed")
    legacy.update(type="SELF_MANAGED", subjectAlternativeNames=["*.staging.netrasystems.ai"])
    ev.api["compute.sslCertificates"] = ok("compute.sslCertificates", {"items": [legacy]})
    ev.api["compute.targetHttpsProxy"] = ok("compute.targetHttpsProxy", proxy_body(certs=(LEGACY,)))
    return ev


def test_attach_keeps_the_current_certificate_and_detach_depends_on_it():
    plan = plan_for(legacy_evidence())
    actions = {a.id: a for a in plan.actions}
    order = [a.id for a in plan.actions]
    assert order.index("cert.create") < order.index("cert.attach") < order.index("cert.detach-legacy")
    attach = actions["cert.attach"].calls[0]
    assert attach.path == "/compute/v1/projects/netra-staging/targetHttpsProxies/staging-https-proxy/setSslCertificates"
    assert attach.body == {"sslCertificates": [f"projects/netra-staging/global/sslCertificates/{LEGACY}",
                                               "projects/netra-staging/global/sslCertificates/staging-netrasystems-cert"]}
    detach = actions["cert.detach-legacy"]
    assert detach.calls[0].body == {"sslCertificates": ["projects/netra-staging/global/sslCertificates/"
                                                        "staging-netrasystems-cert"]}
    assert "ACTIVE" in detach.risk and "pending" in detach.risk


def test_a_full_proxy_gets_a_manual_step_not_a_replace():
    ev = legacy_evidence()
    ev.api["compute.targetHttpsProxy"] = ok("compute.targetHttpsProxy",
                                            proxy_body(certs=tuple(f"c{i}" for i in range(15))))
    attach = {a.id: a for a in plan_for(ev).actions}["cert.attach"]
    assert attach.manual and "15" in attach.instructions


def test_detach_idempotency_rule():
    action = {a.id: a for a in plan_for(legacy_evidence()).actions}["cert.detach-legacy"]
    before = [ApiRecord(key="audit", ok=True, status=200, body=proxy_body(certs=(LEGACY, "staging-netrasystems-cert")))]
    from runbook_lib.remediate import kinds

    rule = kinds.lookup("cert.detach-legacy")  # registered beside the rule, the applier stays generic
    assert rule.pending(action, before, PARAMS) == action.calls
    after = [ApiRecord(key="audit", ok=True, status=200, body=proxy_body(certs=("staging-netrasystems-cert",)))]
    assert rule.pending(action, after, PARAMS) == []


# -- the wait condition ------------------------------------------------------------------------------

MANAGED_ACTIVE = compute.SslCertificate.from_json(certificates_body()["items"][0] | {"name": "staging-netrasystems-cert"})


def served(domain, serial="abc", ok_=True, sans=(FRONTEND, API)):
    return probe("tls", f"{domain}:443", ok_, reason=None if ok_ else Reason.hostname_mismatch,
                 cert={"sans": list(sans), "serial": serial, "verified": ok_})


def test_managed_served_needs_active_and_both_domains_and_not_a_legacy_serial():
    legacy = compute.SslCertificate.from_json({"name": LEGACY, "certificate": None})
    ok_, how = managed_served({FRONTEND: served(FRONTEND), API: served(API)}, MANAGED_ACTIVE, [legacy])
    assert ok_ and how.startswith("staging-netrasystems-cert is ACTIVE and served for")
    bad, why = managed_served({FRONTEND: served(FRONTEND), API: served(API, ok_=False, sans=("*.staging.netrasystems.ai",))},
                              MANAGED_ACTIVE, [legacy])
    assert not bad and why.startswith(f"{API}: TLS probe failed (hostname_mismatch")
    provisioning = compute.SslCertificate.from_json(certificates_body(status="PROVISIONING")["items"][0])
    assert managed_served({FRONTEND: served(FRONTEND)}, provisioning, [])[0] is False


class FakeApi:
    """Answers the managed certificate's GET from a list of statuses, one per poll."""

    def __init__(self, statuses):
        self.statuses, self.reads = list(statuses), []

    async def read(self, key, api, path, **kw):
        self.reads.append(path)
        if path.endswith(f"/sslCertificates/{LEGACY}"):
            return ApiRecord(key=key, ok=True, status=200, body={"name": LEGACY, "type": "SELF_MANAGED"})
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return ApiRecord(key=key, ok=True, status=200, body=certificates_body(status=status, domain_status=status)["items"][0])


def run_wait(statuses, wait_s=60.0):
    params = make_params(**{"remediation.wait_s": wait_s})
    now, slept = [0.0], []

    async def sleep(s):
        slept.append(s)
        now[0] += s

    async def fake_probe(target, net, deadline_s):
        return served(target.split(":")[0])

    api = FakeApi(statuses)
    result = asyncio.run(detach_ready(api, params, [LEGACY], sleep=sleep, clock=lambda: now[0], probe=fake_probe))
    return result, slept


def test_detach_waits_with_backoff_until_active_and_served():
    (ready, how), slept = run_wait(["PROVISIONING", "PROVISIONING", "PROVISIONING", "ACTIVE"])
    assert ready and "ACTIVE and served" in how
    assert slept == [0.5, 1.0, 2.0]  # exponential backoff, never a busy loop


def test_detach_is_left_pending_with_the_reason_when_never_active():
    (ready, why), slept = run_wait(["PROVISIONING"], wait_s=20)
    assert not ready and why.startswith("left pending after 20 s: staging-netrasystems-cert is PROVISIONING")
    assert f"{LEGACY} stay on staging-https-proxy (still served)" in why
    assert sum(slept) == 20 and max(slept) <= 10


def test_a_certificate_of_another_site_on_the_url_map_stays():
    ev = legacy_evidence()
    other = certificates_body(name="docs-cert")["items"][0]
    other.pop("managed")
    other.update(type="SELF_MANAGED", subjectAlternativeNames=["docs.netrasystems.ai"])
    ev.api["compute.sslCertificates"].body["items"].append(other)
    ev.api["compute.targetHttpsProxy"] = ok("compute.targetHttpsProxy", proxy_body(certs=(LEGACY, "docs-cert")))
    ev.api["compute.urlMap"] = ok("compute.urlMap", {"name": "staging-url-map", "hostRules": [
        {"hosts": [API], "pathMatcher": "api"}, {"hosts": [FRONTEND], "pathMatcher": "web"},
        {"hosts": ["docs.netrasystems.ai"], "pathMatcher": "docs"}]})
    detach = {a.id: a for a in plan_for(ev).actions}["cert.detach-legacy"]
    assert [c.rsplit("/", 1)[-1] for c in detach.calls[0].body["sslCertificates"]] == ["staging-netrasystems-cert",
                                                                                      "docs-cert"]
    assert detach.title.startswith(f"remove {LEGACY} from staging-https-proxy")
