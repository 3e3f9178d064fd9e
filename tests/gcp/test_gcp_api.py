"""ApiClient against httpx.MockTransport handlers: retries, deadlines, pagination, error translation."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from runbook_lib.errors import ApiError
from runbook_lib.gcp.api import ApiCall, describe, google_error, operation_state, retry_after_s
from tests.gcp.gcp_testkit import SleepRecorder, client, fixture, make_params

pytestmark = pytest.mark.timeout(30)

CONNECTOR = "/v1/projects/netra-staging/locations/us-central1/connectors/staging-connector"


def run(coro):
    return asyncio.run(coro)


async def read_once(handler, *, params=None, path=CONNECTOR, api="vpcaccess", sleeps=None, **kw):
    async with client(handler, params) as c:
        if sleeps is not None:
            c._sleep = sleeps
        rec = await c.read("vpcaccess.connector", api, path, **kw)
        return rec, c.log


def counting(*responses):
    """A handler answering each request with the next response (the last one repeats)."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return responses[min(len(calls), len(responses)) - 1]

    handler.calls = calls
    return handler


# -- success, retries, deadlines ----------------------------------------------------------------

def test_success_records_body_and_log():
    body = fixture("vpcaccess--connector-ready.json")
    rec, log = run(read_once(counting(httpx.Response(200, json=body))))
    assert rec.ok and rec.body == body and rec.status == 200 and rec.pages == 1
    assert rec.url == "https://vpcaccess.googleapis.com" + CONNECTOR
    assert [(e.method, e.status) for e in log] == [("GET", 200)]
    assert log[0].url.endswith(CONNECTOR) and log[0].attempt == 1 and log[0].elapsed_s >= 0


def test_retries_503_then_succeeds_with_backoff():
    handler = counting(httpx.Response(503), httpx.Response(503), httpx.Response(200, json={"state": "READY"}))
    sleeps = SleepRecorder()
    rec, log = run(read_once(handler, sleeps=sleeps))
    assert rec.ok and rec.body == {"state": "READY"}
    assert [e.status for e in log] == [503, 503, 200]
    assert len(sleeps.delays) == 2 and sleeps.delays[1] > 0  # exponential backoff with jitter
    assert 0.25 <= sleeps.delays[0] <= 0.5 and 0.5 <= sleeps.delays[1] <= 1.0


def test_429_honours_retry_after():
    handler = counting(httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200, json={}))
    sleeps = SleepRecorder()
    rec, _ = run(read_once(handler, sleeps=sleeps))
    assert rec.ok and sleeps.delays == [2.0]


def test_retry_after_is_bounded_by_a_cap():
    handler = counting(httpx.Response(429, headers={"Retry-After": "120"}), httpx.Response(200, json={}))
    sleeps = SleepRecorder()
    rec, _ = run(read_once(handler, params=make_params(**{"deadlines.api_s": 100}), sleeps=sleeps))
    assert rec.ok and sleeps.delays == [32.0]


def test_retry_after_beyond_the_deadline_is_not_waited():
    handler = counting(httpx.Response(429, headers={"Retry-After": "3600"}))
    sleeps = SleepRecorder()
    rec, _ = run(read_once(handler, sleeps=sleeps))
    assert not rec.ok and rec.error.kind == "rate_limited" and sleeps.delays == []
    assert len(handler.calls) == 1
    assert "netra-staging" in rec.error.message


def test_5xx_after_all_retries_is_server_error():
    handler = counting(httpx.Response(500, json={"error": {"code": 500, "message": "backend error"}}))
    sleeps = SleepRecorder()
    rec, _ = run(read_once(handler, params=make_params(**{"deadlines.retries": 2}), sleeps=sleeps))
    assert not rec.ok and rec.error.kind == "server" and rec.error.status == 500
    assert len(handler.calls) == 3 and "3 attempts" in rec.error.message and "backend error" in rec.error.message


def test_connection_error_is_retried_then_network():
    calls = []

    def handler(request):
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    sleeps = SleepRecorder()
    rec, _ = run(read_once(handler, params=make_params(**{"deadlines.retries": 1}), sleeps=sleeps))
    assert not rec.ok and rec.error.kind == "network"
    assert len(calls) == 2 and "vpcaccess" in rec.error.message


