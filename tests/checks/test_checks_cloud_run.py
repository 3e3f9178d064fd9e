"""Cloud Run revision checks (issue 10): timeout, startup probe vs startup time, min instances, CPU boost,
and the deprecated-domain check judged from value shapes (issue 11: no value reaches the evidence)."""
from __future__ import annotations

import json

from runbook_lib.checks import cloud_run
from runbook_lib.gcp import run
from runbook_lib.results import ResultSet, Severity, Status
from tests.checks.checks_testkit import healthy_evidence, make_params, ok, run_services_body, startup_metric

PARAMS = make_params()
SVC = "netra-backend-staging"


def results(ev, params=PARAMS) -> ResultSet:
    return ResultSet(results=cloud_run.evaluate(ev, params))


def with_template(**changes):
    body = run_services_body()
    body["services"][0]["template"].update(changes)
    ev = healthy_evidence()
    ev.api["run.services"] = ok("run.services", body)
    return ev, body


def test_timeout_below_the_websocket_lifetime_fails_with_the_command():
    ev, _ = with_template(timeout="300s")
    r = results(ev).by_id(f"run.{SVC}.timeout")
    assert r.status is Status.FAIL and r.observed == "timeout 300 s" and r.expected.startswith(">= 600 s")
    assert r.remediation == f"`gcloud run services update {SVC} --region us-central1 --project netra-staging --timeout=600`"
    ev, body = with_template()
    del body["services"][0]["template"]["timeout"]
    assert results(ev).by_id(f"run.{SVC}.timeout").observed == "timeout 300 s (Cloud Run's default)"


def test_startup_uses_the_measured_p95_and_the_default_probe():
    ev, _ = with_template()  # no startupProbe: the default TCP probe, 1 x 240 s; measured 30 s
    r = results(ev).by_id(f"run.{SVC}.startup")
    assert r.status is Status.PASS and r.evidence == ["run.services", "monitoring.startup_latencies"]
    assert r.observed == ("probe window 240 s (the default TCP probe: 1 x 240 s); startup 30 s "
                          "(measured p95 of revision netra-backend-staging-00042-abc, 3 points (monitoring.startup_latencies))")


def test_startup_longer_than_the_probe_but_within_googles_cap_sets_the_probe():
    ev, body = with_template()
    body["services"][0]["template"]["containers"][0]["startupProbe"] = {
        "tcpSocket": {"port": 8080}, "periodSeconds": 10, "failureThreshold": 3}
    ev.metrics["monitoring.startup_latencies"] = startup_metric([300_000.0] * 3)
    r = results(ev).by_id(f"run.{SVC}.startup")
    assert r.status is Status.FAIL and "probe window 30 s (0 + 3 x 10 s); startup 300 s" in r.observed
    assert "initialDelaySeconds 60, periodSeconds 10, failureThreshold 24" in r.remediation


def test_startup_beyond_the_cap_explains_what_decides_instead():
    ev, body = with_template(scaling={"maxInstanceCount": 100})   # no warm instance
    del ev.metrics["monitoring.startup_latencies"]  # no measurement: the incident's 600 s
    r = results(ev).by_id(f"run.{SVC}.startup")
    assert r.status is Status.FAIL and "startup 600 s (cloud_run.startup_s)" in r.observed
    assert "no startup probe can wait 600 s" in r.reason and "240 s" in r.reason
    assert "startup CPU boost" in r.reason and "min instances" in r.reason
    assert "--cpu-boost --min-instances=1" in r.remediation and r.evidence == ["run.services"]


def test_startup_time_scale_comes_from_the_evidence():
    ev = healthy_evidence(time_scale=0.05)  # 30 000 ms x 0.05 on the wire = 30 s real
    assert "startup 30 s" in results(ev).by_id(f"run.{SVC}.startup").observed


def test_min_instances_and_cpu_boost():
    ev, body = with_template(scaling={"maxInstanceCount": 100})
    body["services"][0]["template"]["containers"][0]["resources"].pop("startupCpuBoost")
    rs = results(ev)
    mi, boost = rs.by_id(f"run.{SVC}.min_instances"), rs.by_id(f"run.{SVC}.cpu_boost")
    assert mi.status is Status.FAIL and mi.observed == "min instances 0" and mi.severity is Severity.medium
    assert "--min-instances=1" in mi.remediation
    assert boost.status is Status.FAIL and boost.observed == "startup CPU boost off" and "--cpu-boost" in boost.remediation
    off = results(ev, make_params(**{"cloud_run.startup_cpu_boost": False})).by_id(f"run.{SVC}.cpu_boost")
    assert off.status is Status.SKIP and off.reason
    body["services"][0]["scaling"] = {"minInstanceCount": 2}  # service-level min instances count too
    assert results(ev).by_id(f"run.{SVC}.min_instances").status is Status.PASS


