"""Google's official client libraries against the emulator: if they cannot talk to it, it is wrong.

REST transport, anonymous credentials, ``api_endpoint`` pointed at the emulator's port; waiting on
operations with the clients' own ``.result()`` (compute ExtendedOperation, api_core LRO).
sqladmin through googleapiclient with the static discovery document it ships.
"""
from __future__ import annotations

from typing import Iterator

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials

from runbook_lib.sandbox.emulator import Emulator

from .kit import LoopThread, make_state

P, R = "netra-staging", "us-central1"


@pytest.fixture
def emulator(loop_thread: LoopThread) -> Iterator[Emulator]:
    em = Emulator(make_state("issue-1278"), validate_responses=True)
    loop_thread.run(em.start())
    try:
        yield em
        assert em.schema_problems == []
    finally:
        loop_thread.run(em.stop())


def _opts(em: Emulator, api: str) -> dict:
    return {"credentials": AnonymousCredentials(), "transport": "rest",
            "client_options": ClientOptions(api_endpoint=f"http://127.0.0.1:{em.ports[api]}")}


def test_compute_client_lists_gets_and_waits_for_set_ssl_certificates(emulator: Emulator) -> None:
    from google.cloud import compute_v1

    backends = compute_v1.BackendServicesClient(**_opts(emulator, "compute"))
    names = [b.name for b in backends.list(project=P)]
    assert names == ["staging-backend-service", "staging-auth-service"]
    bs = backends.get(project=P, backend_service="staging-backend-service")
    assert "networkEndpointGroups" in bs.backends[0].group
    negs = compute_v1.RegionNetworkEndpointGroupsClient(**_opts(emulator, "compute"))
    neg = negs.get(project=P, region=R, network_endpoint_group="netra-backend-staging-neg")
    assert (neg.network_endpoint_type, neg.cloud_run.service) == ("SERVERLESS", "netra-backend-staging")
    proxies = compute_v1.TargetHttpsProxiesClient(**_opts(emulator, "compute"))
    # The library builds its operation-polling client without the caller's client_options (it would
    # poll compute.googleapis.com): hand it one pointed at the emulator, as the transport caches it.
    proxies._transport._extended_operations_services["global_operations"] = compute_v1.GlobalOperationsClient(
        **_opts(emulator, "compute"))
    proxy = proxies.get(project=P, target_https_proxy="staging-https-proxy")
    op = proxies.set_ssl_certificates(
        project=P, target_https_proxy="staging-https-proxy",
        target_https_proxies_set_ssl_certificates_request_resource=compute_v1.TargetHttpsProxiesSetSslCertificatesRequest(
            ssl_certificates=list(proxy.ssl_certificates)))
    op.result(timeout=30)
    assert op.done() and not op.error_code
    rejected = None
    try:
        backends.patch(project=P, backend_service="staging-backend-service",
                       backend_service_resource=compute_v1.BackendService(timeout_sec=600))
    except Exception as exc:  # noqa: BLE001 - the client's own BadRequest
        rejected = exc
    assert rejected is not None and "Serverless network endpoint groups" in str(rejected)


def test_vpcaccess_client_creates_and_deletes_waiting_with_result(emulator: Emulator) -> None:
    from google.cloud import vpcaccess_v1

    # (the vpcaccess_v1 library has no update method; the runbook's PATCH is covered over REST)
    client = vpcaccess_v1.VpcAccessServiceClient(**_opts(emulator, "vpcaccess"))
    parent = f"projects/{P}/locations/{R}"
    name = f"{parent}/connectors/staging-connector"
    assert [c.name for c in client.list_connectors(parent=parent)] == [name]
    assert client.get_connector(name=name).max_instances == 3
    op = client.create_connector(parent=parent, connector_id="second-connector", connector=vpcaccess_v1.Connector(
        network="staging-vpc", ip_cidr_range="10.8.0.0/28", min_instances=2, max_instances=10))
    result = op.result(timeout=30)
    assert result.max_instances == 10 and client.get_connector(name=result.name).state.name == "READY"
    client.delete_connector(name=result.name).result(timeout=30)
    assert [c.name for c in client.list_connectors(parent=parent)] == [name]


