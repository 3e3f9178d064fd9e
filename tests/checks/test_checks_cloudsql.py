"""Cloud SQL checks, including connection timing with the time scale."""
from __future__ import annotations

import json
from pathlib import Path

from runbook_lib.checks import cloudsql
from runbook_lib.gcp.sqladmin import Instance
from runbook_lib.probes.base import Reason
from runbook_lib.results import ResultSet, Severity, Status
from tests.checks.checks_testkit import failed, healthy_evidence, instance_body, make_params, metric, ok, probe, sample

PARAMS = make_params()
SANDBOX = make_params(**{"target.mode": "sandbox", "target.scenario": "issue-1278", "target.time_scale": 0.02})
IDS = ["sql.exists", "sql.state", "sql.activation_policy", "sql.private_ip", "sql.ssl_required",
       "sql.max_connections", "sql.flags", "sql.connect"]


def results(ev, params=PARAMS) -> ResultSet:
    return ResultSet(results=cloudsql.evaluate(ev, params))


def with_instance(**changes):
    ev = healthy_evidence()
    body = instance_body()
    for dotted, value in changes.items():
        node = body
        *path, last = dotted.split("__")
        for part in path:
            node = node[part]
        node[last] = value
    ev.api["sqladmin.instance"] = ok("sqladmin.instance", body)
    return ev


def test_healthy_instance_passes():
    rs = results(healthy_evidence())
    assert [r.id for r in rs] == IDS and all(r.status is Status.PASS for r in rs)
    assert rs.by_id("sql.flags").severity is Severity.medium and rs.by_id("sql.state").severity is Severity.critical


def test_stopped_instance_fails_with_activation_policy_always():
    # sqladmin v1 has no STOPPED state: a stopped instance is RUNNABLE with activation policy NEVER
    rs = results(with_instance(state="RUNNABLE", settings__activationPolicy="NEVER"))
    for cid in ("sql.state", "sql.activation_policy"):
        r = rs.by_id(cid)
        assert r.status is Status.FAIL
        assert "gcloud sql instances patch netra-staging-db --activation-policy=ALWAYS --project netra-staging" in r.remediation
    assert rs.by_id("sql.state").observed == "RUNNABLE, activation policy NEVER"
    assert "stopped" in rs.by_id("sql.state").reason


def test_other_states():
    assert "restart" in results(with_instance(state="FAILED")).by_id("sql.state").remediation
    assert results(with_instance(state="MAINTENANCE")).by_id("sql.state").status is Status.FAIL
    assert results(with_instance(state="PENDING_CREATE")).by_id("sql.state").status is Status.WARN


def test_no_private_ip_fails():
    ev = with_instance(ipAddresses=[{"type": "PRIMARY", "ipAddress": "34.1.2.3"}])
    r = results(ev).by_id("sql.private_ip")
    assert r.status is Status.FAIL and "PRIVATE address none" in r.observed
    assert "--network=projects/netra-staging/global/networks/staging-vpc" in r.remediation
    other = with_instance(settings__ipConfiguration__privateNetwork="projects/x/global/networks/default")
    assert results(other).by_id("sql.private_ip").status is Status.FAIL


def test_ssl_not_required_fails():
    ev = with_instance(settings__ipConfiguration__sslMode="ALLOW_UNENCRYPTED_AND_ENCRYPTED")
    r = results(ev).by_id("sql.ssl_required")
    assert r.status is Status.FAIL and "--ssl-mode=ENCRYPTED_ONLY" in r.remediation
    legacy = with_instance(settings__ipConfiguration__sslMode="", settings__ipConfiguration__requireSsl=True)
    assert results(legacy).by_id("sql.ssl_required").status is Status.PASS


def test_recorded_mysql_instance_is_judged_without_guessing():
    ev = healthy_evidence()
    ev.api["sqladmin.instance"] = ok("sqladmin.instance", sample("cloudsql1--cloudsql-instances.json")["items"][0])
    rs = results(ev)
    assert rs.by_id("sql.private_ip").status is Status.FAIL  # private-network, not staging-vpc
    assert rs.by_id("sql.ssl_required").status is Status.FAIL
    assert rs.by_id("sql.max_connections").status is Status.WARN  # unknown limit is not a pass


