"""The REST emulator: real paths, real JSON shapes (compared with recorded Google responses),
Google's error format, pagination, Operations for mutations, the request log and test faults."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Iterator

import httpx
import pytest

from runbook_lib.sandbox.emulator import Emulator
from runbook_lib.sandbox.state import SandboxState

from .kit import LoopThread, make_state, sample

P, R = "netra-staging", "us-central1"
CONNECTOR = f"/v1/projects/{P}/locations/{R}/connectors/staging-connector"
INSTANCE = f"/v1/projects/{P}/instances/netra-staging-db"
GLOBAL = f"/compute/v1/projects/{P}/global"
SECRETS = f"/v1/projects/{P}/secrets"


@dataclass
class Api:
    state: SandboxState
    emulator: Emulator
    client: httpx.Client

    def url(self, api: str, path: str) -> str:
        return f"http://127.0.0.1:{self.emulator.ports[api]}{path}"

    def get(self, api: str, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(self.url(api, path), **kw)

    def call(self, method: str, api: str, path: str, **kw: Any) -> httpx.Response:
        return self.client.request(method, self.url(api, path), **kw)


def _start(loop_thread: LoopThread, state: SandboxState) -> Iterator[Api]:
    emulator = Emulator(state, validate_responses=True)
    loop_thread.run(emulator.start())
    try:
        with httpx.Client(timeout=5.0) as client:
            yield Api(state, emulator, client)
        assert emulator.schema_problems == []  # every response conformed to its discovery schema
    finally:
        loop_thread.run(emulator.stop())


@pytest.fixture
def api(loop_thread: LoopThread) -> Iterator[Api]:
    yield from _start(loop_thread, make_state("issue-1278"))


# --- shapes -----------------------------------------------------------------------------------

CENTRAL = {"state", "settings", "ipConfiguration", "ipAddresses", "timeoutSec", "healthChecks",
           "checkIntervalSec", "managed", "status", "domainStatus", "sslCertificates", "template"}


def _schema(values: list[Any]) -> Any:
    """Merge sample values of one position into one example (dicts: union of keys)."""
    dicts = [v for v in values if isinstance(v, dict)]
    if dicts:
        merged: dict[str, list[Any]] = {}
        for d in dicts:
            for k, v in d.items():
                merged.setdefault(k, []).append(v)
        return {k: _schema(vs) for k, vs in merged.items()}
    lists = [v for v in values if isinstance(v, list)]
    if lists:
        return [_schema([x for lst in lists for x in lst])] if any(lists) else []
    return values[0] if values else None


def _jtype(v: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}[type(v)]


def _compare(ours: Any, theirs: Any, path: str, problems: list[str]) -> None:
    if _jtype(ours) != _jtype(theirs):
        problems.append(f"{path}: {_jtype(ours)} here, {_jtype(theirs)} in the sample")
        return
    if isinstance(ours, dict):
        for key, value in ours.items():
            # domainStatus is a map keyed by domain: compare its values, not its keys
            ref = next(iter(theirs.values()), None) if path.endswith("domainStatus") else theirs.get(key)
            if ref is not None or key in theirs:
                _compare(value, ref, f"{path}.{key}", problems)
        central = CENTRAL - ({"managed"} if ours.get("type") == "SELF_MANAGED" else set())
        for key in (central & set(theirs)) - set(ours):
            if not path.endswith("domainStatus"):
                problems.append(f"{path}.{key}: missing (the sample has it)")
    elif isinstance(ours, list) and ours and theirs:
        for i, item in enumerate(ours):
            _compare(item, theirs[0], f"{path}[{i}]", problems)


def assert_same_shape(ours: Any, sample_doc: Any, *, serverless: bool = False) -> None:
    problems: list[str] = []
    _compare(ours, _schema([sample_doc]), "$", problems)
    if serverless:  # the recorded backends are instance groups; Google rejects health checks on serverless NEGs
        problems = [p for p in problems if not p.endswith(".healthChecks: missing (the sample has it)")]
    assert problems == []


@pytest.mark.parametrize("scenario", ["instance-groups", "certificate-not-visible", "healthy"])
def test_responses_have_the_field_names_and_types_of_the_real_apis(loop_thread: LoopThread, scenario: str) -> None:
    serverless = scenario != "instance-groups"
    for api in _start(loop_thread, make_state(scenario)):
        instances = api.get("sqladmin", f"/v1/projects/{P}/instances").json()
        assert_same_shape(instances, sample("cloudsql1--cloudsql-instances.json"))
        assert_same_shape(api.get("sqladmin", INSTANCE).json(),
                          sample("cloudsql1--cloudsql-instances.json")["items"][0])
        for coll, name in [("backendServices", "lb1--compute-backendServices.json"),
                           ("healthChecks", "lb1--healthChecks.json"),
                           ("sslCertificates", "lb3--compute-sslCertificates.json"),
                           ("targetHttpsProxies", "lb3--compute-targetHttpsProxies.json")]:
            listing = api.get("compute", f"{GLOBAL}/{coll}").json()
            assert_same_shape(listing, sample(name), serverless=serverless)
        group = api.get("compute", f"{GLOBAL}/backendServices/staging-backend-service").json()["backends"][0]["group"]
        health = api.call("POST", "compute", f"{GLOBAL}/backendServices/staging-backend-service/getHealth",
                          json={"group": group}).json()
        if serverless:
            assert health == {"kind": "compute#backendServiceGroupHealth"}  # a serverless NEG has no health
        else:
            assert_same_shape(health, sample("lb2--backendService-web-backend-service-get-health-instanceGroups-"
                                             "lb-backend-example-us-east1-b.json"))
        assert_same_shape(api.get("run", f"/v2/projects/{P}/locations/{R}/services").json(),
                          sample("cloudrun1--cloudrun_services.json"))


def test_managed_certificate_shape_carries_status_and_domain_status(loop_thread: LoopThread) -> None:
    for api in _start(loop_thread, make_state("certificate-not-visible")):
        certs = api.get("compute", f"{GLOBAL}/sslCertificates").json()["items"]
        managed = next(c for c in certs if c["type"] == "MANAGED")
        assert managed["managed"]["status"] == "PROVISIONING"
        assert set(managed["managed"]["domainStatus"].values()) == {"FAILED_NOT_VISIBLE"}


def test_connector_and_secret_shapes_follow_the_rest_reference(api: Api) -> None:
    c = api.get("vpcaccess", CONNECTOR).json()
    assert c["name"] == CONNECTOR.removeprefix("/v1/")
    assert {k: type(v) for k, v in c.items()} == {
        "name": str, "network": str, "state": str, "minThroughput": int, "maxThroughput": int,
        "connectedProjects": list, "machineType": str, "minInstances": int, "maxInstances": int,
        "ipCidrRange": str}
    secret = api.get("secretmanager", f"{SECRETS}/database-url").json()
    assert set(secret) >= {"name", "replication", "createTime", "etag"}
    assert secret["name"].startswith("projects/") and secret["name"].endswith("/secrets/database-url")
    versions = api.get("secretmanager", f"{SECRETS}/database-url/versions").json()
    assert set(versions) == {"versions", "totalSize"}
    assert {"name", "createTime", "state", "etag"} <= set(versions["versions"][0])


# --- errors and pagination ------------------------------------------------------------------------

def test_unknown_paths_and_resources_answer_in_googles_error_format(api: Api) -> None:
    r = api.get("compute", f"{GLOBAL}/firewallz")
    assert r.status_code == 404
    error = r.json()["error"]
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    r = api.get("compute", f"{GLOBAL}/backendServices/nope")
    assert r.json()["error"]["message"] == f"The resource 'projects/{P}/global/backendServices/nope' was not found"
    assert r.json()["error"]["errors"][0]["reason"] == "notFound"
    r = api.get("secretmanager", f"{SECRETS}/nope")
    assert (r.status_code, r.json()["error"]["status"]) == (404, "NOT_FOUND")
    # a request sent to another API's endpoint is a 404 too, as it would be at Google
    assert api.get("vpcaccess", INSTANCE).status_code == 404
    # a method Google has (compute v1 firewalls.list) that the sandbox does not emulate
    r = api.get("compute", f"{GLOBAL}/firewalls")
    assert (r.status_code, r.json()["error"]["status"]) == (501, "UNIMPLEMENTED")


def test_another_project_is_permission_denied(api: Api) -> None:
    r = api.get("sqladmin", "/v1/projects/someone-else/instances/netra-staging-db")
    assert r.status_code == 403
    assert r.json()["error"]["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize("api_name, path, size_param, key", [
    ("compute", f"{GLOBAL}/healthChecks", "maxResults", "items"),
    ("secretmanager", SECRETS, "pageSize", "secrets"),
    ("run", f"/v2/projects/{P}/locations/{R}/services", "pageSize", "services"),
])
def test_pagination_follows_next_page_token(api: Api, api_name: str, path: str, size_param: str, key: str) -> None:
    everything = api.get(api_name, path).json()[key]
    collected, token, pages = [], None, 0
    while True:
        query = {size_param: 1, **({"pageToken": token} if token else {})}
        page = api.get(api_name, path, params=query).json()
        collected += page[key]
        pages += 1
        token = page.get("nextPageToken")
        if not token:
            break
    assert collected == everything and pages == len(everything) > 1
    r = api.get(api_name, path, params={"pageToken": "garbage"})
    assert (r.status_code, r.json()["error"]["status"]) == (400, "INVALID_ARGUMENT")


# --- mutations return operations that finish later -------------------------------------------------

OP_S = 20 * 0.02 + 0.01  # a little past the scenarios' operations.duration_s, scaled


@pytest.fixture
def clocked(loop_thread: LoopThread, request: pytest.FixtureRequest) -> Iterator[tuple[Api, list[float]]]:
    now = [1000.0]
    scenario = getattr(request, "param", "issue-1278")
    for api in _start(loop_thread, make_state(scenario, clock=lambda: now[0])):
        yield api, now


def test_connector_patch_is_a_long_running_operation_done_only_later(clocked: tuple[Api, list[float]]) -> None:
    api, now = clocked
    r = api.call("PATCH", "vpcaccess", CONNECTOR, params={"updateMask": "minInstances,maxInstances"},
                 json={"minInstances": 2, "maxInstances": 10})
    op = r.json()
    assert r.status_code == 200 and "done" not in op and "/operations/" in op["name"]
    assert api.get("vpcaccess", CONNECTOR).json()["state"] == "UPDATING"
    assert api.get("vpcaccess", CONNECTOR).json()["maxInstances"] == 3  # not changed yet
    now[0] += OP_S
    done = api.get("vpcaccess", f"/v1/{op['name']}").json()
    assert done["done"] is True and done["response"]["maxInstances"] == 10
    assert done["response"]["@type"] == "type.googleapis.com/google.cloud.vpcaccess.v1.Connector"
    assert api.get("vpcaccess", CONNECTOR).json()["state"] == "READY"
    assert api.state.proxy_policy().mode == "reset"  # the database is still stopped


@pytest.mark.parametrize("body, text", [
    ({"minInstances": 5, "maxInstances": 4}, "must be greater than min_instances"),
    ({"minInstances": 1, "maxInstances": 4}, "min_instances must be at least 2"),
    ({"minInstances": 2, "maxInstances": 11}, "max_instances must be at most 10"),
])
def test_connector_limits_are_googles(api: Api, body: dict[str, int], text: str) -> None:
    bad = api.call("PATCH", "vpcaccess", CONNECTOR, params={"updateMask": "minInstances,maxInstances"}, json=body)
    assert bad.status_code == 400 and text in bad.json()["error"]["message"]
    tp = api.call("PATCH", "vpcaccess", CONNECTOR, params={"updateMask": "minThroughput"}, json={"minThroughput": 150})
    assert tp.status_code == 400 and "multiple of 100 from 200 through 900" in tp.json()["error"]["message"]
    net = api.call("PATCH", "vpcaccess", CONNECTOR, params={"updateMask": "network"}, json={"network": "other"})
    assert net.status_code == 400 and "cannot change" in net.json()["error"]["message"]


@pytest.mark.parametrize("clocked", ["connector-not-ready"], indirect=True)
def test_a_connector_in_error_is_deleted_and_recreated(clocked: tuple[Api, list[float]]) -> None:
    api, now = clocked
    assert api.state.proxy_policy().mode == "blackhole"
    r = api.call("PATCH", "vpcaccess", CONNECTOR, params={"updateMask": "maxInstances"}, json={"maxInstances": 10})
    assert (r.status_code, r.json()["error"]["status"]) == (400, "FAILED_PRECONDITION")
    op = api.call("DELETE", "vpcaccess", CONNECTOR).json()
    assert "done" not in op and api.get("vpcaccess", CONNECTOR).json()["state"] == "DELETING"
    now[0] += OP_S
    assert api.get("vpcaccess", f"/v1/{op['name']}").json()["done"] is True
    assert api.get("vpcaccess", CONNECTOR).status_code == 404
    body = {"network": "staging-vpc", "ipCidrRange": "10.1.0.0/28", "machineType": "e2-micro",
            "minInstances": 2, "maxInstances": 10}
    op = api.call("POST", "vpcaccess", f"/v1/projects/{P}/locations/{R}/connectors",
                  params={"connectorId": "staging-connector"}, json=body).json()
    assert "done" not in op and api.get("vpcaccess", CONNECTOR).json()["state"] == "CREATING"
    now[0] += OP_S
    op = api.get("vpcaccess", f"/v1/{op['name']}").json()
    assert op["done"] is True and op["response"]["state"] == "READY"
    assert api.state.proxy_policy().mode == "pass"


def test_sql_operation_runs_then_is_done_and_stopped_is_runnable_never(clocked: tuple[Api, list[float]]) -> None:
    api, now = clocked
    inst = api.get("sqladmin", INSTANCE).json()
    assert (inst["state"], inst["settings"]["activationPolicy"]) == ("RUNNABLE", "NEVER")  # no STOPPED in v1
    r = api.call("POST", "sqladmin", f"{INSTANCE}/restart")
    assert r.status_code == 400 and "not running" in r.json()["error"]["message"]
    op = api.call("PATCH", "sqladmin", INSTANCE, json={"settings": {"activationPolicy": "ALWAYS"}}).json()
    assert (op["kind"], op["status"], op["operationType"]) == ("sql#operation", "PENDING", "UPDATE")
    now[0] += OP_S / 2
    assert api.get("sqladmin", f"/v1/projects/{P}/operations/{op['name']}").json()["status"] == "RUNNING"
    assert api.get("sqladmin", INSTANCE).json()["settings"]["activationPolicy"] == "NEVER"
    now[0] += OP_S
    done = api.get("sqladmin", f"/v1/projects/{P}/operations/{op['name']}").json()
    assert done["status"] == "DONE" and "error" not in done and "endTime" in done
    inst = api.get("sqladmin", INSTANCE).json()
    assert inst["settings"]["activationPolicy"] == "ALWAYS" and inst["settings"]["settingsVersion"] == "2"
    assert inst["settings"]["databaseFlags"]  # a partial patch leaves other settings alone
    assert api.call("POST", "sqladmin", f"{INSTANCE}/restart").json()["operationType"] == "RESTART"
    # the connector is still capped below the demand: the wire is slow, not closed
    assert api.state.proxy_policy().mode == "delay"


@pytest.mark.parametrize("clocked", ["instance-groups"], indirect=True)
def test_instance_group_fixes_heal_the_health_checks(clocked: tuple[Api, list[float]]) -> None:
    api, now = clocked
    group = api.get("compute", f"{GLOBAL}/backendServices/staging-auth-service").json()["backends"][0]["group"]

    def health() -> set[str]:
        body = api.call("POST", "compute", f"{GLOBAL}/backendServices/staging-auth-service/getHealth",
                        json={"group": group}).json()
        return {s["healthState"] for s in body["healthStatus"]}

    assert health() == {"UNHEALTHY"}
    r = api.call("PATCH", "compute", f"{GLOBAL}/healthChecks/staging-auth-health-check",
                 json={"checkIntervalSec": 30, "timeoutSec": 60})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == ("Invalid value for field 'resource.timeoutSec': '60'. "
                                            "TimeoutSec should be less than checkIntervalSec.")
    op = api.call("PATCH", "compute", f"{GLOBAL}/healthChecks/staging-auth-health-check",
                  json={"checkIntervalSec": 60, "timeoutSec": 60, "unhealthyThreshold": 10}).json()
    assert (op["kind"], op["status"], op["operationType"]) == ("compute#operation", "PENDING", "patch")
    op_path = httpx.URL(op["selfLink"]).path
    assert health() == {"UNHEALTHY"}  # not applied before the operation is DONE
    now[0] += OP_S
    assert api.get("compute", op_path).json()["status"] == "DONE"
    assert health() == {"HEALTHY"}
    for bs in ("staging-auth-service", "staging-backend-service"):
        api.call("PATCH", "compute", f"{GLOBAL}/backendServices/{bs}", json={"timeoutSec": 600})
    now[0] += OP_S
    assert api.state.ws_lifetime_s() == pytest.approx(600 * 0.02)
    stale = api.call("PATCH", "compute", f"{GLOBAL}/backendServices/staging-auth-service",
                     json={"timeoutSec": 60, "fingerprint": "c3RhbGU="})
    assert stale.status_code == 412


def test_serverless_neg_backend_services_refuse_timeout_and_health_checks(api: Api) -> None:
    bs = api.get("compute", f"{GLOBAL}/backendServices/staging-backend-service").json()
    assert "healthChecks" not in bs and bs["timeoutSec"] == 30  # the API's documented default, not settable
    neg = bs["backends"][0]["group"]
    assert f"/regions/{R}/networkEndpointGroups/" in neg
    negs = api.get("compute", f"/compute/v1/projects/{P}/aggregated/networkEndpointGroups").json()
    listed = negs["items"][f"regions/{R}"]["networkEndpointGroups"]
    assert {(n["networkEndpointType"], n["cloudRun"]["service"]) for n in listed} == {
        ("SERVERLESS", "netra-backend-staging"), ("SERVERLESS", "auth-staging")}
    r = api.call("PATCH", "compute", f"{GLOBAL}/backendServices/staging-backend-service", json={"timeoutSec": 600})
    assert (r.status_code, r.json()["error"]["message"]) == (
        400, "Invalid value for field 'resource.timeoutSec': '600'. "
             "Timeout sec is not supported for a backend service with Serverless network endpoint groups.")
    assert r.json()["error"]["errors"][0]["reason"] == "invalid"
    same = api.call("PATCH", "compute", f"{GLOBAL}/backendServices/staging-backend-service", json={"timeoutSec": 30})
    assert same.status_code == 200  # sending back the value GET showed changes nothing
    hc = f"https://www.googleapis.com/compute/v1/projects/{P}/global/healthChecks/staging-backend-health-check"
    r = api.call("PATCH", "compute", f"{GLOBAL}/backendServices/staging-backend-service", json={"healthChecks": [hc]})
    assert (r.status_code, r.json()["error"]["message"]) == (
        400, "Invalid value for field 'resource.healthChecks': ''. "
             "A backend service cannot have a healthcheck with Serverless network endpoint group backends.")
    rule = api.get("compute", f"{GLOBAL}/forwardingRules").json()["items"][0]
    assert rule["IPAddress"] == "34.120.0.10" and rule["target"].endswith("/targetHttpsProxies/staging-https-proxy")
    um = api.get("compute", f"{GLOBAL}/urlMaps/staging-url-map").json()
    assert {h for r in um["hostRules"] for h in r["hosts"]} == {"staging.netrasystems.ai", "api-staging.netrasystems.ai"}


def test_requests_are_validated_against_the_discovery_schema(api: Api) -> None:
    cases = [
        ({"timeoutSecs": 600}, "Unknown name \"timeoutSecs\" at 'resource': Cannot find field."),
        ({"timeoutSec": "ten"}, "Invalid value at 'resource.timeoutSec' (TYPE_INT32)"),
        ({"protocol": "GOPHER"}, "Invalid value at 'resource.protocol' (TYPE_ENUM)"),
    ]
    for body, text in cases:
        r = api.call("PATCH", "compute", f"{GLOBAL}/backendServices/staging-backend-service", json=body)
        error = r.json()["error"]
        assert (r.status_code, error["status"]) == (400, "INVALID_ARGUMENT") and text in error["message"]
        violation = next(d for d in error["details"] if d["@type"].endswith("BadRequest"))["fieldViolations"][0]
        assert violation["field"].startswith("resource.")
    r = api.get("compute", f"{GLOBAL}/backendServices", params={"maxResult": 5})
    assert r.status_code == 400 and "Cannot bind query parameter" in r.json()["error"]["message"]
    r = api.get("compute", f"{GLOBAL}/backendServices", params={"maxResults": "many"})
    assert r.status_code == 400
    r = api.call("PATCH", "run", f"/v2/projects/{P}/locations/{R}/services/auth-staging",
                 json={"template": {"timeout": 600}})
    assert r.status_code == 400 and "service.template.timeout" in r.json()["error"]["message"]


def test_set_ssl_certificates_has_no_global_segment_and_replaces_the_list(clocked: tuple[Api, list[float]]) -> None:
    api, now = clocked
    old = api.call("POST", "compute", f"{GLOBAL}/targetHttpsProxies/staging-https-proxy/setSslCertificates",
                   json={"sslCertificates": []})
    assert old.status_code == 404  # compute v1: projects/{p}/targetHttpsProxies/{proxy}/setSslCertificates
    path = f"/compute/v1/projects/{P}/targetHttpsProxies/staging-https-proxy/setSslCertificates"
    link = f"https://www.googleapis.com/compute/v1/projects/{P}/global/sslCertificates/staging-legacy-cert"
    r = api.call("POST", "compute", path, json={"sslCertificates": [link] * 16})
    assert r.status_code == 400 and "at most 15" in r.json()["error"]["message"]
    assert api.call("POST", "compute", path, json={"sslCertificates": [link]}).json()["status"] == "PENDING"


def test_managed_certificate_provisions_only_when_attached_and_dns_points_at_the_lb(
        clocked: tuple[Api, list[float]]) -> None:
    api, now = clocked
    body = {"name": "staging-netrasystems-cert", "type": "MANAGED",
            "managed": {"domains": ["staging.netrasystems.ai", "api-staging.netrasystems.ai"]}}
    op = api.call("POST", "compute", f"{GLOBAL}/sslCertificates", json=body).json()
    assert op["operationType"] == "insert" and op["status"] == "PENDING"
    now[0] += OP_S
    assert api.call("POST", "compute", f"{GLOBAL}/sslCertificates", json=body).status_code == 409
    wildcard = {**body, "name": "wild", "managed": {"domains": ["*.netrasystems.ai"]}}
    assert api.call("POST", "compute", f"{GLOBAL}/sslCertificates", json=wildcard).status_code == 400
    now[0] += 300 * 0.02  # longer than provisioning_s: still PROVISIONING, because not attached
    cert = api.get("compute", f"{GLOBAL}/sslCertificates/staging-netrasystems-cert").json()
    assert cert["managed"]["status"] == "PROVISIONING"
    proxy = api.get("compute", f"{GLOBAL}/targetHttpsProxies/staging-https-proxy").json()
    attach = f"/compute/v1/projects/{P}/targetHttpsProxies/staging-https-proxy/setSslCertificates"
    r = api.call("POST", "compute", attach, json={"sslCertificates": proxy["sslCertificates"] + [op["targetLink"]]})
    assert r.json()["operationType"] == "setSslCertificates"
    now[0] += OP_S
    assert api.state.certificate_for("api-staging.netrasystems.ai") == "mismatch"  # PROVISIONING is not served
    now[0] += 60 * 0.02  # the scenario's provisioning time, scaled
    cert = api.get("compute", f"{GLOBAL}/sslCertificates/staging-netrasystems-cert").json()
    assert cert["managed"]["status"] == "ACTIVE" and set(cert["managed"]["domainStatus"].values()) == {"ACTIVE"}
    assert api.state.certificate_for("api-staging.netrasystems.ai") == "valid"
    proxy = api.get("compute", f"{GLOBAL}/targetHttpsProxies/staging-https-proxy").json()
    assert len(proxy["sslCertificates"]) == 2  # the legacy cert stays beside it


@pytest.mark.parametrize("clocked", ["certificate-not-visible"], indirect=True)
def test_managed_certificate_fails_not_visible_while_dns_points_elsewhere(clocked: tuple[Api, list[float]]) -> None:
    api, now = clocked
    now[0] += 60 * 0.02
    cert = api.get("compute", f"{GLOBAL}/sslCertificates/staging-netrasystems-cert").json()
    assert cert["managed"]["status"] == "PROVISIONING"
    assert set(cert["managed"]["domainStatus"].values()) == {"FAILED_NOT_VISIBLE"}
    for domain in ("staging.netrasystems.ai", "api-staging.netrasystems.ai"):
        api.call("POST", "compute", "/_sandbox/dns", json={"domain": domain, "ip": "34.120.0.10"})
    now[0] += 60 * 0.02
    cert = api.get("compute", f"{GLOBAL}/sslCertificates/staging-netrasystems-cert").json()
    assert cert["managed"]["status"] == "ACTIVE"


def test_secrets_are_created_and_versions_added_without_ever_echoing_values(api: Api) -> None:
    payload = "rbkcanary-test-value-0123456789"
    missing = api.state.secret_problems()
    r = api.call("POST", "secretmanager", SECRETS, params={"secretId": missing[-1]},
                 json={"replication": {"automatic": {}}})
    assert r.status_code == 200 and r.json()["name"].endswith(f"/secrets/{missing[-1]}")  # the resource itself
    assert api.call("POST", "secretmanager", SECRETS, params={"secretId": missing[-1]},
                    json={"replication": {"automatic": {}}}).json()["error"]["status"] == "ALREADY_EXISTS"
    version = api.call("POST", "secretmanager", f"{SECRETS}/{missing[-1]}:addVersion",
                       json={"payload": {"data": base64.b64encode(payload.encode()).decode()}}).json()
    assert version["state"] == "ENABLED" and version["name"].endswith("/versions/1")
    assert missing[-1] not in api.state.secret_problems()
    reads = [api.get("secretmanager", SECRETS), api.get("secretmanager", f"{SECRETS}/{missing[-1]}"),
             api.get("secretmanager", f"{SECRETS}/{missing[-1]}/versions"),
             api.get("secretmanager", f"{SECRETS}/{missing[-1]}/versions/latest"),
             api.get("compute", "/_sandbox/requests"), api.get("compute", "/_sandbox/state")]
    for r in reads:
        assert payload not in r.text and base64.b64encode(payload.encode()).decode() not in r.text
    # only the explicit :access call (secrets.inspect_values: true) returns the payload
    access = api.get("secretmanager", f"{SECRETS}/{missing[-1]}/versions/latest:access").json()
    assert base64.b64decode(access["payload"]["data"]).decode() == payload
    disabled = next(s for s in missing if api.get("secretmanager", f"{SECRETS}/{s}").status_code == 200)
    r = api.get("secretmanager", f"{SECRETS}/{disabled}/versions/1:access")
    assert (r.status_code, r.json()["error"]["status"]) == (400, "FAILED_PRECONDITION")


# --- request log and injected faults ----------------------------------------------------------------

def test_request_log_records_mutations_without_bodies(api: Api) -> None:
    api.call("PATCH", "sqladmin", INSTANCE, json={"settings": {"activationPolicy": "ALWAYS"}})
    api.get("compute", f"{GLOBAL}/healthChecks")
    log = api.get("compute", "/_sandbox/requests").json()["requests"]
    mutations = [e for e in log if e["mutating"]]
    assert [(e["api"], e["method"], e["path"], e["status"]) for e in mutations] == [
        ("sqladmin", "PATCH", INSTANCE, 200)]
    assert all(set(e) >= {"time", "method", "path"} and "body" not in e for e in log)


@pytest.mark.parametrize("kind, status, error_status", [
    ("429", 429, "RESOURCE_EXHAUSTED"), ("503", 503, "UNAVAILABLE"), ("403", 403, "PERMISSION_DENIED"),
    ("disabled", 403, "PERMISSION_DENIED"), ("401", 401, "UNAUTHENTICATED"),
])
def test_injected_status_faults_hit_the_next_requests_only(api: Api, kind: str, status: int, error_status: str) -> None:
    api.call("POST", "compute", "/_sandbox/faults", json={"path_prefix": f"{GLOBAL}/backend", "kind": kind, "count": 2})
    for _ in range(2):
        r = api.get("compute", f"{GLOBAL}/backendServices")
        assert (r.status_code, r.json()["error"]["status"]) == (status, error_status)
    assert api.get("compute", f"{GLOBAL}/healthChecks").status_code == 200  # other paths unaffected
    assert api.get("compute", f"{GLOBAL}/backendServices").status_code == 200
    if kind == "403":
        assert r.json()["error"]["message"] == (
            f"Required 'compute.backendServices.list' permission for 'projects/{P}/global/backendServices'")
    if kind == "disabled":
        assert r.json()["error"]["details"][0]["reason"] == "SERVICE_DISABLED"


def test_injected_malformed_truncated_and_delay(api: Api) -> None:
    for kind in ("malformed", "truncated"):
        api.call("POST", "compute", "/_sandbox/faults", json={"path_prefix": SECRETS, "kind": kind})
    r = api.get("secretmanager", SECRETS)
    with pytest.raises(json.JSONDecodeError):
        r.json()
    with pytest.raises(httpx.RemoteProtocolError):
        api.get("secretmanager", SECRETS)
    api.call("POST", "compute", "/_sandbox/faults", json={"path_prefix": SECRETS, "kind": "delay", "delay_s": 2})
    with pytest.raises(httpx.ReadTimeout):
        api.get("secretmanager", SECRETS, timeout=0.3)
    assert api.get("secretmanager", SECRETS).status_code == 200
    bad = api.call("POST", "compute", "/_sandbox/faults", json={"path_prefix": SECRETS, "kind": "explode"})
    assert bad.status_code == 400 and "kind: expected one of" in bad.json()["error"]


def test_blackout_accepts_and_never_answers(loop_thread: LoopThread) -> None:
    for api in _start(loop_thread, make_state("blackout")):
        with pytest.raises(httpx.ReadTimeout):
            api.get("vpcaccess", CONNECTOR, timeout=0.3)
        assert api.get("vpcaccess", "/_sandbox/state").json()["dataplane"]["blackout"] is True
