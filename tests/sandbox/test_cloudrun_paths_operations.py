"""Cloud Run v2 revisions, Network Management connectivity tests and failing operations, in-process."""
from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from runbook_lib.sandbox.emulator import Emulator
from runbook_lib.sandbox.scenario import load_scenario, validate_scenario
from runbook_lib.sandbox.state import SandboxState

from .kit import LoopThread, sandbox_params

P, R = "netra-staging", "us-central1"
SCALE = 0.02
OP_S = 20 * SCALE + 0.01
SERVICE = f"/v2/projects/{P}/locations/{R}/services/netra-backend-staging"
TESTS = f"/v1/projects/{P}/locations/global/connectivityTests"
SQL = f"projects/{P}/instances/netra-staging-db"


class Api:
    def __init__(self, emulator: Emulator, client: httpx.Client, now: list[float]):
        self.emulator, self.client, self.now, self.state = emulator, client, now, emulator.state

    def call(self, method: str, api: str, path: str, **kw: Any) -> httpx.Response:
        return self.client.request(method, f"http://127.0.0.1:{self.emulator.ports[api]}{path}", **kw)

    def get(self, api: str, path: str, **kw: Any) -> dict[str, Any]:
        return self.call("GET", api, path, **kw).json()

    def finish(self, api: str, op: dict[str, Any]) -> dict[str, Any]:
        assert "done" not in op
        self.now[0] += OP_S
        return self.get(api, f"/{'v2' if api == 'run' else 'v1'}/{op['name']}")


def _api(loop_thread: LoopThread, scenario: Any) -> Iterator[Api]:
    now = [500.0]
    if isinstance(scenario, str):
        scenario = load_scenario(scenario)
    state = SandboxState(sandbox_params(scenario.name if scenario.name in ("healthy", "issue-1278") else "healthy"),
                         scenario, clock=lambda: now[0])
    em = Emulator(state, validate_responses=True)
    loop_thread.run(em.start())
    try:
        with httpx.Client(timeout=5) as client:
            yield Api(em, client, now)
        assert em.schema_problems == []
    finally:
        loop_thread.run(em.stop())


@pytest.fixture
def incident(loop_thread: LoopThread) -> Iterator[Api]:
    yield from _api(loop_thread, "issue-1278")


def _template(api: Api, **changes: Any) -> dict[str, Any]:
    service = api.get("run", SERVICE)
    template = service["template"]
    for key, value in changes.items():
        if key == "probe":
            template["containers"][0]["startupProbe"] = value
        elif key == "boost":
            template["containers"][0]["resources"]["startupCpuBoost"] = value
        else:
            template[key] = value
    return {"template": template, "traffic": service["traffic"]}


@pytest.mark.parametrize("probe, field", [
    ({"periodSeconds": 300, "failureThreshold": 1, "timeoutSeconds": 1, "tcpSocket": {"port": 8080}}, "periodSeconds"),
    ({"periodSeconds": 60, "failureThreshold": 5, "timeoutSeconds": 1, "tcpSocket": {"port": 8080}}, "failureThreshold"),
    ({"initialDelaySeconds": 600, "periodSeconds": 10, "timeoutSeconds": 1, "tcpSocket": {"port": 8080}},
     "initialDelaySeconds"),
])
def test_startup_probe_caps_are_refused(incident: Api, probe: dict[str, Any], field: str) -> None:
    r = incident.call("PATCH", "run", SERVICE, json=_template(incident, probe=probe))
    error = r.json()["error"]
    assert (r.status_code, error["status"]) == (400, "INVALID_ARGUMENT") and "240" in error["message"]
    assert error["details"][-1]["fieldViolations"][0]["field"].endswith(field)
    r = incident.call("PATCH", "run", SERVICE, json=_template(incident, timeout="3601s"))
    assert r.status_code == 400 and "3600s" in r.json()["error"]["message"]


