"""Operations as Google returns them (issue 9): recognised in every state and shape, polled with
backoff on the discovery document's GET path, failed ones turned into Google's error."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from runbook_lib.errors import ApiError
from runbook_lib.gcp.api import is_operation, operation_path, operation_status
from tests.gcp.gcp_testkit import SleepRecorder, client

pytestmark = pytest.mark.timeout(30)

P = "netra-staging"
LRO = f"projects/{P}/locations/us-central1/operations/1a2b"


@pytest.mark.parametrize("api,answer", [
    ("compute", {"kind": "compute#operation", "name": "operation-1", "status": "PENDING"}),
    ("compute", {"kind": "compute#operation", "name": "operation-1", "status": "RUNNING", "progress": 0}),
    ("sqladmin", {"kind": "sql#operation", "name": "5f2c", "status": "PENDING", "targetProject": P}),
    ("vpcaccess", {"name": LRO, "metadata": {"@type": "type.googleapis.com/google.cloud.vpcaccess.v1.OperationMetadata"}}),
    ("run", {"name": LRO, "metadata": {"@type": "type.googleapis.com/google.cloud.run.v2.Service"}}),
    ("run", {"name": LRO, "done": True, "response": {"name": "x"}}),
    ("networkmanagement", {"name": f"projects/{P}/locations/global/operations/op-7"}),
])
def test_operations_are_recognised_while_still_running(api, answer):
    assert is_operation(api, answer)


@pytest.mark.parametrize("api,answer", [
    ("run", {"name": f"projects/{P}/locations/us-central1/services/s", "template": {}}),
    ("secretmanager", {"name": f"projects/{P}/secrets/s/versions/1", "state": "ENABLED"}),
    ("vpcaccess", {"name": f"projects/{P}/locations/us-central1/connectors/c", "state": "READY"}),
    ("run", []),
])
def test_resources_are_not_operations(api, answer):
    assert not is_operation(api, answer)


@pytest.mark.parametrize("api,op,path", [
    ("compute", {"name": "op-g", "selfLink": f"https://compute.googleapis.com/compute/v1/projects/{P}/global/operations/op-g"},
     f"/compute/v1/projects/{P}/global/operations/op-g"),
    ("compute", {"name": "op-r", "region": f"https://compute.googleapis.com/compute/v1/projects/{P}/regions/us-central1"},
     f"/compute/v1/projects/{P}/regions/us-central1/operations/op-r"),
    ("compute", {"name": "op-z", "zone": f"https://www.googleapis.com/compute/v1/projects/{P}/zones/us-central1-b"},
     f"/compute/v1/projects/{P}/zones/us-central1-b/operations/op-z"),
    ("sqladmin", {"name": "5f2c", "targetProject": P,
                  "selfLink": f"https://sqladmin.googleapis.com/sql/v1beta4/projects/{P}/operations/5f2c"},
     f"/v1/projects/{P}/operations/5f2c"),
    ("vpcaccess", {"name": LRO}, f"/v1/{LRO}"),
    ("run", {"name": LRO}, f"/v2/{LRO}"),
    ("networkmanagement", {"name": f"projects/{P}/locations/global/operations/op-7"},
     f"/v1/projects/{P}/locations/global/operations/op-7"),
])
def test_get_paths_follow_the_discovery_documents(api, op, path):
    # compute {global,region,zone}Operations.get, sqladmin operations.get (v1), v1|v2/{+name}
    assert operation_path(api, op, P) == path


def test_status_of_every_shape():
    assert operation_status({"kind": "compute#operation", "status": "RUNNING"}) == "RUNNING"
    assert operation_status({"name": LRO}) == "RUNNING"
    assert operation_status({"name": LRO, "done": True}) == "DONE"


def test_polls_with_growing_backoff_reporting_each_poll_then_fails_with_googles_error():
    answers = [httpx.Response(200, json={"name": LRO}), httpx.Response(200, json={"name": LRO}),
               httpx.Response(200, json={"name": LRO, "done": True, "error": {
                   "code": 9, "message": "Revision 'svc-00002' is not ready and cannot serve traffic."}})]
    calls: list[httpx.Request] = []

    def handler(request):
        calls.append(request)
        return answers[len(calls) - 1]

    seen: list[str] = []
    sleeps = SleepRecorder()

    async def go():
        async with client(handler) as c:
            c._sleep = sleeps
            await c.wait_operation("run", {"name": LRO}, deadline_s=60, first_poll_s=0.5,
                                   on_poll=lambda op: seen.append(operation_status(op)))

    with pytest.raises(ApiError) as info:
        asyncio.run(go())
    assert info.value.kind == "operation" and "is not ready and cannot serve traffic" in str(info.value)
    assert "(code 9)" in str(info.value)
    assert [r.url.path for r in calls] == [f"/v2/{LRO}"] * 3 and seen == ["RUNNING", "RUNNING", "DONE"]
    assert len(sleeps.delays) == 3 and all(d > 0 for d in sleeps.delays)  # never a busy loop
    assert sleeps.delays[0] < sleeps.delays[2]  # backoff grows (x1.5 per poll, +-20 % jitter)
