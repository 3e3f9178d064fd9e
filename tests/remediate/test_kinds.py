"""Every action kind the playbook creates is registered beside its rule (remediate.kinds), so the
applier has no per-kind code: "already in effect?" for each kind, the plan-level finish run once,
and an unregistered kind refused before anything is sent."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runbook_lib.checks import evaluate_all
from runbook_lib.errors import RemediationError
from runbook_lib.evidence import ApiRecord, ErrorInfo, Evidence
from runbook_lib.gcp import compute
from runbook_lib.params import load_params
from runbook_lib.remediate import apply as applier
from runbook_lib.remediate import kinds
from runbook_lib.remediate.plan import Action, Plan, Read, build_plan

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def recorded():
    params = load_params(ROOT / "parameters" / "replay.yaml")
    ev = Evidence.load(Path(params.target.evidence_dir) / "diagnose")
    plan = build_plan(evaluate_all(ev, params).results, ev, params)
    return params, plan


def read(body: dict | None) -> list[ApiRecord]:
    if body is None:
        return [ApiRecord(key="x", ok=False, status=404, error=ErrorInfo(kind="not_found", message="absent"))]
    return [ApiRecord(key="x", ok=True, status=200, body=body)]


def action(plan: Plan, kind: str) -> Action:
    return next(a for a in plan.actions if a.kind == kind)


def pending(plan: Plan, params, kind: str, body: dict | None) -> list:
    a = action(plan, kind)
    return kinds.lookup(kind).pending(a, read(body), params)


def test_every_kind_of_the_recorded_plan_is_registered(recorded):
    _, plan = recorded
    assert plan.id == "513c95cdcff6" and len(plan.actions) == 12
    assert all(kinds.lookup(a.kind) is not None for a in plan.automatic)
    for kind in ("connector.resize", "sql.start", "sql.private-network", "sql.require-ssl", "sql.flags",
                 "cert.create", "cert.attach", "cert.detach-legacy", "lb.timeout", "lb.health-check",
                 "secret.value", "run.service"):
        assert kind in kinds.registered(), kind


def test_connector_resize_is_in_effect_once_both_bounds_are_met(recorded):
    params, plan = recorded
    c = params.connector
    assert pending(plan, params, "connector.resize", {"minInstances": c.min_instances - 1 or 0,
                                                      "maxInstances": c.max_instances - 1})
    assert pending(plan, params, "connector.resize", {"minInstances": c.min_instances,
                                                      "maxInstances": c.max_instances}) == []


def test_sql_start_is_in_effect_when_runnable_and_always(recorded):
    params, plan = recorded
    stopped = {"state": "RUNNABLE", "settings": {"activationPolicy": "NEVER"}}
    running = {"state": "RUNNABLE", "settings": {"activationPolicy": "ALWAYS"}}
    assert pending(plan, params, "sql.start", stopped) == action(plan, "sql.start").calls
    assert pending(plan, params, "sql.start", running) == []
    assert pending(plan, params, "sql.start", None) == action(plan, "sql.start").calls


def test_cert_create_and_attach(recorded):
    params, plan = recorded
    name = params.load_balancer.certificate_name
    assert pending(plan, params, "cert.create", None) == action(plan, "cert.create").calls
    assert pending(plan, params, "cert.create", {"name": name}) == []
    other = compute.global_path(params, "sslCertificates/legacy")
    ours = compute.global_path(params, f"sslCertificates/{name}")
    assert pending(plan, params, "cert.attach", {"sslCertificates": [other]}) == action(plan, "cert.attach").calls
    assert pending(plan, params, "cert.attach", {"sslCertificates": [other, ours]}) == []


def instance_group_plan(params) -> tuple[Action, Action, Action, Action, Action]:
    """The sql and lb kinds, built by their rules from failing checks of an instance-group topology."""
    from runbook_lib.remediate import playbook
    from runbook_lib.results import CheckResult, Severity, Status

    def failing(*ids: str) -> dict:
        return {i: CheckResult(id=i, component="x", title=i, status=Status.FAIL, severity=Severity.high,
                               reason="r", remediation="m") for i in ids}

    ev = Evidence.load(Path(params.target.evidence_dir) / "diagnose")
    ev.api.pop("compute.backendServices", None)  # nothing says serverless: the instance-group rules apply
    ev.api.pop("compute.networkEndpointGroups", None)
    backend, hc = next(iter(params.load_balancer.backend_services)), next(iter(params.load_balancer.health_checks))
    sql = playbook.cloudsql(failing("sql.private_ip", "sql.ssl_required", "sql.flags"), ev, params)
    lb = playbook.load_balancer(failing(f"lb.{backend}.timeout", f"lb.{hc}.tolerance"), ev, params)
    by_kind = {a.kind: a for a in sql + lb}
    return tuple(by_kind[k] for k in ("sql.private-network", "sql.require-ssl", "sql.flags", "lb.timeout",
                                      "lb.health-check"))


def test_sql_and_lb_kinds_are_in_effect_when_the_fresh_state_says_so(recorded):
    params, _ = recorded
    network, ssl, flags, timeout, health = instance_group_plan(params)

    def run(a: Action, body: dict | None) -> list:
        return kinds.lookup(a.kind).pending(a, read(body), params)

    net = f"projects/{params.project}/global/networks/{params.cloudsql.network}"
    assert run(network, {"settings": {"ipConfiguration": {"privateNetwork": net}}}) == []
    assert run(network, {"settings": {"ipConfiguration": {}}}) == network.calls
    assert run(ssl, {"settings": {"ipConfiguration": {"sslMode": "ENCRYPTED_ONLY"}}}) == []
    assert run(ssl, {"settings": {"ipConfiguration": {"sslMode": "ALLOW_UNENCRYPTED_AND_ENCRYPTED"}}}) == ssl.calls
    wanted = flags.calls[0].body["settings"]["databaseFlags"]
    assert run(flags, {"settings": {"databaseFlags": wanted}}) == []
    assert run(flags, {"settings": {"databaseFlags": wanted[1:]}}) == flags.calls
    want = params.load_balancer.backend_timeout_s
    assert run(timeout, {"timeoutSec": want}) == [] and run(timeout, {"timeoutSec": want - 1}) == timeout.calls
    body = health.calls[0].body
    assert run(health, body) == []
    assert run(health, {**body, **{k: -1 for k, v in body.items() if not isinstance(v, dict)}}) == health.calls


class FakeApi:
    def __init__(self):
        self.reads: list[str] = []

    async def read(self, who: str, api: str, path: str) -> ApiRecord:
        self.reads.append(path)
        return ApiRecord(key=path, ok=True, status=200, body={})


def test_an_unregistered_kind_is_refused_before_anything_is_sent(recorded, tmp_path):
    params, _ = recorded
    stray = Action(id="x.stray", kind="x.unknown", component="x", title="t", answers=[],
                   reads=[Read(api="compute", path="/p")])
    entry = applier.AuditEntry(action=stray.id, at="now", outcome="unchanged")
    step = applier.Step(FakeApi(), params, entry, lambda: None)
    with pytest.raises(RemediationError, match="no idempotency rule for action kind 'x.unknown'"):
        asyncio.run(applier._apply_action(step, stray, {}))
    assert entry.requests == []


def test_a_shared_finish_runs_once_per_plan(recorded):
    params, plan = recorded
    assert {a.kind for a in plan.automatic} >= {"cert.create", "cert.attach"}
    calls = []

    async def finish(api, p):
        calls.append(p.target.name)

    saved = {k: kinds.lookup(k) for k in ("cert.create", "cert.attach")}
    try:
        for name, kind in saved.items():
            kinds.register(name, pending=kind.pending, finish=finish)
        asyncio.run(applier._finish(FakeApi(), params, plan))
    finally:
        for name, kind in saved.items():
            kinds.register(name, pending=kind.pending, settle=kind.settle, snapshot=kind.snapshot,
                           ready=kind.ready, finish=kind.finish)
    assert calls == [params.target.name]
