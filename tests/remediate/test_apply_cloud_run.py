"""Cloud Run remediation through services.patch and the applier's guarantees, against a fake run v2
API (httpx MockTransport): read-modify-write with the etag, the operation polled until done, the new
revision Ready at 100 % before "after"; one apply per target (file lock naming the holder); "sending"
audited before each mutation; an interrupted apply reconciled; a failed operation = a failed action."""
from __future__ import annotations

import asyncio
import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from runbook_lib.checks import cloud_run as checks
from runbook_lib.evidence import ApiRecord, Evidence, Meta
from runbook_lib.gcp import run
from runbook_lib.gcp.client import ApiClient
from runbook_lib.params import load_params
from runbook_lib.remediate import apply as applier
from runbook_lib.remediate.plan import build_plan
from runbook_lib.results import ResultSet

ROOT = Path(__file__).resolve().parents[2]
P, R, SVC = "netra-staging", "us-central1", "netra-backend-staging"
NAME = f"projects/{P}/locations/{R}/services/{SVC}"
DSN = "postgresql://netra:s3cr/et@10.20.0.3:5432/netra"
pytestmark = pytest.mark.timeout(60)


def service(generation: int = 42, **template) -> dict:
    rev = f"{SVC}-{generation:05d}-abc"
    return {
        "name": NAME, "uid": "u-1", "generation": str(generation), "etag": f'"e{generation}"',
        "createTime": "2026-11-01T00:00:00Z", "reconciling": False, "ingress": "INGRESS_TRAFFIC_ALL",
        "latestReadyRevision": f"{NAME}/revisions/{rev}", "latestCreatedRevision": f"{NAME}/revisions/{rev}",
        "terminalCondition": {"type": "Ready", "state": "CONDITION_SUCCEEDED"},
        "traffic": [{"type": run.LATEST, "percent": 100}],
        "trafficStatuses": [{"type": run.LATEST, "percent": 100}],
        "template": {"timeout": "300s", "scaling": {"maxInstanceCount": 20},
                     "vpcAccess": {"connector": f"projects/{P}/locations/{R}/connectors/staging-connector",
                                   "egress": "ALL_TRAFFIC"},
                     "containers": [{"image": "img", "ports": [{"containerPort": 8080}],
                                     "resources": {"cpuIdle": True, "limits": {"cpu": "1000m"}},
                                     "env": [{"name": "API_BASE_URL", "value": "https://api.staging.netrasystems.ai/v1"},
                                             {"name": "DATABASE_URL", "value": DSN}]}],
                     **template},
    }


