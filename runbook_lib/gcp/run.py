"""Cloud Run Admin (run v2): the services and how they reach the VPC.

Read: ``GET /v2/projects/{p}/locations/{r}/services`` (list, field ``services``) -> ``run.services``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..evidence import ApiRecord
from ..params import Params
from .api import ApiClient, Resource, last_segment

KEY = "run.services"

SUCCEEDED = "CONDITION_SUCCEEDED"


def services_path(params: Params) -> str:
    return f"/v2/projects/{params.project}/locations/{params.region}/services"


async def gather(api: ApiClient, params: Params) -> dict[str, ApiRecord]:
    return {KEY: await api.read(KEY, "run", services_path(params), list_field="services")}


def services_of(body: dict | None) -> dict[str, "Service"]:
    """Services by short name."""
    services = [Service.from_json(d) for d in (body or {}).get("services") or []]
    return {s.name: s for s in services}


@dataclass(frozen=True)
class Service(Resource):
    @property
    def name(self) -> str:
        return last_segment(self.raw.get("name"))

    @property
    def terminal_condition(self) -> dict:
        return self.raw.get("terminalCondition") or {}

    @property
    def ready(self) -> bool:
        cond = self.terminal_condition
        return cond.get("type", "Ready") == "Ready" and cond.get("state") == SUCCEEDED

    @property
    def latest_ready_revision(self) -> str:
        return last_segment(self.raw.get("latestReadyRevision"))

    @property
    def latest_created_revision(self) -> str:
        return last_segment(self.raw.get("latestCreatedRevision"))

    @property
    def template(self) -> dict:
        return self.raw.get("template") or {}

    @property
    def vpc_connector(self) -> str:
        return last_segment((self.template.get("vpcAccess") or {}).get("connector"))

    @property
    def vpc_egress(self) -> str:
        """``ALL_TRAFFIC`` or ``PRIVATE_RANGES_ONLY`` (the API's default when unset)."""
        access = self.template.get("vpcAccess") or {}
        return access.get("egress") or ("PRIVATE_RANGES_ONLY" if access else "")

    @property
    def env_values(self) -> dict[str, str]:
        """Literal environment values of every container (secret references are not values)."""
        out: dict[str, str] = {}
        for container in self.template.get("containers") or []:
            for env in container.get("env") or []:
                if "value" in env:
                    out[env.get("name", "")] = str(env["value"])
        return out

    @property
    def uri(self) -> str:
        return self.raw.get("uri") or ""


# -- remediation text ------------------------------------------------------------------------------

def update_vpc_gcloud(params: Params, service: str) -> str:
    """The command that routes ``service`` through the connector with the configured egress."""
    egress = params.cloud_run.vpc_egress.lower().replace("_", "-")
    return (f"gcloud run services update {service} --region {params.region} --vpc-connector {params.connector.name} "
            f"--vpc-egress {egress} --project {params.project}")