def test_max_connections_below_minimum_and_exhausted():
    flags = [{"name": "max_connections", "value": "50"}, {"name": "statement_timeout", "value": "30000"},
             {"name": "lock_timeout", "value": "10000"}]
    r = results(with_instance(settings__databaseFlags=flags)).by_id("sql.max_connections")
    assert r.status is Status.FAIL and "max_connections 50 (flag)" in r.observed
    assert "max_connections=100" in r.remediation and "statement_timeout=30000" in r.remediation
    ev = healthy_evidence()
    ev.metrics["monitoring.sql_backends"] = metric("monitoring.sql_backends", "x", [150, 200, 190])
    r = results(ev).by_id("sql.max_connections")
    assert r.status is Status.FAIL and "peak 200 backends" in r.observed and "max_connections=250" in r.remediation


def test_tier_default_is_used_when_the_flag_is_unset():
    r = results(with_instance(settings__databaseFlags=[], settings__tier="db-f1-micro")).by_id("sql.max_connections")
    assert r.status is Status.FAIL and "25 (default for tier db-f1-micro)" in r.observed


def test_missing_flags_warn_medium():
    r = results(with_instance(settings__databaseFlags=[{"name": "max_connections", "value": "200"}])).by_id("sql.flags")
    assert r.status is Status.WARN and r.severity is Severity.medium
    assert "--database-flags=max_connections=200,statement_timeout=30000,lock_timeout=10000" in r.remediation


def test_connect_timing_is_reported_with_the_time_scale():
    ev = healthy_evidence(time_scale=0.02)
    ev.probes["postgres.connect"] = (
        [probe("postgres", "db:5432", total_s=0.1) for _ in range(7)]
        + [probe("postgres", "db:5432", False, reason=Reason.timeout, detail="no answer during connect", total_s=0.91)
           for _ in range(3)])
    r = results(ev, SANDBOX).by_id("sql.connect")
    assert r.status is Status.FAIL and r.upstream == ["connector"]
    assert "p95 0.91 s (= 45.5 s at time scale 0.02)" in r.observed and "3/10 timed out" in r.observed
    assert "3/10 failed (timeout 3)" in r.reason
    assert "35 s (0.70 s on the wire at time scale 0.02)" in r.expected


def test_connect_failure_reasons_are_counted_by_kind():
    ev = healthy_evidence()
    ev.probes["postgres.connect"] = (
        [probe("postgres", "db", False, reason=Reason.timeout, detail="t", total_s=1) for _ in range(7)]
        + [probe("postgres", "db", False, reason=Reason.reset, detail="r", total_s=0.2) for _ in range(3)])
    r = results(ev).by_id("sql.connect")
    assert "(timeout 7, reset 3)" in r.reason and "7/10 timed out, 3 other failures" in r.observed


def test_slow_but_successful_connections_fail_on_p95():
    ev = healthy_evidence(time_scale=0.02)
    ev.probes["postgres.connect"] = [probe("postgres", "db", total_s=0.8) for _ in range(10)]
    r = results(ev, SANDBOX).by_id("sql.connect")
    assert r.status is Status.FAIL and "0/10 timed out" in r.observed and "threshold" in r.reason
    ev.probes["postgres.connect"] = [probe("postgres", "db", total_s=0.5) for _ in range(10)]
    assert results(ev, SANDBOX).by_id("sql.connect").status is Status.PASS  # 25 s real-world: fine


def test_auth_failures_point_at_the_credentials():
    ev = healthy_evidence()
    ev.probes["postgres.connect"] = [probe("postgres", "db", False, reason=Reason.auth, detail="password authentication failed")]
    r = results(ev).by_id("sql.connect")
    assert "RUNBOOK_DB_PASSWORD" in r.remediation and "runbook_probe" in r.remediation


def test_no_samples_skip_with_reason():
    ev = healthy_evidence()
    del ev.probes["postgres.connect"]
    r = results(ev).by_id("sql.connect")
    assert r.status is Status.SKIP and "did not run" in r.reason


def test_not_found_and_failed_reads():
    ev = healthy_evidence()
    ev.api["sqladmin.instance"] = failed("sqladmin.instance", "not_found", "instance not found", 404)
    rs = results(ev)
    assert rs.by_id("sql.exists").status is Status.FAIL and "gcloud sql instances list" in rs.by_id("sql.exists").remediation
    assert rs.by_id("sql.state").status is Status.SKIP
    ev.api["sqladmin.instance"] = failed("sqladmin.instance", "timeout", "no answer from sqladmin within 10 s")
    rs = results(ev)
    assert all(rs.by_id(cid).status is Status.ERROR for cid in IDS[:-1])
    assert rs.by_id("sql.connect").status is Status.PASS  # the probe is separate evidence


RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"


def recorded_instance(file: str, name: str) -> dict:
    body = json.loads((RECORDED / file).read_text())
    return next(i for i in body["items"] if i["name"] == name)