def test_secret_manager_client_lists_creates_and_adds_a_version(emulator: Emulator) -> None:
    from google.cloud import secretmanager_v1

    client = secretmanager_v1.SecretManagerServiceClient(**_opts(emulator, "secretmanager"))
    listed = [s.name.rsplit("/", 1)[-1] for s in client.list_secrets(parent=f"projects/{P}")]
    assert listed and "database-url" in listed
    secret = client.create_secret(parent=f"projects/{P}", secret_id="runbook-new",
                                  secret={"replication": {"automatic": {}}})
    version = client.add_secret_version(parent=secret.name, payload={"data": b"value"})
    assert version.state.name == "ENABLED"
    assert client.get_secret_version(name=version.name).name == version.name


def test_cloud_run_client_patches_a_service_into_a_new_revision(emulator: Emulator) -> None:
    from google.cloud import run_v2

    client = run_v2.ServicesClient(**_opts(emulator, "run"))
    name = f"projects/{P}/locations/{R}/services/auth-staging"
    service = client.get_service(name=name)
    before = service.latest_ready_revision
    service.template.timeout = {"seconds": 3600}
    service.template.containers[0].resources.startup_cpu_boost = True
    op = client.update_service(service=service)
    result = op.result(timeout=30)
    assert result.latest_ready_revision != before and result.template.timeout.seconds == 3600
    revisions = run_v2.RevisionsClient(**_opts(emulator, "run"))
    assert len(list(revisions.list_revisions(parent=name))) == 2


def test_network_management_client_runs_a_connectivity_test(emulator: Emulator) -> None:
    from google.cloud import network_management_v1 as nm

    client = nm.ReachabilityServiceClient(**_opts(emulator, "networkmanagement"))
    rev = f"projects/{P}/locations/{R}/revisions/netra-backend-staging-00042-abc"
    test = nm.ConnectivityTest(source=nm.Endpoint(cloud_run_revision=nm.Endpoint.CloudRunRevisionEndpoint(uri=rev)),
                               destination=nm.Endpoint(cloud_sql_instance=f"projects/{P}/instances/netra-staging-db",
                                                       port=5432), protocol="TCP")
    op = client.create_connectivity_test(parent=f"projects/{P}/locations/global", test_id="run-to-sql", resource=test)
    result = op.result(timeout=30)
    steps = [s.state.name for s in result.reachability_details.traces[0].steps]
    assert steps[0] == "START_FROM_CLOUD_RUN_REVISION" and "ARRIVE_AT_VPC_CONNECTOR" in steps
    # the instance is stopped (activation policy NEVER): the trace ends in a DROP at Cloud SQL
    assert result.reachability_details.result.name == "UNREACHABLE" and steps[-1] == "DROP"
    client.delete_connectivity_test(name=result.name).result(timeout=30)


def test_sqladmin_through_googleapiclient_static_discovery(emulator: Emulator) -> None:
    import time

    import httplib2
    from googleapiclient.discovery import build

    sql = build("sqladmin", "v1", static_discovery=True, http=httplib2.Http(timeout=10),
                client_options={"api_endpoint": f"http://127.0.0.1:{emulator.ports['sqladmin']}"})
    items = sql.instances().list(project=P).execute()["items"]
    assert [i["name"] for i in items] == ["netra-staging-db"]
    op = sql.instances().patch(project=P, instance="netra-staging-db",
                               body={"settings": {"activationPolicy": "ALWAYS"}}).execute()
    seen = [op["status"]]
    deadline = time.monotonic() + 20
    while op["status"] != "DONE" and time.monotonic() < deadline:
        time.sleep(0.1)
        op = sql.operations().get(project=P, operation=op["name"]).execute()
        seen.append(op["status"])
    assert seen[0] in ("PENDING", "RUNNING") and seen[-1] == "DONE"
    assert sql.instances().get(project=P, instance="netra-staging-db").execute()["settings"]["activationPolicy"] == "ALWAYS"
