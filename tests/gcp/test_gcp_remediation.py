"""Remediation request builders: pure, the REST call and its exact gcloud equivalent, no secret leaks."""
from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from runbook_lib.errors import RemediationError
from runbook_lib.gcp import compute, secretmanager, sqladmin, vpcaccess
from runbook_lib.gcp.compute import BackendService, HealthCheck
from tests.gcp.gcp_testkit import make_params, sample

PARAMS = make_params()


def test_connector_update_instances():
    call = vpcaccess.update_instances(PARAMS)
    assert (call.method, call.api) == ("PATCH", "vpcaccess")
    assert call.path == "/v1/projects/netra-staging/locations/us-central1/connectors/staging-connector"
    assert call.query == {"updateMask": "minInstances,maxInstances"}
    assert call.body == {"minInstances": 2, "maxInstances": 10}
    assert call.gcloud == ("gcloud compute networks vpc-access connectors update staging-connector --region us-central1 "
                           "--min-instances 2 --max-instances 10 --project netra-staging")


def test_connector_create():
    call = vpcaccess.create_connector(PARAMS)
    assert call.query == {"connectorId": "staging-connector"}
    assert call.body == {"machineType": "e2-micro", "minInstances": 2, "maxInstances": 10,
                         "network": "staging-vpc", "ipCidrRange": "10.1.0.0/28"}
    assert "--network staging-vpc --range 10.1.0.0/28" in call.gcloud and "--machine-type e2-micro" in call.gcloud
    subnet = vpcaccess.create_connector(make_params(**{"connector.subnet": "conn-subnet"}))
    assert subnet.body["subnet"] == {"name": "conn-subnet"} and "--subnet conn-subnet" in subnet.gcloud


def test_sql_activation_and_restart():
    call = sqladmin.set_activation_policy_always(PARAMS)
    assert (call.method, call.path) == ("PATCH", "/v1/projects/netra-staging/instances/netra-staging-db")
    assert call.body == {"settings": {"activationPolicy": "ALWAYS"}}
    assert call.gcloud == "gcloud sql instances patch netra-staging-db --activation-policy=ALWAYS --project netra-staging"
    restart = sqladmin.restart(PARAMS)
    assert (restart.method, restart.path) == ("POST", "/v1/projects/netra-staging/instances/netra-staging-db/restart")


def test_sql_flags_are_merged_with_existing_ones():
    call = sqladmin.patch_flags(PARAMS, {"log_min_duration_statement": "500", "lock_timeout": "1"}, max_connections=200)
    flags = {f["name"]: f["value"] for f in call.body["settings"]["databaseFlags"]}
    assert flags == {"log_min_duration_statement": "500", "lock_timeout": "10000", "statement_timeout": "30000",
                     "max_connections": "200"}
    assert ("--database-flags=log_min_duration_statement=500,lock_timeout=10000,statement_timeout=30000,"
            "max_connections=200") in call.gcloud
    assert "restarts" in call.description


def test_sql_private_network():
    call = sqladmin.set_private_network(PARAMS)
    assert call.body == {"settings": {"ipConfiguration": {"privateNetwork": "projects/netra-staging/global/networks/staging-vpc"}}}
    assert "--network=projects/netra-staging/global/networks/staging-vpc" in call.gcloud


def test_managed_certificate_and_attach():
    call = compute.insert_managed_certificate(PARAMS)
    assert call.body == {"name": "staging-netrasystems-cert", "type": "MANAGED",
                         "managed": {"domains": ["staging.netrasystems.ai", "api-staging.netrasystems.ai"]}}
    assert call.gcloud == ("gcloud compute ssl-certificates create staging-netrasystems-cert "
                           "--domains=staging.netrasystems.ai,api-staging.netrasystems.ai --global --project netra-staging")
    attach = compute.set_ssl_certificates(PARAMS, ["staging-netrasystems-cert", "old"])
    # compute.v1.json: projects/{project}/targetHttpsProxies/{targetHttpsProxy}/setSslCertificates (no global/)
    assert attach.path == "/compute/v1/projects/netra-staging/targetHttpsProxies/staging-https-proxy/setSslCertificates"
    assert attach.body == {"sslCertificates": ["projects/netra-staging/global/sslCertificates/staging-netrasystems-cert",
                                               "projects/netra-staging/global/sslCertificates/old"]}
    assert "gcloud compute target-https-proxies update staging-https-proxy --ssl-certificates=staging-netrasystems-cert,old" in attach.gcloud