CREDENTIALS = {
    "DATABASE_URL": "postgresql://netra:pa/ss@w0rd!@10.20.0.3:5432/netra?sslmode=require",
    "PGPASSWORD_LINE": "PGPASSWORD=hunter2-very-secret psql -h db",
    "AUTH_HEADER": "Authorization: Basic bmV0cmE6c3VwZXJzZWNyZXQ=",
    "WS_URL": "wss://api.staging.netrasystems.ai/ws?token=abc123-private",
    "HOOK": "https://hooks.example.com/services/T0000/B0000/XXXXsecretXXXX1234567890",
}


def test_gather_keeps_shapes_never_values_and_the_domain_check_reads_them():
    body = run_services_body(**CREDENTIALS)
    body["services"][0]["template"]["containers"][0]["args"] = ["--db", CREDENTIALS["DATABASE_URL"]]
    shaped = run.shape_services(body, PARAMS)
    text = json.dumps(shaped)
    for secret in ("pa/ss", "w0rd", "hunter2", "bmV0cmE6c3VwZXJzZWNyZXQ=", "abc123", "XXXXsecretXXXX"):
        assert secret not in text
    env = {e["name"]: e for e in shaped["services"][0]["template"]["containers"][0]["env"]}
    assert env["DATABASE_URL"]["valueShape"]["url"] == {"scheme": "postgresql", "host": "10.20.0.3", "port": 5432,
                                                        "path": "/netra", "userinfo": True, "query": True}
    assert env["WS_URL"]["valueShape"]["deprecated"] == ["*.staging.netrasystems.ai"]
    assert env["WS_URL"]["valueShape"]["replaceable"] == ["api.staging.netrasystems.ai"]
    assert env["AUTH_HEADER"]["valueShape"]["length"] == len(CREDENTIALS["AUTH_HEADER"])
    assert "<" in env["HOOK"]["valueShape"]["url"]["path"]  # a token-like path segment: its length only
    assert shaped["services"][0]["template"]["containers"][0]["argsShape"][1]["url"]["host"] == "10.20.0.3"
    # a fingerprint tells equal values apart within one gather, and differs between gathers (per-run key)
    again = run.shape_services(body, PARAMS)
    fp = lambda b: b["services"][0]["template"]["containers"][0]["env"][0]["valueShape"]["fingerprint"]  # noqa: E731
    assert fp(shaped) != fp(again)  # two random 256-bit keys
    assert fp(run.shape_services(body, PARAMS, key=b"k" * 32)) == fp(run.shape_services(body, PARAMS, key=b"k" * 32))
    ev = healthy_evidence()
    ev.api["run.services"] = ok("run.services", shaped)
    r = results(ev).by_id(f"run.{SVC}.domains")
    assert r.status is Status.FAIL and r.observed == "WS_URL references *.staging.netrasystems.ai"
    assert "replaces api.staging.netrasystems.ai with api-staging.netrasystems.ai" in r.remediation
    assert "abc123" not in r.model_dump_json()


def test_host_replacement_is_whole_name_only():
    assert run.replace_host("https://api.staging.netrasystems.ai/x", "api.staging.netrasystems.ai",
                            "api-staging.netrasystems.ai") == "https://api-staging.netrasystems.ai/x"
    for other in ("https://xapi.staging.netrasystems.ai", "https://api.staging.netrasystems.ai.evil.com"):
        assert run.replace_host(other, "api.staging.netrasystems.ai", "new.example.com") == other


def test_unmeasured_startup_with_boost_and_warm_instances_is_a_warning():
    ev = healthy_evidence()   # boost on, 1 warm instance
    del ev.metrics["monitoring.startup_latencies"]
    r = results(ev).by_id(f"run.{SVC}.startup")
    assert r.status is Status.WARN and "not measured" in r.reason and "1 warm instance(s) are in place" in r.reason
    ev.metrics["monitoring.startup_latencies"] = startup_metric([600_000.0] * 3)   # measured: the cap decides
    assert results(ev).by_id(f"run.{SVC}.startup").status is Status.FAIL
