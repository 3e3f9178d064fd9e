"""Golden path checks: pure judgements of golden.* evidence."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from runbook_lib.checks import golden_path
from runbook_lib.evidence import Evidence, Meta
from runbook_lib.params import load_params
from runbook_lib.probes.base import ProbeResult, Reason
from runbook_lib.results import Status

ROOT = Path(__file__).resolve().parents[2]
PARAMS = load_params(ROOT / "parameters" / "staging.example.yaml")
EVENTS = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]


def step(ok=True, **kw):
    return ProbeResult(protocol="golden", target="x", ok=ok, total_s=kw.pop("total_s", 0.1), **kw)


def chat(types, *, ok=True, status=101, connect=0.05, detail=""):
    msgs = [{"t": 0.1 * i, "data": {"type": t}} for i, t in enumerate(types)]
    return ProbeResult(protocol="websocket", target="wss://x/ws", ok=ok, detail=detail,
                       reason=None if ok else Reason.reset, phases={"connect": connect},
                       info={"status": status, "messages": msgs})


def evidence(**probes):
    ev = Evidence(meta=Meta(phase="validate", target="t", mode="live", now=datetime(2026, 11, 28, tzinfo=timezone.utc)))
    ev.probes.update({k.replace("_", "."): v for k, v in probes.items()})
    return ev


def full(types=(*EVENTS, "agent_response"), **kw):
    return evidence(golden_login=[step()], golden_chat=[chat(list(types), **kw)],
                    golden_history=[step(info={"messages": 2})],
                    golden_requests=[step(total_s=0.2) for _ in range(100)])


def by_id(results):
    return {r.id: r for r in results}


def test_no_golden_evidence_no_results():
    assert golden_path.evaluate(evidence(), PARAMS) == []


def test_a_working_golden_path_passes():
    rs = by_id(golden_path.evaluate(full(), PARAMS))
    assert all(rs[i].status is Status.PASS for i in ("golden.login", "golden.websocket", "golden.events",
                                                      "golden.response", "golden.history", "golden.api_latency",
                                                      "golden.error_rate"))
    assert rs["golden.startup"].status is Status.SKIP and "startup_latencies" in rs["golden.startup"].reason


def test_failed_login_skips_the_rest_with_the_reason():
    ev = evidence(golden_login=[step(ok=False, reason=Reason.http_status, detail="HTTP 503: required secrets missing: jwt-secret-staging")])
    rs = by_id(golden_path.evaluate(ev, PARAMS))
    assert rs["golden.login"].status is Status.FAIL and "jwt-secret-staging" in rs["golden.login"].reason
    assert rs["golden.events"].status is Status.SKIP and "login failed" in rs["golden.events"].reason


def test_missing_event_is_named():
    rs = by_id(golden_path.evaluate(full(EVENTS[:3], ok=False, detail="connection cut after 1.5 s"), PARAMS))
    assert rs["golden.events"].status is Status.FAIL
    assert "missing events: tool_completed, agent_completed" in rs["golden.events"].reason
    assert rs["golden.response"].status is Status.FAIL


def test_out_of_order_event_is_named():
    order = ["agent_started", "tool_executing", "agent_thinking", "tool_completed", "agent_completed", "agent_response"]
    rs = by_id(golden_path.evaluate(full(order), PARAMS))
    assert rs["golden.events"].status is Status.FAIL
    assert "tool_executing arrived where agent_thinking was expected" in rs["golden.events"].reason


def test_an_event_sent_twice_after_the_last_is_named_not_a_crash():
    rs = by_id(golden_path.evaluate(full((*EVENTS, EVENTS[-1], "agent_response")), PARAMS))
    assert rs["golden.events"].status is Status.FAIL
    assert f"{EVENTS[-1]} arrived again after the last expected event" in rs["golden.events"].reason


@pytest.mark.parametrize("failures, status", [(0, Status.PASS), (1, Status.FAIL), (5, Status.FAIL)])
def test_error_rate_threshold(failures, status):
    ev = full()
    ev.probes["golden.requests"] = [step(ok=i >= failures, reason=None if i >= failures else Reason.http_status)
                                    for i in range(100)]
    assert by_id(golden_path.evaluate(ev, PARAMS))["golden.error_rate"].status is status


def test_slow_websocket_connect_fails_against_the_threshold():
    rs = by_id(golden_path.evaluate(full(connect=11.0), PARAMS))
    assert rs["golden.websocket"].status is Status.FAIL


# -- golden.startup: run.googleapis.com/container/startup_latencies (ms, per revision) ---------------

def _startup(values_ms, *, scale=1.0, services=("netra-backend-staging", "auth-staging")):
    from datetime import timedelta

    from runbook_lib.evidence import MetricRecord, Point, Series

    now = datetime(2026, 11, 28, tzinfo=timezone.utc)
    mtype = "run.googleapis.com/container/startup_latencies"
    return MetricRecord(key="monitoring.startup_latencies", metric_type=mtype, ok=True, series=[
        Series(metric_type=mtype, unit="ms", labels={"service_name": s},
               points=[Point(t=now - timedelta(minutes=i), v=v) for i, v in enumerate(values_ms)]) for s in services])


def test_startup_passes_with_the_measured_p95():
    ev = full()
    ev.metrics["monitoring.startup_latencies"] = _startup([20_000.0, 40_000.0])
    r = by_id(golden_path.evaluate(ev, PARAMS))["golden.startup"]
    assert r.status is Status.PASS and r.evidence == ["monitoring.startup_latencies"]
    assert "netra-backend-staging p95 39 s" in r.observed and "no data: netra-frontend-staging" in r.observed


def test_startup_fails_at_the_threshold_in_real_seconds():
    ev = full()
    ev.meta = Meta(**{**ev.meta.model_dump(), "time_scale": 0.05})
    # 15 s on the wire at time scale 0.05 = 300 s real: the threshold itself is a failure (p95 < 300 s)
    ev.metrics["monitoring.startup_latencies"] = _startup([15_000.0], services=("auth-staging",))
    r = by_id(golden_path.evaluate(ev, PARAMS))["golden.startup"]
    assert r.status is Status.FAIL and r.observed == "auth-staging p95 300 s; no data: netra-backend-staging, netra-frontend-staging"
    assert "auth-staging start slower than 300 s" in r.reason and r.remediation


def test_startup_skips_with_why():
    ev = full()
    r = by_id(golden_path.evaluate(ev, PARAMS))["golden.startup"]
    assert r.status is Status.SKIP and "not gathered" in r.reason
    ev.metrics["monitoring.startup_latencies"] = _startup([], services=())
    r = by_id(golden_path.evaluate(ev, PARAMS))["golden.startup"]
    assert r.status is Status.SKIP and "no instance started" in r.reason
    from runbook_lib.evidence import ErrorInfo, MetricRecord

    ev.metrics["monitoring.startup_latencies"] = MetricRecord(
        key="monitoring.startup_latencies", metric_type="x", ok=False,
        error=ErrorInfo(kind="permission", message="needs roles/monitoring.viewer"))
    r = by_id(golden_path.evaluate(ev, PARAMS))["golden.startup"]
    assert r.status is Status.SKIP and "roles/monitoring.viewer" in r.reason


def test_startup_is_judged_even_when_login_fails():
    ev = evidence(golden_login=[step(ok=False, reason=Reason.http_status, detail="HTTP 503")])
    ev.metrics["monitoring.startup_latencies"] = _startup([10_000.0])
    assert by_id(golden_path.evaluate(ev, PARAMS))["golden.startup"].status is Status.PASS