def test_health_check_patch_keeps_the_protocol_block():
    hc = HealthCheck.from_json({"name": "staging-backend-health-check", "type": "HTTPS"})
    call = compute.patch_health_check(PARAMS, "staging-backend-health-check", hc)
    assert call.body == {"checkIntervalSec": 60, "timeoutSec": 60, "unhealthyThreshold": 10, "healthyThreshold": 2,
                         "httpsHealthCheck": {"requestPath": "/health"}}
    assert call.gcloud.startswith("gcloud compute health-checks update https staging-backend-health-check "
                                  "--check-interval=60s --timeout=60s --unhealthy-threshold=10 --healthy-threshold=2 "
                                  "--request-path=/health --global")


def test_backend_timeout_sends_the_fingerprint():
    svc = BackendService.from_json(sample("lb1--compute-backendServices.json")["items"][0])
    call = compute.patch_backend_timeout(PARAMS, "staging-backend-service", svc)
    assert call.body == {"timeoutSec": 600, "fingerprint": "uf9A59CplJc="}
    assert call.gcloud == "gcloud compute backend-services update staging-backend-service --timeout=600 --global --project netra-staging"
    assert "WebSocket" in call.description


def test_secret_create_and_version_never_expose_the_value():
    create = secretmanager.create_secret(PARAMS, "redis-url")
    assert create.query == {"secretId": "redis-url"} and create.body == {"replication": {"automatic": {}}}
    value = "redis://:s3cr3t-password@10.0.0.5:6379/0"
    add = secretmanager.add_version(PARAMS, "redis-url", value)
    for text in (repr(add), add.gcloud, add.description, add.model_dump_json(), json.dumps(add.model_dump())):
        assert value not in text and "s3cr3t" not in text
    assert add.gcloud.startswith('printf %s "$VALUE" | gcloud secrets versions add redis-url --data-file=-')
    assert add.path == "/v1/projects/netra-staging/secrets/redis-url:addVersion"
    assert "payload" in add.send_body()


def test_secret_value_can_arrive_at_apply_time():
    planned = secretmanager.add_version(PARAMS, "smtp-password")
    with pytest.raises(RemediationError, match="remediation.secret_values"):
        planned.send_body()  # a version without a value is never sent
    ready = planned.model_copy(update={"secret": SecretStr("pw-1234")})
    assert ready.send_body()["payload"]["data"] == "cHctMTIzNA=="
    assert planned.model_dump() == ready.model_dump()  # the plan (and its id) does not change


def test_enable_version():
    call = secretmanager.enable_version(PARAMS, "redis-url", "3")
    assert call.path == "/v1/projects/netra-staging/secrets/redis-url/versions/3:enable"
    assert call.gcloud == "gcloud secrets versions enable 3 --secret=redis-url --project netra-staging"


def test_attach_adds_the_managed_certificate_within_the_limit_of_15():
    call = compute.attach_managed_certificate(PARAMS, ["legacy"])
    assert [u.rsplit("/", 1)[-1] for u in call.body["sslCertificates"]] == ["legacy", "staging-netrasystems-cert"]
    assert call.description == ("add staging-netrasystems-cert to the target HTTPS proxy staging-https-proxy, keeping "
                                "legacy (served until staging-netrasystems-cert is ACTIVE)")
    assert compute.with_managed_certificate(["staging-netrasystems-cert"], "staging-netrasystems-cert") == [
        "staging-netrasystems-cert"]
    import pytest

    with pytest.raises(ValueError, match="the limit is 15"):
        compute.attach_managed_certificate(PARAMS, [f"c{i}" for i in range(15)])