def test_slow_handler_ends_at_the_deadline_as_timeout():
    async def slow(request):
        await asyncio.sleep(5)
        return httpx.Response(200, json={})

    rec, log = run(read_once(slow, params=make_params(**{"deadlines.api_s": 0.2})))
    assert not rec.ok and rec.error.kind == "timeout"
    assert rec.error.message == "no answer from vpcaccess (https://vpcaccess.googleapis.com) within 0.2 s"
    assert log[-1].outcome == "timeout"


# -- error translation --------------------------------------------------------------------------

def test_403_permission_names_the_viewer_role_and_project():
    handler = counting(httpx.Response(403, json=fixture("error--permission-denied.json")))
    rec, _ = run(read_once(handler))
    assert rec.error.kind == "permission" and rec.error.status == 403
    assert "roles/vpcaccess.viewer" in rec.error.message and "project netra-staging" in rec.error.message


@pytest.mark.parametrize("api,role", [
    ("sqladmin", "roles/cloudsql.viewer"), ("compute", "roles/compute.viewer"),
    ("secretmanager", "roles/secretmanager.viewer"), ("run", "roles/run.viewer"),
])
def test_403_role_per_api(api, role):
    handler = counting(httpx.Response(403, json={"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "no"}}))
    rec, _ = run(read_once(handler, api=api, path="/x"))
    assert role in rec.error.message


def test_403_on_a_mutation_names_the_admin_role():
    handler = counting(httpx.Response(403, json=fixture("error--permission-denied.json")))

    async def go():
        async with client(handler) as c:
            await c.request("PATCH", "sqladmin", "/v1/projects/netra-staging/instances/netra-staging-db", body={})

    with pytest.raises(ApiError) as info:
        run(go())
    assert info.value.kind == "permission" and "roles/cloudsql.admin" in str(info.value)


def test_service_disabled_is_api_disabled_with_the_enable_command():
    handler = counting(httpx.Response(403, json=fixture("error--service-disabled.json")))
    rec, _ = run(read_once(handler))
    assert rec.error.kind == "api_disabled"
    assert "`gcloud services enable vpcaccess.googleapis.com --project netra-staging`" in rec.error.message


def test_sqladmin_disabled_names_the_sqladmin_service():
    body = {"error": {"code": 403, "status": "PERMISSION_DENIED",
                      "message": "Cloud SQL Admin API has not been used in project 1 before or it is disabled."}}
    rec, _ = run(read_once(counting(httpx.Response(403, json=body)), api="sqladmin", path="/v1/projects/p/instances/i"))
    assert rec.error.kind == "api_disabled"
    assert "gcloud services enable sqladmin.googleapis.com --project netra-staging" in rec.error.message


def test_compute_access_not_configured_is_api_disabled():
    handler = counting(httpx.Response(403, json=fixture("error--compute-access-not-configured.json")))
    rec, _ = run(read_once(handler, api="compute", path="/compute/v1/projects/netra-staging/global/healthChecks"))
    assert rec.error.kind == "api_disabled" and "compute.googleapis.com" in rec.error.message


def test_404_is_not_found_naming_what_and_path():
    rec, _ = run(read_once(counting(httpx.Response(404, json=fixture("error--not-found.json")))))
    assert rec.error.kind == "not_found"
    assert rec.error.message == f"connector staging-connector not found: {CONNECTOR}"


def test_401_says_how_to_log_in():
    rec, _ = run(read_once(counting(httpx.Response(401, json={"error": {"code": 401, "status": "UNAUTHENTICATED"}}))))
    assert rec.error.kind == "unauthenticated"
    assert "`gcloud auth application-default login`" in rec.error.message


def test_body_that_is_not_json_is_malformed():
    rec, _ = run(read_once(counting(httpx.Response(200, content=b'{"name": "projects/x", "sta'))))
    assert not rec.ok and rec.error.kind == "malformed"
    assert rec.error.message == "vpcaccess returned a response that is not JSON (truncated?)"


class _CutStream(httpx.AsyncByteStream):
    async def __aiter__(self):
        yield b'{"name": "projects/netra-staging'
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def test_body_cut_mid_transfer_is_malformed():
    rec, _ = run(read_once(counting(httpx.Response(200, stream=_CutStream()))))
    assert not rec.ok and rec.error.kind == "malformed" and "truncated" in rec.error.message


def test_error_messages_are_redacted():
    body = {"error": {"code": 400, "message": "bad header Bearer ya29.a0AfH6SMBexampletokenvalue"}}
    rec, _ = run(read_once(counting(httpx.Response(400, json=body))))
    assert rec.error.kind == "bad_request" and "ya29" not in rec.error.message


# -- pagination -----------------------------------------------------------------------------------

def test_pagination_merges_pages():
    pages = [fixture("secretmanager--secrets-page1.json"), fixture("secretmanager--secrets-page2.json")]
    seen_tokens = []

    def handler(request):
        token = request.url.params.get("pageToken")
        seen_tokens.append(token)
        return httpx.Response(200, json=pages[1] if token else pages[0])

    rec, _ = run(read_once(handler, api="secretmanager", path="/v1/projects/netra-staging/secrets",
                           list_field="secrets"))
    assert rec.ok and rec.pages == 2
    assert seen_tokens == [None, pages[0]["nextPageToken"]]
    assert len(rec.body["secrets"]) == 8 and "nextPageToken" not in rec.body
    assert rec.body["secrets"][-1]["name"].endswith("/legacy-api-token")


def test_empty_list_has_the_field():
    rec, _ = run(read_once(counting(httpx.Response(200, json={})), api="secretmanager",
                           path="/v1/projects/p/secrets/s/versions", list_field="versions"))
    assert rec.ok and rec.body == {"versions": []}


def test_repeated_page_token_is_malformed():
    rec, _ = run(read_once(counting(httpx.Response(200, json={"items": [1], "nextPageToken": "same"})),
                           api="compute", path="/compute/v1/projects/p/global/healthChecks", list_field="items"))
    assert not rec.ok and rec.error.kind == "malformed"


# -- mutations, operations, credentials ---------------------------------------------------------

def test_post_mutation_is_not_repeated_on_5xx():
    handler = counting(httpx.Response(503), httpx.Response(200, json={}))

    async def go():
        async with client(handler) as c:
            c._sleep = SleepRecorder()
            await c.request("POST", "compute", "/compute/v1/projects/p/global/sslCertificates", body={"name": "c"})

    with pytest.raises(ApiError) as info:
        run(go())
    assert info.value.kind == "server" and len(handler.calls) == 1


def test_patch_mutation_is_retried_and_sends_json():
    handler = counting(httpx.Response(503), httpx.Response(200, json={"name": "op-1", "status": "RUNNING"}))

    async def go():
        async with client(handler) as c:
            c._sleep = SleepRecorder()
            return await c.request("PATCH", "compute", "/compute/v1/projects/p/global/backendServices/b",
                                   body={"timeoutSec": 600})

    assert run(go())["name"] == "op-1"
    assert json.loads(handler.calls[-1].content) == {"timeoutSec": 600}


def test_wait_operation_polls_compute_until_done():
    link = "https://compute.googleapis.com/compute/v1/projects/netra-staging/global/operations/op-1"
    handler = counting(httpx.Response(200, json={"name": "op-1", "status": "RUNNING", "selfLink": link}),
                       httpx.Response(200, json={"name": "op-1", "status": "DONE", "selfLink": link}))

    async def go():
        async with client(handler) as c:
            c._sleep = SleepRecorder()
            return await c.wait_operation("compute", {"name": "op-1", "status": "PENDING", "selfLink": link},
                                          deadline_s=60)

    assert run(go())["status"] == "DONE"
    assert handler.calls[0].url.path == "/compute/v1/projects/netra-staging/global/operations/op-1"


def test_wait_operation_raises_on_lro_error():
    pending = fixture("vpcaccess--operation-pending.json")
    failed = {**pending, "done": True, "error": {"code": 9, "message": "connector is in an error state"}}
    handler = counting(httpx.Response(200, json=failed))

    async def go():
        async with client(handler) as c:
            c._sleep = SleepRecorder()
            await c.wait_operation("vpcaccess", pending, deadline_s=60)

    with pytest.raises(ApiError) as info:
        run(go())
    assert info.value.kind == "operation" and "connector is in an error state" in str(info.value)
    assert handler.calls[0].url.path == "/v1/" + pending["name"]


def test_wait_operation_times_out():
    op = {"kind": "sql#operation", "name": "op-9", "status": "RUNNING"}
    handler = counting(httpx.Response(200, json=op))

    async def go():
        async with client(handler) as c:
            await c.wait_operation("sqladmin", op, deadline_s=0.2)

    with pytest.raises(ApiError) as info:
        run(go())
    assert info.value.kind == "timeout" and "still running after 0.2 s" in str(info.value)


def test_operation_state_shapes():
    assert operation_state({"kind": "compute#operation", "status": "DONE",
                            "error": {"errors": [{"code": "X", "message": "quota"}]}}) == (True, "quota")
    assert operation_state({"kind": "sql#operation", "status": "PENDING"}) == (False, "")
    assert operation_state(fixture("vpcaccess--operation-pending.json")) == (False, "")
    assert operation_state({"name": "operations/x", "done": True, "response": {}}) == (True, "")


class FakeCredentials:
    def __init__(self):
        self.token, self.valid, self.refreshed = None, False, 0

    def refresh(self, request):
        self.refreshed += 1
        self.token, self.valid = "tok-123456789", True


def test_credentials_are_refreshed_once_and_sent_as_bearer():
    handler = counting(httpx.Response(200, json={}))
    creds = FakeCredentials()

    async def go():
        async with client(handler, credentials=creds) as c:
            await asyncio.gather(c.read("a", "run", "/v2/x"), c.read("b", "run", "/v2/y"))

    run(go())
    assert creds.refreshed == 1
    assert all(r.headers["Authorization"] == "Bearer tok-123456789" for r in handler.calls)


def test_anonymous_sends_no_authorization():
    handler = counting(httpx.Response(200, json={}))
    run(read_once(handler))
    assert "Authorization" not in handler.calls[0].headers


# -- pure helpers ---------------------------------------------------------------------------------

def test_retry_after_parsing():
    assert retry_after_s("3") == 3.0 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_google_error_reads_reasons():
    err = google_error(json.dumps(fixture("error--service-disabled.json")).encode())
    assert err.service_disabled and err.status == "PERMISSION_DENIED"
    assert not google_error(json.dumps(fixture("error--permission-denied.json")).encode()).service_disabled


def test_describe_paths():
    assert describe("/compute/v1/projects/p/global/backendServices/b/getHealth") == "backend service b"
    assert describe("/v1/projects/p/secrets/s:addVersion") == "secret s"
    assert describe("/v1/projects/p/secrets") == "project p"


def test_api_call_keeps_the_secret_out_of_every_rendering():
    from pydantic import SecretStr

    call = ApiCall(method="POST", api="secretmanager", path="/v1/projects/p/secrets/s:addVersion",
                   gcloud="printf %s \"$VALUE\" | gcloud secrets versions add s --data-file=-",
                   description="add", secret=SecretStr("hunter2-very-secret"), secret_name="s")
    for text in (repr(call), str(call), call.model_dump_json(), json.dumps(call.model_dump()), call.gcloud):
        assert "hunter2" not in text
    assert call.send_body() == {"payload": {"data": "aHVudGVyMi12ZXJ5LXNlY3JldA=="}}


def test_every_product_declares_itself_once_and_has_an_endpoint():
    from runbook_lib.gcp import compute, networkmanagement, run, secretmanager, sqladmin, vpcaccess
    from runbook_lib.gcp.products import PRODUCTS
    from runbook_lib.params import Endpoints

    modules = (vpcaccess, sqladmin, compute, secretmanager, run, networkmanagement)
    assert list(PRODUCTS) == [m.API for m in modules]  # the order "expected one of ..." lists them
    for module in modules:
        product = PRODUCTS[module.API]
        assert product is module.PRODUCT and product.api in Endpoints.model_fields
        assert product.service == f"{product.api}.googleapis.com"
        assert product.read_role.startswith("roles/") and product.write_role.startswith("roles/")
