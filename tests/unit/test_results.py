"""Results: invariants, verdict line, root causes."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from runbook_lib.results import CheckResult, ResultSet, Severity, Status, root_causes, verdict_of


def r(id_, status, severity="critical", component="cloudsql", **kw):
    defaults = {"remediation": "do x"} if status is Status.FAIL else {}
    if status in (Status.SKIP, Status.ERROR):
        defaults["reason"] = "because"
    return CheckResult(id=id_, component=component, title=id_, status=status, severity=Severity(severity), **{**defaults, **kw})


def test_skip_needs_a_reason_and_fail_a_remediation():
    with pytest.raises(ValidationError, match="SKIP result needs a reason"):
        CheckResult(id="a.b", component="c", title="t", status=Status.SKIP, severity=Severity.low)
    with pytest.raises(ValidationError, match="FAIL result needs a remediation"):
        CheckResult(id="a.b", component="c", title="t", status=Status.FAIL, severity=Severity.low, reason="x")
    with pytest.raises(ValidationError, match="ERROR result needs a reason"):
        CheckResult(id="a.b", component="c", title="t", status=Status.ERROR, severity=Severity.low)


def test_verdict_line_is_exactly_the_incident_wording():
    assert verdict_of([r("a", Status.PASS)]).line == "Overall Status: HEALTHY, Critical Failures: 0"
    v = verdict_of([r("a", Status.FAIL), r("b", Status.ERROR), r("c", Status.FAIL, "high"), r("d", Status.WARN)])
    assert v.line == "Overall Status: UNHEALTHY, Critical Failures: 2"
    assert v.exit_code == 1 and v.blocking_failures == 3


def test_high_severity_failure_is_unhealthy_with_zero_critical():
    v = verdict_of([r("lb.x", Status.FAIL, "high", "load_balancer")])
    assert v.line == "Overall Status: UNHEALTHY, Critical Failures: 0"


def test_medium_failures_and_warnings_do_not_block():
    assert verdict_of([r("a", Status.FAIL, "medium"), r("b", Status.WARN)]).healthy


def test_no_results_is_never_healthy():
    assert not verdict_of([]).healthy


def test_symptoms_are_attributed_to_their_upstream_cause():
    results = ResultSet(results=[
        r("connector.instances", Status.FAIL, component="connector"),
        r("sql.connect", Status.FAIL, upstream=["connector"]),
        r("sql.state", Status.PASS),
    ])
    faults = root_causes(results)
    assert [f.component for f in faults] == ["connector"]
    assert faults[0].symptoms == ["sql.connect"]


def test_a_symptom_without_a_failing_upstream_is_its_own_fault():
    faults = root_causes([r("sql.connect", Status.FAIL, upstream=["connector"]),
                          r("connector.state", Status.PASS, component="connector")])
    assert [f.component for f in faults] == ["cloudsql"]
