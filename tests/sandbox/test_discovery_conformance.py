"""The discovery validator against Google's own recorded responses (gcpdiag, tests/fixtures/recorded).

If a real recorded response does not conform, the validator is too strict (or the document
changed): this keeps the emulator's conformance check honest.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_lib.sandbox.discovery import Api

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "gcpdiag"
SCHEMAS = {  # recorded file -> (api, response schema)
    "cloudsql1--cloudsql-instances.json": ("sqladmin", "InstancesListResponse"),
    "cloudsql2--cloudsql-instances.json": ("sqladmin", "InstancesListResponse"),
    "cloudsql3--cloudsql-instances.json": ("sqladmin", "InstancesListResponse"),
    "lb1--compute-backendServices.json": ("compute", "BackendServiceList"),
    "lb1--healthChecks.json": ("compute", "HealthCheckList"),
    "lb3--compute-sslCertificates.json": ("compute", "SslCertificateList"),
    "lb3--compute-targetHttpsProxies.json": ("compute", "TargetHttpsProxyList"),
    "lb2--compute-negs-europe-west4-b.json": ("compute", "NetworkEndpointGroupList"),
    "lb1--compute-aggregated-forwardingRules.json": ("compute", "ForwardingRuleAggregatedList"),
    "lb2--backendService-web-backend-service-get-health-instanceGroups-lb-backend-example-us-east1-b.json":
        ("compute", "BackendServiceGroupHealth"),
    "vpc2--connectivity-test.json": ("networkmanagement", "ConnectivityTest"),
}


@pytest.fixture(scope="module")
def apis() -> dict[str, Api]:
    return {name: Api(name) for name in {"sqladmin", "compute", "networkmanagement", "run"}}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_recorded_google_responses_conform_to_the_discovery_schema(apis: dict[str, Api], name: str) -> None:
    api, schema = SCHEMAS[name]
    problems = apis[api].response_problems(schema, json.loads((RECORDED / name).read_text()))
    # gcpdiag's dumps keep JSON nulls and empty sub-objects as recorded; only type/name/enum errors count
    assert [p for p in problems if "null" not in p] == []


def test_the_validator_catches_what_google_would_not_send(apis: dict[str, Api]) -> None:
    bad = {"kind": "compute#backendService", "timeoutSec": "30", "id": 123, "protocol": "GOPHER", "bogus": 1}
    problems = apis["compute"].response_problems("BackendService", bad)
    assert any("timeoutSec: expected an integer" in p for p in problems)
    assert any("id: expected an int64 as a string" in p for p in problems)
    assert any("protocol: 'GOPHER' is not one of the enum values" in p for p in problems)
    assert any("bogus: not a field" in p for p in problems)
    assert apis["compute"].match("POST", "/compute/v1/projects/p/global/targetHttpsProxies/x/setSslCertificates") is None
    method, params = apis["compute"].match("POST", "/compute/v1/projects/p/targetHttpsProxies/x/setSslCertificates")
    assert (method.id, params) == ("compute.targetHttpsProxies.setSslCertificates",
                                   {"project": "p", "targetHttpsProxy": "x"})