def test_a_revision_that_cannot_start_in_the_probe_window_never_serves(incident: Api) -> None:
    before = incident.get("run", SERVICE)
    assert incident.state.ws_lifetime_s() == pytest.approx(300 * SCALE)
    op = incident.call("PATCH", "run", SERVICE, json=_template(incident, timeout="3600s")).json()
    assert incident.get("run", SERVICE)["reconciling"] is True
    done = incident.finish("run", op)
    assert done["done"] is True and done["error"]["code"] == 9  # FAILED_PRECONDITION
    assert "startup probe" in done["error"]["message"]
    after = incident.get("run", SERVICE)
    assert after["latestReadyRevision"] == before["latestReadyRevision"]
    assert after["latestCreatedRevision"] != before["latestCreatedRevision"]
    assert after["terminalCondition"]["state"] == "CONDITION_FAILED"
    assert incident.state.ws_lifetime_s() == pytest.approx(300 * SCALE)  # the old revision still serves
    failed = incident.get("run", f"/v2/{after['latestCreatedRevision']}")
    assert failed["conditions"][0]["state"] == "CONDITION_FAILED"


def test_cpu_boost_makes_the_revision_ready_and_rollback_is_traffic(incident: Api) -> None:
    before = incident.get("run", SERVICE)
    startup = incident.state.startup_latencies()["netra-backend-staging"]
    assert startup == (before["latestReadyRevision"].rsplit("/", 1)[-1], pytest.approx(600 * SCALE))
    op = incident.call("PATCH", "run", SERVICE, json=_template(incident, timeout="3600s", boost=True)).json()
    done = incident.finish("run", op)
    assert "error" not in done and done["response"]["latestReadyRevision"] != before["latestReadyRevision"]
    new = done["response"]["latestReadyRevision"].rsplit("/", 1)[-1]
    assert incident.state.startup_latencies()["netra-backend-staging"] == (new, pytest.approx(120 * SCALE))
    assert incident.get("run", SERVICE)["trafficStatuses"] == [
        {"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100, "revision": new}]
    assert incident.state.ws_lifetime_s() == pytest.approx(300 * SCALE)  # the auth service still has 300 s
    revisions = incident.get("run", f"{SERVICE}/revisions")["revisions"]
    assert len(revisions) == 2
    old = before["latestReadyRevision"].rsplit("/", 1)[-1]
    service = incident.get("run", SERVICE)
    rollback = {"template": service["template"],
                "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION", "revision": old, "percent": 100}]}
    done = incident.finish("run", incident.call("PATCH", "run", SERVICE, json=rollback).json())
    assert "error" not in done
    assert incident.get("run", SERVICE)["trafficStatuses"][0]["revision"] == old
    assert len(incident.get("run", f"{SERVICE}/revisions")["revisions"]) == 2  # traffic only: no new revision


def _connectivity(api: Api, test_id: str) -> dict[str, Any]:
    rev = api.get("run", SERVICE)["latestReadyRevision"]
    rid = rev.rsplit("/", 1)[-1]
    body = {"source": {"cloudRunRevision": {"uri": f"projects/{P}/locations/{R}/revisions/{rid}"}},
            "destination": {"cloudSqlInstance": SQL, "port": 5432}, "protocol": "TCP"}
    op = api.call("POST", "networkmanagement", TESTS, params={"testId": test_id}, json=body).json()
    pending = api.get("networkmanagement", f"{TESTS}/{test_id}")
    assert "reachabilityDetails" not in pending
    done = api.finish("networkmanagement", op)
    assert done["done"] is True and done["response"]["@type"].endswith("ConnectivityTest")
    return api.get("networkmanagement", f"{TESTS}/{test_id}")


