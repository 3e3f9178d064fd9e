"""Cloud SQL Admin (sqladmin v1): the PostgreSQL instance.

Read: ``GET /v1/projects/{p}/instances/{i}`` -> evidence key ``sqladmin.instance``.
Remediation: activation policy ALWAYS, restart, database flags (merged), private network, SSL.

States as the API has them (sqladmin v1 ``DatabaseInstance.state``): RUNNABLE, SUSPENDED,
PENDING_DELETE, PENDING_CREATE, MAINTENANCE, FAILED, REPAIRING. There is no STOPPED: a stopped
instance is RUNNABLE with ``settings.activationPolicy: NEVER``. Read replicas
(``instanceType: READ_REPLICA_INSTANCE``, ``masterInstanceName``) may report no activation policy
(gcpdiag's recorded cloudsql2 replicas sql5/sql6 have none).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runbook_lib.evidence import ApiRecord
from runbook_lib.gcp.api import ApiCall, Product, Resource, last_segment
from runbook_lib.params import Params

if TYPE_CHECKING:  # the client only for typing: importing a view imports no I/O
    from runbook_lib.gcp.client import ApiClient

PRODUCT = Product(api="sqladmin", service="sqladmin.googleapis.com", title="Cloud SQL Admin API",
                  read_role="roles/cloudsql.viewer", write_role="roles/cloudsql.admin")
API = PRODUCT.api

KEY = "sqladmin.instance"

RUNNABLE = "RUNNABLE"
NEVER = "NEVER"
READ_REPLICA = "READ_REPLICA_INSTANCE"
SSL_REQUIRED_MODES = ("ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED")


def instance_path(params: Params) -> str:
    return f"/v1/projects/{params.project}/instances/{params.cloudsql.instance}"


async def gather(api: ApiClient, params: Params) -> dict[str, ApiRecord]:
    return {KEY: await api.read(KEY, API, instance_path(params))}


@dataclass(frozen=True)
class Instance(Resource):
    @property
    def name(self) -> str:
        return self.raw.get("name") or ""

    @property
    def state(self) -> str:
        return self.raw.get("state") or "SQL_INSTANCE_STATE_UNSPECIFIED"

    @property
    def settings(self) -> dict:
        return self.raw.get("settings") or {}

    @property
    def ip_configuration(self) -> dict:
        return self.settings.get("ipConfiguration") or {}

    @property
    def activation_policy(self) -> str:
        return self.settings.get("activationPolicy") or ""

    @property
    def instance_type(self) -> str:
        return self.raw.get("instanceType") or ""

    @property
    def is_replica(self) -> bool:
        return self.instance_type == READ_REPLICA or bool(self.raw.get("masterInstanceName"))

    @property
    def primary(self) -> str:
        """The primary of a read replica (``project:instance`` shortened to the instance)."""
        return (self.raw.get("masterInstanceName") or "").rsplit(":", 1)[-1]

    @property
    def is_stopped(self) -> bool:
        """Stopped, as Cloud SQL reports it: RUNNABLE with activation policy NEVER."""
        return self.state == RUNNABLE and self.activation_policy == NEVER

    @property
    def tier(self) -> str:
        return self.settings.get("tier") or ""

    @property
    def database_version(self) -> str:
        return self.raw.get("databaseVersion") or ""

    @property
    def is_postgres(self) -> bool:
        return self.database_version.startswith("POSTGRES")

    @property
    def private_network(self) -> str:
        return last_segment(self.ip_configuration.get("privateNetwork"))

    @property
    def private_ip(self) -> str | None:
        return next((a.get("ipAddress") for a in self.raw.get("ipAddresses") or [] if a.get("type") == "PRIVATE"), None)

    @property
    def ssl_mode(self) -> str:
        return self.ip_configuration.get("sslMode") or ""

    @property
    def require_ssl(self) -> bool:
        return bool(self.ip_configuration.get("requireSsl")) or self.ssl_mode in SSL_REQUIRED_MODES

    @property
    def flags(self) -> dict[str, str]:
        return {f.get("name", ""): str(f.get("value", "")) for f in self.settings.get("databaseFlags") or []}

    @property
    def max_connections(self) -> tuple[int | None, str]:
        """``(value, source)``: the flag if set, else the tier default (PostgreSQL), else unknown."""
        if "max_connections" in self.flags:
            try:
                return int(self.flags["max_connections"]), "flag"
            except ValueError:
                return None, f"flag value {self.flags['max_connections']!r} is not a number"
        if self.is_postgres:
            default = postgres_default_max_connections(self.tier)
            if default is not None:
                return default, f"default for tier {self.tier}"
        return None, "not set (engine default unknown for this tier)"


# Cloud SQL for PostgreSQL sets max_connections from the tier's memory when the flag is unset.
_DEFAULTS_BY_MEMORY_GB = ((1, 25), (3.75, 50), (6, 100), (7.5, 200), (15, 400), (30, 500), (60, 600), (120, 800))


def tier_memory_gb(tier: str) -> float | None:
    fixed = {"db-f1-micro": 0.6, "db-g1-small": 1.7}
    if tier in fixed:
        return fixed[tier]
    if m := re.match(r"^db-custom-(\d+)-(\d+)$", tier):
        return int(m.group(2)) / 1024
    if m := re.match(r"^db-n1-(standard|highmem)-(\d+)$", tier):
        return int(m.group(2)) * (3.75 if m.group(1) == "standard" else 6.5)
    return None


def postgres_default_max_connections(tier: str) -> int | None:
    memory = tier_memory_gb(tier)
    if memory is None:
        return None
    for below, value in _DEFAULTS_BY_MEMORY_GB:
        if memory < below:
            return value
    return 1000


# -- remediation (pure) ----------------------------------------------------------------------------

def _patch(params: Params, settings: dict, gcloud_flags: str, description: str) -> ApiCall:
    i = params.cloudsql.instance
    return ApiCall(
        method="PATCH", api=API, path=instance_path(params), body={"settings": settings},
        gcloud=f"gcloud sql instances patch {i} {gcloud_flags} --project {params.project}",
        description=description,
    )


def set_activation_policy_always(params: Params) -> ApiCall:
    return _patch(params, {"activationPolicy": "ALWAYS"}, "--activation-policy=ALWAYS",
                  f"start {params.cloudsql.instance} and keep it running (activation policy ALWAYS)")


def restart(params: Params) -> ApiCall:
    i = params.cloudsql.instance
    return ApiCall(
        method="POST", api=API, path=f"{instance_path(params)}/restart",
        gcloud=f"gcloud sql instances restart {i} --project {params.project}",
        description=f"restart {i} (open connections are dropped)",
    )


def merged_flags(current: dict[str, str], wanted: dict[str, str]) -> dict[str, str]:
    """Cloud SQL replaces the whole flag list on patch, so keep every flag already set."""
    return {**current, **wanted}


def patch_flags(params: Params, current: dict[str, str], *, max_connections: int | None = None) -> ApiCall:
    wanted = dict(params.cloudsql.required_flags)
    if max_connections is not None:
        wanted["max_connections"] = str(max_connections)
    flags = merged_flags(current, wanted)
    listed = ",".join(f"{k}={v}" for k, v in flags.items())
    changed = ", ".join(f"{k}={v}" for k, v in wanted.items())
    note = " (changing max_connections restarts the instance)" if "max_connections" in wanted else ""
    return _patch(params, {"databaseFlags": [{"name": k, "value": v} for k, v in flags.items()]},
                  f"--database-flags={listed}", f"set database flags {changed}, keeping the others{note}")


def set_private_network(params: Params) -> ApiCall:
    network = f"projects/{params.project}/global/networks/{params.cloudsql.network}"
    return _patch(params, {"ipConfiguration": {"privateNetwork": network}}, f"--network={network}",
                  f"give {params.cloudsql.instance} a private IP on {params.cloudsql.network} "
                  "(needs private services access on that network)")


def require_ssl(params: Params) -> ApiCall:
    return _patch(params, {"ipConfiguration": {"sslMode": "ENCRYPTED_ONLY"}}, "--ssl-mode=ENCRYPTED_ONLY",
                  f"refuse unencrypted connections to {params.cloudsql.instance}")