class FakeRun:
    """services.get / services.patch / operations.get with Cloud Run's semantics, as far as used here."""

    def __init__(self, *, polls_running: int = 2, fail: str = ""):
        self.svc = service()
        self.requests: list[httpx.Request] = []
        self.patches: list[dict] = []
        self.polls_running, self.fail = polls_running, fail
        self.polled = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "GET" and path == f"/v2/{NAME}":
            return httpx.Response(200, json=self.svc)
        if request.method == "PATCH" and path == f"/v2/{NAME}":
            body = json.loads(request.content)
            if body.get("etag") != self.svc["etag"]:
                return httpx.Response(409, json={"error": {"code": 409, "status": "ABORTED", "message": "etag mismatch"}})
            self.patches.append(body)
            self.pending = body
            return httpx.Response(200, json={"name": f"projects/{P}/locations/{R}/operations/op-1",
                                             "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.Service"}})
        if request.method == "GET" and path.endswith("/operations/op-1"):
            self.polled += 1
            op = {"name": f"projects/{P}/locations/{R}/operations/op-1", "metadata": {}}
            if self.polled <= self.polls_running:
                return httpx.Response(200, json=op)
            if self.fail:
                return httpx.Response(200, json={**op, "done": True, "error": {"code": 9, "message": self.fail}})
            if self.svc["generation"] == "42":
                new = service(43)
                new["template"] = copy.deepcopy(self.pending["template"])
                new["traffic"] = self.pending["traffic"]
                self.svc = new
            return httpx.Response(200, json={**op, "done": True, "response": self.svc})
        return httpx.Response(404, json={"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})


def params(tmp_path, **more):
    return load_params(ROOT / "parameters" / "staging.example.yaml", {
        "cloud_run.services": [SVC], "remediation.state_dir": str(tmp_path / "state"), **more})


def evidence(body: dict, *, no_metric: bool = True) -> Evidence:
    meta = Meta(phase="diagnose", target="staging", mode="live", now=datetime(2026, 12, 1, tzinfo=timezone.utc))
    shaped = run.shape_services({"services": [body]}, params(Path("/tmp")))
    return Evidence(meta=meta, api={run.KEY: ApiRecord(key=run.KEY, ok=True, status=200, body=shaped)})


def plan_for(fake: FakeRun, p):
    ev = evidence(fake.svc)
    results = ResultSet(results=checks.evaluate(ev, p))
    return build_plan(results, ev, p)


def apply(fake, plan, p, **kw):
    async def go():
        api = ApiClient(p.endpoints, p.deadlines, project=p.project, transport=httpx.MockTransport(fake))
        sleeps: list[float] = []

        async def record(delay):  # the backoff, recorded instead of waited
            sleeps.append(delay)

        api._sleep = record
        async with api:
            report = await applier.apply_plan(api, plan, p, **kw)
        return report, sleeps

    return asyncio.run(go())


def confirmed(tmp_path, plan):
    return params(tmp_path, **{"remediation.apply": True, "remediation.confirm": plan.id})


def test_plan_is_one_services_patch_with_the_rollback_to_the_serving_revision(tmp_path):
    fake = FakeRun()
    plan = plan_for(fake, params(tmp_path))
    action = next(a for a in plan.actions if a.id == f"run.patch.{SVC}")
    assert action.kind == "run.service" and action.change == {
        "timeout": "600s", "minInstanceCount": 1, "startupCpuBoost": True,
        "envReplace": {"names": ["API_BASE_URL"], "hosts": {"api.staging.netrasystems.ai": "api-staging.netrasystems.ai"}}}
    call = action.calls[0]
    assert (call.method, call.api, call.path) == ("PATCH", "run", f"/v2/{NAME}")
    assert call.body == {"template": {"timeout": "600s", "scaling": {"minInstanceCount": 1},
                                      "containers": [{"resources": {"startupCpuBoost": True}}]},
                         "traffic": [{"type": run.LATEST, "percent": 100}]}
    assert "gcloud run services update netra-backend-staging" in call.gcloud and "--timeout=600" in call.gcloud
    assert action.rollback.startswith(f"gcloud run services update-traffic {SVC} --to-revisions "
                                      f"{SVC}-00042-abc=100 --region {R} --project {P}")
    assert f'"revision": "{SVC}-00042-abc", "percent": 100' in action.rollback and f"PATCH https://run.googleapis.com/v2/{NAME}" in action.rollback
    text = plan.model_dump_json()
    assert "s3cr" not in text and DSN not in text  # the plan (and its id) never holds a value
    # a 600 s startup cannot be tolerated by a probe: the plan gives boost + warm instances, no probe change
    assert "startupProbe" not in action.change and f"run.{SVC}.startup" in action.answers


def test_confirmed_apply_reads_modifies_writes_polls_and_waits_for_the_revision(tmp_path):
    fake = FakeRun()
    plan = plan_for(fake, params(tmp_path))
    audit_file = tmp_path / "audit.json"
    report, sleeps = apply(fake, plan, confirmed(tmp_path, plan), audit_file=audit_file)
    assert report.mode == "applied", report.message
    assert len(fake.patches) == 1
    sent = fake.patches[0]
    assert sent["etag"] == '"e42"' and not set(sent) & set(run.OUTPUT_ONLY)   # optimistic concurrency, no output-only
    t = sent["template"]
    assert t["timeout"] == "600s" and t["scaling"] == {"maxInstanceCount": 20, "minInstanceCount": 1}
    assert t["containers"][0]["resources"] == {"cpuIdle": True, "limits": {"cpu": "1000m"}, "startupCpuBoost": True}
    env = {e["name"]: e["value"] for e in t["containers"][0]["env"]}
    assert env == {"API_BASE_URL": "https://api-staging.netrasystems.ai/v1", "DATABASE_URL": DSN}  # the rest as read
    assert sent["traffic"] == [{"type": run.LATEST, "percent": 100}]
    entry = next(e for e in report.audit if e.action == f"run.patch.{SVC}")
    assert [(e.event, e.status) for e in entry.events] == [
        ("sending", ""), ("sent", "RUNNING"), ("poll", "RUNNING"), ("poll", "RUNNING"), ("poll", "DONE"),
        ("done", "DONE"), ("settle", "READY")]
    assert len(sleeps) == 3 and all(s > 0 for s in sleeps)   # every poll after a pause
    assert entry.after[0]["latestReadyRevision"].endswith(f"{SVC}-00043-abc")
    on_disk = audit_file.read_text()
    assert json.loads(on_disk)["mode"] == "applied" and "s3cr" not in on_disk and "10.20.0.3" in on_disk

    again, _ = apply(fake, plan, confirmed(tmp_path, plan))
    assert again.changed == [] and len(fake.patches) == 1    # re-read, already in effect: nothing sent


def test_a_failed_operation_is_a_failed_action_with_googles_error_and_no_after(tmp_path):
    fake = FakeRun(fail="Revision 'netra-backend-staging-00043-abc' is not ready and cannot serve traffic.")
    plan = plan_for(fake, params(tmp_path))
    report, _ = apply(fake, plan, confirmed(tmp_path, plan))
    entry = next(e for e in report.audit if e.action == f"run.patch.{SVC}")
    assert report.mode == "failed" and entry.outcome == "failed" and entry.after == []
    assert "is not ready and cannot serve traffic" in entry.error and "(code 9)" in entry.error
    assert [e.event for e in entry.events][-2:] == ["poll", "failed"]


def test_a_second_apply_is_refused_naming_the_holder_and_sends_nothing(tmp_path):
    fake = FakeRun()
    plan = plan_for(fake, params(tmp_path))
    p = confirmed(tmp_path, plan)
    with applier.TargetLock(p, plan) as held:
        with pytest.raises(applier.ApplyLocked) as info:
            apply(fake, plan, p)
    msg = str(info.value)
    assert f"pid {held.holder['pid']} on {held.holder['host']}, plan {plan.id}, since {held.holder['since']}" in msg
    assert "Nothing was sent" in msg and fake.requests == []


def test_an_interrupted_apply_is_reported_by_the_next_one(tmp_path):
    fake = FakeRun()
    plan = plan_for(fake, params(tmp_path))
    p = confirmed(tmp_path, plan)
    lock = applier.TargetLock(p, plan)
    killed = {"plan_id": plan.id, "mode": "applying", "message": "",
              "holder": {"pid": 4242, "host": "ci-runner-7", "plan": plan.id, "since": "2026-12-01T10:00:00+00:00"},
              "audit": [{"action": f"run.patch.{SVC}", "at": "2026-12-01T10:00:01+00:00", "outcome": "sending",
                         "requests": [f"PATCH https://run.googleapis.com/v2/{NAME}"],
                         "events": [{"at": "2026-12-01T10:00:01+00:00", "event": "sending",
                                     "request": f"PATCH https://run.googleapis.com/v2/{NAME}"}]}]}
    lock.audit_path.parent.mkdir(parents=True)
    lock.audit_path.write_text(json.dumps(killed))
    report, _ = apply(fake, plan, p)
    assert report.mode == "applied" and len(report.reconciled) == 1
    note = report.reconciled[0]
    assert note.startswith(f"run.patch.{SVC}: the previous apply (plan {plan.id}, pid 4242 on ci-runner-7")
    assert f"interrupted after sending PATCH https://run.googleapis.com/v2/{NAME}" in note and "outcome is unknown" in note
    assert "reconciling an interrupted apply" in report.message
    assert json.loads(lock.audit_path.read_text())["mode"] == "applied"   # this apply's audit replaces it
    assert apply(fake, plan, p)[0].reconciled == []


def test_the_sent_request_matches_the_run_v2_discovery_document(tmp_path):
    from runbook_lib.sandbox.discovery import Api

    fake = FakeRun()
    plan = plan_for(fake, params(tmp_path))
    action = next(a for a in plan.actions if a.id == f"run.patch.{SVC}")
    recorded = json.loads((ROOT / "tests/fixtures/recorded/gcpdiag/cloudrun1--cloudrun_services.json").read_text())
    for raw in (fake.svc, recorded["services"][0]):
        call = applier.kinds.lookup("run.service").pending(
            action, [ApiRecord(key="x", ok=True, status=200, body=raw)], params(tmp_path))[0]
        doc = Api("run")
        method, _ = doc.match("PATCH", call.path)
        assert method.id == "run.projects.locations.services.patch"
        doc.check_query(method, list((call.query or {}).items()))
        doc.check_body(method, call.send_body())   # raises ApiFault (400) for an unknown field or a bad type


def test_a_kind_registered_by_its_rule_module_is_applied_without_touching_the_applier(tmp_path):
    """How helper B's certificate kinds plug in: register beside the rule; Deferred = not due yet."""
    from runbook_lib.gcp.api import ApiCall
    from runbook_lib.remediate import kinds
    from runbook_lib.remediate.plan import Action, Read

    def waits(action, before, p):
        raise kinds.Deferred("the managed certificate is PROVISIONING: detach the legacy one once it is ACTIVE")

    kinds.register("test.deferred", pending=waits)
    fake = FakeRun()
    plan = plan_for(fake, params(tmp_path))
    later = Action(id="test.later", kind="test.deferred", component="certificates", title="t", answers=[],
                   calls=[ApiCall(method="POST", api="run", path=f"/v2/{NAME}:nothing", gcloud="gcloud x", description="d")],
                   reads=[Read(api="run", path=f"/v2/{NAME}")])
    plan = plan.model_copy(update={"actions": [later, *plan.actions]})
    report, _ = apply(fake, plan, confirmed(tmp_path, plan))
    first = report.audit[0]
    assert first.outcome == "pending" and "PROVISIONING" in first.error and first.requests == []
    assert report.mode == "applied" and f"run.patch.{SVC}" in report.changed      # the rest of the plan went on
    assert not any(r.url.path.endswith(":nothing") for r in fake.requests)


def test_a_ready_hook_defers_an_action_until_its_condition_holds(tmp_path):
    """cert.detach-legacy's shape: pending says what to send, ready says whether it may go now."""
    from runbook_lib.gcp.api import ApiCall
    from runbook_lib.remediate import kinds
    from runbook_lib.remediate.plan import Action, Read

    asked = []

    async def not_yet(api, p, action, before):
        asked.append(action.id)
        return False, "the live TLS probe does not see the managed certificate yet"

    call = ApiCall(method="POST", api="run", path=f"/v2/{NAME}:detach", gcloud="gcloud x", description="d")
    kinds.register("test.ready", pending=lambda action, before, p: action.calls, ready=not_yet)
    fake = FakeRun()
    plan = plan_for(fake, params(tmp_path))
    gated = Action(id="test.gated", kind="test.ready", component="certificates", title="t", answers=[],
                   calls=[call], reads=[Read(api="run", path=f"/v2/{NAME}")])
    plan = plan.model_copy(update={"actions": [*plan.actions, gated]})
    report, _ = apply(fake, plan, confirmed(tmp_path, plan))
    entry = report.audit[-1]
    assert asked == ["test.gated"] and entry.outcome == "pending" and entry.requests == []
    assert "pending: test.gated (the live TLS probe does not see the managed certificate yet)" in report.message
    assert not any(r.url.path.endswith(":detach") for r in fake.requests)


def test_the_change_sets_the_probe_within_googles_caps_and_keeps_everything_else(tmp_path):
    raw = service(revision=f"{SVC}-fixed-name")
    raw["template"]["containers"][0].pop("resources")
    raw["template"]["containers"][0]["startupProbe"] = {"httpGet": {"path": "/health", "port": 8080},
                                                        "timeoutSeconds": 240, "periodSeconds": 240, "failureThreshold": 1}
    raw["template"]["containers"][0]["buildInfo"] = {"functionTarget": "x"}
    svc = run.Service.from_json(raw)
    p = params(tmp_path, **{"cloud_run.vpc_egress": "PRIVATE_RANGES_ONLY"})
    change = run.change_for(svc, p, fix={"startup", "vpc", "cpu_boost"}, startup_s=300)
    assert change["startupProbe"] == {"initialDelaySeconds": 60, "periodSeconds": 10, "failureThreshold": 24}
    body = run.apply_change(raw, change)
    c = body["template"]["containers"][0]
    # the handler is kept; timeout <= period (Google: "Must be smaller than period_seconds")
    assert c["startupProbe"] == {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 60,
                                 "periodSeconds": 10, "failureThreshold": 24, "timeoutSeconds": 10}
    assert run.probe_window_s(c["startupProbe"]) == 300 and run.in_effect(body, change)
    assert c["resources"] == {"cpuIdle": True, "startupCpuBoost": True}   # creating resources keeps the default CPU
    assert "buildInfo" not in c and "revision" not in body["template"]    # output only / a name cannot be reused
    assert body["template"]["vpcAccess"]["egress"] == "PRIVATE_RANGES_ONLY"
    assert not run.in_effect(raw, change)
    assert run.change_for(svc, p, fix={"startup"}, startup_s=600) == {}   # past 480 s no probe helps (see checks)