@pytest.mark.parametrize("scenario, result, last_state, cause, failing", [
    ("healthy", "REACHABLE", "DELIVER", None, None),
    ("connector-not-ready", "UNREACHABLE", "DROP", "VPC_CONNECTOR_NOT_RUNNING", "ARRIVE_AT_VPC_CONNECTOR"),
    ("issue-1278", "UNREACHABLE", "DROP", "CLOUD_SQL_INSTANCE_NOT_RUNNING", "APPLY_ROUTE"),
])
def test_connectivity_test_traces_the_path_hop_by_hop(loop_thread: LoopThread, scenario: str, result: str,
                                                      last_state: str, cause: str | None, failing: str | None) -> None:
    for api in _api(loop_thread, scenario):
        test = _connectivity(api, "run-to-sql")
        details = test["reachabilityDetails"]
        steps = details["traces"][0]["steps"]
        assert details["result"] == result
        assert steps[0]["state"] == "START_FROM_CLOUD_RUN_REVISION" and steps[-1]["state"] == last_state
        if cause:
            assert steps[-1]["drop"]["cause"] == cause
            assert next(s for s in steps if s.get("causesDrop"))["state"] == failing
        else:
            assert steps[-1]["deliver"]["target"] == "CLOUD_SQL_INSTANCE"
            assert "ARRIVE_AT_VPC_CONNECTOR" in [s["state"] for s in steps]
        op = api.call("DELETE", "networkmanagement", f"{TESTS}/run-to-sql").json()
        api.finish("networkmanagement", op)
        assert api.call("GET", "networkmanagement", f"{TESTS}/run-to-sql").status_code == 404


def test_operation_fails_scenario_fails_the_connector_resize_with_googles_error(loop_thread: LoopThread) -> None:
    for api in _api(loop_thread, "operation-fails"):
        connector = f"/v1/projects/{P}/locations/{R}/connectors/staging-connector"
        op = api.call("PATCH", "vpcaccess", connector, params={"updateMask": "maxInstances"},
                      json={"maxInstances": 10}).json()
        done = api.finish("vpcaccess", op)
        assert done["done"] is True and "response" not in done
        assert done["error"]["code"] == 8 and "does not have enough resources" in done["error"]["message"]
        after = api.get("vpcaccess", connector)
        assert (after["state"], after["maxInstances"]) == ("READY", 3)  # unchanged


def test_a_failed_compute_operation_has_googles_error_fields(loop_thread: LoopThread) -> None:
    scenario = validate_scenario({"name": "fail-patch", "load_balancer": {"topology": "instance-groups"},
                                  "operations": {"fail": [{"api": "compute", "kind": "patch", "status": "INTERNAL",
                                                           "reason": "INTERNAL_ERROR", "message": "Internal error"}]}},
                                 "inline")
    for api in _api(loop_thread, scenario):
        path = f"/compute/v1/projects/{P}/global/backendServices/staging-backend-service"
        assert api.get("compute", path)["timeoutSec"] == 600
        op = api.call("PATCH", "compute", path, json={"timeoutSec": 900}).json()
        assert op["status"] == "PENDING"
        api.now[0] += OP_S
        done = api.get("compute", httpx.URL(op["selfLink"]).path)
        assert done["status"] == "DONE" and done["httpErrorStatusCode"] == 500
        assert done["error"]["errors"][0] == {"code": "INTERNAL_ERROR", "message": "Internal error"}
        assert api.get("compute", path)["timeoutSec"] == 600  # nothing changed


def test_a_new_revision_without_min_instances_cold_starts_and_with_them_is_warm(incident: Api) -> None:
    assert incident.state.startup_remaining_s() == 0  # the running revision already has its instances
    body = _template(incident, boost=True)
    done = incident.finish("run", incident.call("PATCH", "run", SERVICE, json=body).json())
    assert "error" not in done
    assert incident.state.startup_remaining_s() == pytest.approx(120 * SCALE - 0.0, abs=OP_S)  # a cold start
    incident.now[0] += 120 * SCALE
    assert incident.state.startup_remaining_s() == 0
    body = _template(incident, scaling={"maxInstanceCount": 20, "minInstanceCount": 1})
    done = incident.finish("run", incident.call("PATCH", "run", SERVICE, json=body).json())
    assert "error" not in done and incident.state.startup_remaining_s() == 0  # a warm instance serves at once
