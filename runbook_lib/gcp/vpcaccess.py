"""Serverless VPC Access (vpcaccess v1): the connector between Cloud Run and the VPC.

Read: ``GET /v1/projects/{p}/locations/{r}/connectors/{c}`` -> evidence key ``vpcaccess.connector``.
Remediation: raise min/max instances (PATCH with ``updateMask``), or delete and recreate.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runbook_lib.evidence import ApiRecord
from runbook_lib.gcp.api import ApiCall, Product, Resource, last_segment
from runbook_lib.params import Params

if TYPE_CHECKING:  # the client only for typing: importing a view imports no I/O
    from runbook_lib.gcp.client import ApiClient

PRODUCT = Product(api="vpcaccess", service="vpcaccess.googleapis.com", title="Serverless VPC Access API",
                  read_role="roles/vpcaccess.viewer", write_role="roles/vpcaccess.admin")
API = PRODUCT.api

KEY = "vpcaccess.connector"

READY, CREATING, UPDATING, DELETING, ERROR = "READY", "CREATING", "UPDATING", "DELETING", "ERROR"
TRANSIENT_STATES = (CREATING, UPDATING)


def connector_path(params: Params) -> str:
    return f"/v1/projects/{params.project}/locations/{params.region}/connectors/{params.connector.name}"


async def gather(api: ApiClient, params: Params) -> dict[str, ApiRecord]:
    return {KEY: await api.read(KEY, API, connector_path(params))}


@dataclass(frozen=True)
class Connector(Resource):
    @property
    def name(self) -> str:
        return last_segment(self.raw.get("name"))

    @property
    def state(self) -> str:
        return self.raw.get("state") or "STATE_UNSPECIFIED"

    @property
    def is_ready(self) -> bool:
        return self.state == READY

    @property
    def min_instances(self) -> int | None:
        return _int(self.raw.get("minInstances"))

    @property
    def max_instances(self) -> int | None:
        return _int(self.raw.get("maxInstances"))

    @property
    def network(self) -> str:
        return last_segment(self.raw.get("network"))

    @property
    def subnet(self) -> str:
        return last_segment((self.raw.get("subnet") or {}).get("name"))

    @property
    def ip_cidr_range(self) -> str:
        return self.raw.get("ipCidrRange") or ""

    @property
    def machine_type(self) -> str:
        return self.raw.get("machineType") or ""


def _int(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# -- remediation (pure) ----------------------------------------------------------------------------



def update_instances(params: Params) -> ApiCall:
    c = params.connector
    return ApiCall(
        method="PATCH", api=API, path=connector_path(params),
        query={"updateMask": "minInstances,maxInstances"},
        body={"minInstances": c.min_instances, "maxInstances": c.max_instances},
        gcloud=(f"gcloud compute networks vpc-access connectors update {c.name} --region {params.region} "
                f"--min-instances {c.min_instances} --max-instances {c.max_instances} --project {params.project}"),
        description=f"set connector {c.name} to min {c.min_instances} / max {c.max_instances} instances",
    )


def create_connector(params: Params) -> ApiCall:
    c = params.connector
    body: dict = {"machineType": c.machine_type, "minInstances": c.min_instances, "maxInstances": c.max_instances}
    if c.subnet:
        body["subnet"] = {"name": c.subnet}
        where = f"--subnet {c.subnet}"
    else:
        body.update(network=c.network, ipCidrRange=c.ip_cidr_range)
        where = f"--network {c.network} --range {c.ip_cidr_range}"
    return ApiCall(
        method="POST", api=API,
        path=f"/v1/projects/{params.project}/locations/{params.region}/connectors",
        query={"connectorId": c.name}, body=body,
        gcloud=(f"gcloud compute networks vpc-access connectors create {c.name} --region {params.region} {where} "
                f"--min-instances {c.min_instances} --max-instances {c.max_instances} --machine-type {c.machine_type} "
                f"--project {params.project}"),
        description=(f"create connector {c.name} on {c.subnet or c.network} "
                     f"({c.machine_type}, min {c.min_instances}, max {c.max_instances})"),
    )


def delete_connector(params: Params) -> ApiCall:
    c = params.connector
    return ApiCall(
        method="DELETE", api=API, path=connector_path(params),
        gcloud=(f"gcloud compute networks vpc-access connectors delete {c.name} --region {params.region} "
                f"--project {params.project} --quiet"),
        description=f"delete connector {c.name} (it cannot be repaired in place; it is recreated next)",
    )