def test_recorded_read_replica_without_activation_policy_is_reported_as_a_replica():
    # gcpdiag cloudsql2: sql5 is a READ_REPLICA_INSTANCE of sql3 and reports no activation policy
    body = recorded_instance("gcpdiag/cloudsql2--cloudsql-instances.json", "sql5")
    assert "activationPolicy" not in body["settings"] and body["instanceType"] == "READ_REPLICA_INSTANCE"
    ev = healthy_evidence()
    ev.api["sqladmin.instance"] = ok("sqladmin.instance", body)
    rs = results(ev)
    assert rs.by_id("sql.state").status is Status.PASS and rs.by_id("sql.state").observed == "RUNNABLE (read replica of sql3)"
    policy = rs.by_id("sql.activation_policy")
    assert policy.status is Status.PASS and policy.observed == "not reported (read replica of sql3)"


def test_recorded_primaries_are_runnable_and_not_replicas():
    for file in ("gcpdiag/cloudsql1--cloudsql-instances.json", "gcpdiag/cloudsql3--cloudsql-instances.json"):
        for item in json.loads((RECORDED / file).read_text())["items"]:
            inst = Instance.from_json(item)
            assert not inst.is_replica and not inst.is_stopped and inst.activation_policy == "ALWAYS"


def test_connection_failures_while_stopped_are_attributed_to_sql_state_not_the_connector():
    ev = with_instance(state="RUNNABLE", settings__activationPolicy="NEVER")
    ev.probes["postgres.connect"] = [probe("postgres", "10.20.0.3:5432", False, reason=Reason.refused,
                                           detail="connection refused (nothing listening)") for _ in range(3)]
    r = results(ev).by_id("sql.connect")
    assert r.status is Status.FAIL and r.upstream == []
    assert r.reason.startswith("the instance is stopped (RUNNABLE with activation policy NEVER, see sql.state)")
    assert "--activation-policy=ALWAYS" in r.remediation and "connector" not in r.remediation


def _private_timeouts(vantage: dict, n: int = 5):
    return [probe("postgres", "10.20.0.3:5432", False, reason=Reason.timeout, detail="no answer during connect",
                  waiting_for="connect", vantage=vantage) for _ in range(n)]


LAPTOP = {"host": "laptop", "address": "10.20.0.3", "private": True, "source": "192.168.1.20",
          "routable": "unknown", "why": "10.20.0.3 is private and laptop is not known to be inside its VPC"}


def test_private_database_not_routable_from_here_is_skipped_not_blamed_on_the_connector():
    ev = healthy_evidence()
    ev.probes["postgres.connect"] = _private_timeouts(LAPTOP)
    r = results(ev).by_id("sql.connect")
    assert r.status is Status.SKIP and r.upstream == []
    assert r.reason.startswith("not measurable from this host: 10.20.0.3 is private and laptop is not known to be "
                               "inside its VPC (laptop dialed 10.20.0.3 from 192.168.1.20; no connection reached it)")
    assert "gcloud run jobs deploy runbook-probe --image IMAGE --vpc-connector staging-connector" in r.remediation


def test_inside_the_vpc_the_same_timeouts_fail_and_point_at_the_connector():
    ev = healthy_evidence()
    ev.probes["postgres.connect"] = _private_timeouts(LAPTOP)
    r = results(ev, make_params(**{"network.vantage": "inside_vpc"})).by_id("sql.connect")
    assert r.status is Status.FAIL and r.upstream == ["connector"]
    ev.probes["postgres.connect"] = _private_timeouts({**LAPTOP, "routable": "yes", "why": "running in Cloud Run"})
    assert results(ev).by_id("sql.connect").status is Status.FAIL


def test_a_connection_that_got_through_proves_the_host_routes_there():
    ev = healthy_evidence()
    samples = _private_timeouts(LAPTOP, 4)
    samples.append(probe("postgres", "10.20.0.3:5432", True, total_s=0.1, vantage=LAPTOP, peer="10.20.0.3:5432"))
    ev.probes["postgres.connect"] = samples
    assert results(ev).by_id("sql.connect").status is Status.FAIL


def test_loopback_database_of_the_sandbox_stays_measurable():
    ev = healthy_evidence()
    loop = {"host": "vm", "address": "127.0.0.1", "private": False, "source": "127.0.0.1", "routable": "yes"}
    ev.probes["postgres.connect"] = [probe("postgres", "10.20.0.3:5432", False, reason=Reason.timeout,
                                           vantage=loop) for _ in range(3)]
    assert results(ev).by_id("sql.connect").status is Status.FAIL
