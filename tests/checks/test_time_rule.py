"""The one time rule of the checks (checks/_util.py): the evidence's time scale, wire time for a
sample that succeeded, total time for one that failed."""
from __future__ import annotations

from runbook_lib.checks import cloudsql, load_balancer
from runbook_lib.checks._util import latency_s, time_scale
from runbook_lib.probes.base import ProbeResult, Reason
from runbook_lib.results import ResultSet, Status
from tests.checks.checks_testkit import API, healthy_evidence, make_params, probe

REAL_TIME = make_params()  # time_scale 1.0: a replay's parameters need not say how fast the target ran
SANDBOX = make_params(**{"target.mode": "sandbox", "target.scenario": "issue-1278", "target.time_scale": 0.02})


def timed(ok: bool, phases: dict[str, float], total_s: float, **kw) -> ProbeResult:
    return ProbeResult(protocol="postgres", target="db:5432", ok=ok, phases=phases, total_s=total_s, **kw)


def test_latency_is_wire_time_when_the_sample_succeeded():
    sample = timed(True, {"connect": 0.1, "tls": 0.2, "auth": 0.1, "query": 0.1}, total_s=3.0)
    assert abs(latency_s(sample) - 0.5) < 1e-9  # 2.5 s of waiting for our own event loop is not the database's


def test_latency_is_total_time_when_the_sample_failed():
    sample = timed(False, {"resolve": 0.01}, total_s=2.0, reason=Reason.timeout, detail="no answer during connect")
    assert latency_s(sample) == 2.0  # the unfinished connect phase is not recorded; the wait was real


def test_no_timed_phase_means_total_time():
    assert latency_s(ProbeResult(protocol="golden", target="login", ok=True, total_s=0.4)) == 0.4


def test_the_time_scale_is_the_evidences_not_the_parameters():
    ev = healthy_evidence(time_scale=0.02)
    assert time_scale(ev) == 0.02
    ev.probes[f"http.{API}/auth/health"] = [probe("http", "u", status=200, total_s=0.3)]  # = 15 s > 10 s
    ev.probes["postgres.connect"] = [probe("postgres", "db", total_s=0.8) for _ in range(10)]  # = 40 s > 35 s
    for params in (REAL_TIME, SANDBOX):
        lb = ResultSet(results=load_balancer.evaluate(ev, params)).by_id("lb.endpoint.api-staging.auth-health")
        sql = ResultSet(results=cloudsql.evaluate(ev, params)).by_id("sql.connect")
        assert lb.status is Status.FAIL and "(= 15.0 s at time scale 0.02)" in lb.observed
        assert sql.status is Status.FAIL and sql.measurements["p95_s"] == 40.0


def test_sql_connect_judges_wire_time_of_successful_samples():
    ev = healthy_evidence()
    # 40 s from start to finish (over the 35 s threshold), of which 0.5 s on the wire: the rest was the
    # probe waiting for its own loop
    ev.probes["postgres.connect"] = [timed(True, {"connect": 0.2, "tls": 0.1, "auth": 0.1, "query": 0.1}, 40.0)
                                     for _ in range(10)]
    r = ResultSet(results=cloudsql.evaluate(ev, REAL_TIME)).by_id("sql.connect")
    assert r.status is Status.PASS, r.reason
    assert abs(r.measurements["p95_s"] - 0.5) < 1e-9
