"""Network Management (networkmanagement v1): the path from a Cloud Run revision to the Cloud SQL
instance, hop by hop, as Google's Connectivity Tests analyse it.

    create  POST   /v1/projects/{p}/locations/global/connectivityTests?testId={id}
                   source.cloudRunRevision.uri, destination.cloudSqlInstance + port, protocol TCP
                   -> google.longrunning.Operation (``done`` absent until finished)
    poll    GET    /v1/{operation.name}, with backoff, until done or ``connectivity.deadline_s``
    read    GET    /v1/projects/{p}/locations/global/connectivityTests/{id}
                   -> evidence ``networkmanagement.connectivityTest`` (the finished resource)
    delete  DELETE the same path, always (even after a failure), so no test is left behind;
                   its outcome -> ``networkmanagement.connectivityTest.delete``

Shapes and enum names come from the discovery document ``networkmanagement.v1.json`` (revision
20261028): ``ReachabilityDetails.result`` REACHABLE / UNREACHABLE / AMBIGUOUS / UNDETERMINED,
``Trace.steps[]`` with ``state`` (START_FROM_CLOUD_RUN_REVISION, APPLY_EGRESS_FIREWALL_RULE,
APPLY_ROUTE, ARRIVE_AT_VPC_CONNECTOR, DELIVER, DROP, ABORT, ...), ``causesDrop`` and the
``drop`` / ``abort`` / ``deliver`` details. gcpdiag records a finished test in
``test-data/vpc2/json-dumps/connectivity-test.json`` (tests/fixtures/recorded/gcpdiag/vpc2--connectivity-test.json).

The collector creates and deletes a resource in the project, so it needs the admin role even to
diagnose, and it can be turned off (``connectivity.enabled: false``).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runbook_lib.errors import ApiError
from runbook_lib.evidence import ApiRecord, ErrorInfo
from runbook_lib.gcp.api import Product, Resource, last_segment
from runbook_lib.params import Params

if TYPE_CHECKING:  # the client only for typing: importing a view imports no I/O
    from runbook_lib.gcp.client import ApiClient

# A Connectivity Test is created (and deleted) to read it: diagnosing needs the admin role.
PRODUCT = Product(api="networkmanagement", service="networkmanagement.googleapis.com",
                  title="Network Management API", read_role="roles/networkmanagement.viewer",
                  write_role="roles/networkmanagement.admin")
API = PRODUCT.api

KEY = "networkmanagement.connectivityTest"
DELETE_KEY = "networkmanagement.connectivityTest.delete"

REACHABLE, UNREACHABLE = "REACHABLE", "UNREACHABLE"  # also AMBIGUOUS, UNDETERMINED: neither is a pass
DELETE_DEADLINE_S = 30.0
# The port Cloud SQL for PostgreSQL listens on at its private IP (cloudsql.port is where the probe
# dials, which a proxy or the sandbox may move; the instance's own port does not change).
POSTGRES_PORT = 5432


def tests_path(params: Params) -> str:
    return f"/v1/projects/{params.project}/locations/global/connectivityTests"


def test_path(params: Params, test_id: str) -> str:
    return f"{tests_path(params)}/{test_id}"


def new_test_id() -> str:
    """``runbook-path-<12 hex>``: a lower-case id unique per run (the API's testId rules)."""
    return f"runbook-path-{uuid.uuid4().hex[:12]}"


def revision_uri(params: Params, revision: str) -> str:
    return f"projects/{params.project}/locations/{params.region}/revisions/{revision}"


def instance_uri(params: Params) -> str:
    return f"projects/{params.project}/instances/{params.cloudsql.instance}"


def create_body(params: Params, revision: str) -> dict:
    """ConnectivityTest: from the Cloud Run revision to the Cloud SQL instance's PostgreSQL port."""
    return {
        "source": {"cloudRunRevision": {"uri": revision_uri(params, revision)}, "projectId": params.project},
        "destination": {"cloudSqlInstance": instance_uri(params), "port": POSTGRES_PORT,
                        "projectId": params.project},
        "protocol": "TCP",
        "displayName": f"runbook: {revision} -> {params.cloudsql.instance}:{POSTGRES_PORT}",
        "labels": {"created-by": "runbook"},
    }


def skipped(key: str, why: str) -> ApiRecord:
    return ApiRecord(key=key, ok=False, error=ErrorInfo(kind="skipped", message=why))


def _failed(key: str, exc: ApiError, url: str = "") -> ApiRecord:
    return ApiRecord(key=key, method="POST", url=url or (exc.url or ""), ok=False, status=exc.status,
                     error=ErrorInfo(kind=exc.kind, message=str(exc), status=exc.status))


async def gather(api: ApiClient, params: Params, revision: str | None, *, why_not: str = "",
                 blocked: ErrorInfo | None = None) -> dict[str, ApiRecord]:
    """Create the test for ``revision`` (a Cloud Run revision name), wait for it, read it, delete it.

    Never raises for an API outcome: a refused create, a failed or slow operation become the
    record's error (kind and Google's message), and the delete is attempted whatever happened.
    ``blocked``: the error of the Cloud Run read the source comes from (the record carries it).
    """
    if not params.connectivity.enabled:
        return {KEY: skipped(KEY, "connectivity.enabled is false: no Connectivity Test was run")}
    if blocked is not None:  # the source could not be read: its failure, not "no data"
        return {KEY: ApiRecord(key=KEY, ok=False, status=blocked.status, error=ErrorInfo(
            kind=blocked.kind, status=blocked.status,
            message=f"no Connectivity Test: the Cloud Run services (its source) could not be read: {blocked.message}"))}
    if not revision:
        return {KEY: skipped(KEY, why_not or "no Cloud Run revision to start the test from")}
    test_id = new_test_id()
    path = test_path(params, test_id)
    started = time.perf_counter()
    records: dict[str, ApiRecord] = {}
    created = False
    try:
        try:
            operation = await api.request("POST", API, tests_path(params), body=create_body(params, revision),
                                          query={"testId": test_id})
            created = True
            await api.wait_operation(API, operation, deadline_s=params.connectivity.deadline_s)
        except ApiError as exc:
            records[KEY] = _failed(KEY, exc, api.url(API, tests_path(params)))
        else:
            record = await api.read(KEY, API, path)
            records[KEY] = record.model_copy(update={"elapsed_s": round(time.perf_counter() - started, 4)})
    finally:
        if created:  # always cleaned up; shielded so a cancelled gather does not leave the test behind
            records[DELETE_KEY] = await asyncio.shield(_delete(api, path))
    return records


async def _delete(api: ApiClient, path: str) -> ApiRecord:
    url = api.url(API, path)
    try:
        operation = await api.request("DELETE", API, path)
        if operation.get("name") and not operation.get("done"):
            await api.wait_operation(API, operation, deadline_s=DELETE_DEADLINE_S)
    except ApiError as exc:
        return ApiRecord(key=DELETE_KEY, method="DELETE", url=url, ok=False, status=exc.status,
                         error=ErrorInfo(kind=exc.kind, status=exc.status,
                                         message=f"the Connectivity Test was not deleted ({exc}): delete it with "
                                                 f"`gcloud network-management connectivity-tests delete "
                                                 f"{last_segment(path)}`"))
    return ApiRecord(key=DELETE_KEY, method="DELETE", url=url, ok=True, status=200, body={})


# -- typed views -----------------------------------------------------------------------------------

# Where a hop sits on the path, from its ``Step.state`` (the order a packet meets them).
HOP_OF_STATE = {
    "APPLY_EGRESS_FIREWALL_RULE": "firewall", "APPLY_INGRESS_FIREWALL_RULE": "firewall",
    "APPLY_ROUTE": "route", "ARRIVE_AT_VPC_CONNECTOR": "connector", "DIRECT_VPC_EGRESS_CONNECTION": "connector",
    "ARRIVE_AT_INSTANCE": "instance", "DELIVER": "instance", "FORWARD": "forward", "NAT": "nat",
}
# What a drop cause blames (``DropInfo.cause`` prefixes in networkmanagement.v1.json).
HOP_OF_CAUSE = (("VPC_CONNECTOR", "connector"), ("FIREWALL", "firewall"), ("INGRESS_FIREWALL", "firewall"),
                ("CLOUD_SQL", "instance"), ("DROPPED_INSIDE_CLOUD_SQL", "instance"), ("CLOUD_RUN", "source"),
                ("NO_ROUTE", "route"), ("ROUTE", "route"), ("NO_KNOWN_ROUTE", "route"),
                ("NO_ADVERTISED_ROUTE", "route"), ("NO_VALID_ROUTE", "route"))


@dataclass(frozen=True)
class Step:
    raw: dict

    @property
    def state(self) -> str:
        return self.raw.get("state") or "STATE_UNSPECIFIED"

    @property
    def description(self) -> str:
        return self.raw.get("description") or ""

    @property
    def causes_drop(self) -> bool:
        return bool(self.raw.get("causesDrop"))

    @property
    def cause(self) -> str:
        """The drop or abort cause (empty for other steps)."""
        return ((self.raw.get("drop") or {}).get("cause") or (self.raw.get("abort") or {}).get("cause") or "")

    @property
    def hop(self) -> str:
        """route | firewall | connector | instance | source | forward | nat | drop | abort | other."""
        if self.state.startswith("START_FROM_"):
            return "source"
        if self.state in ("DROP", "ABORT"):
            return next((hop for prefix, hop in HOP_OF_CAUSE if self.cause.startswith(prefix)), self.state.lower())
        return HOP_OF_STATE.get(self.state, "other")

    @property
    def resource(self) -> str:
        """The resource the step is about (a firewall rule, a route, the connector...), by display name."""
        for field in ("vpcConnector", "firewall", "route", "cloudSqlInstance", "cloudRunRevision", "instance",
                      "network", "forwardingRule"):
            info = self.raw.get(field)
            if isinstance(info, dict) and (info.get("displayName") or info.get("uri")):
                return f"{field} {info.get('displayName') or last_segment(info.get('uri'))}"
        return ""

    @property
    def failed(self) -> bool:
        return self.causes_drop or self.state in ("DROP", "ABORT")

    def short(self) -> str:
        """The hop for a path listing; a final DROP / ABORT with its cause."""
        if self.state in ("DROP", "ABORT"):
            return f"{self.state}({self.cause or '?'})"
        return self.hop

    def label(self) -> str:
        what = self.resource
        return f"{self.state}" + (f" ({what})" if what else "") + (f" [{self.cause}]" if self.cause else "")


@dataclass(frozen=True)
class ConnectivityTest(Resource):
    @property
    def name(self) -> str:
        return last_segment(self.raw.get("name"))

    @property
    def details(self) -> dict:
        return self.raw.get("reachabilityDetails") or {}

    @property
    def result(self) -> str:
        return self.details.get("result") or "RESULT_UNSPECIFIED"

    @property
    def error(self) -> str:
        err = self.details.get("error") or {}
        return err.get("message") or ""

    @property
    def traces(self) -> list[list[Step]]:
        return [[Step(s) for s in t.get("steps") or []] for t in self.details.get("traces") or []]

    @property
    def source(self) -> str:
        src = self.raw.get("source") or {}
        return last_segment((src.get("cloudRunRevision") or {}).get("uri")) or src.get("ipAddress") or ""

    @property
    def destination(self) -> str:
        dst = self.raw.get("destination") or {}
        where = last_segment(dst.get("cloudSqlInstance")) or dst.get("ipAddress") or ""
        return f"{where}:{dst['port']}" if dst.get("port") else where

    def first_failure(self) -> tuple[Step, Step | None] | None:
        """``(hop that breaks the path, the DROP/ABORT step)`` of the first trace that fails: the
        step marked ``causesDrop`` when there is one, else the final DROP/ABORT itself."""
        for steps in self.traces:
            final = next((s for s in steps if s.state in ("DROP", "ABORT")), None)
            culprit = next((s for s in steps if s.causes_drop), None)
            if final is not None or culprit is not None:
                return (culprit or final), final
        return None


def source_revision(run_body: dict | None, params: Params) -> tuple[str | None, str]:
    """``(revision, "")`` to start the test from: the serving revision of the first configured
    Cloud Run service that egresses through the connector (else the first one deployed), or
    ``(None, why not)``."""
    from runbook_lib.gcp.run import services_of

    services = services_of(run_body)
    deployed = [services[n] for n in params.cloud_run.services if n in services]
    if not deployed:
        return None, f"none of the Cloud Run services {', '.join(params.cloud_run.services)} is deployed (see run.*.exists)"
    via = [s for s in deployed if s.vpc_connector == params.connector.name] or deployed
    for svc in via:
        if svc.latest_ready_revision:
            return svc.latest_ready_revision, ""
    return None, f"{', '.join(s.name for s in via)} has no Ready revision to start the test from"
