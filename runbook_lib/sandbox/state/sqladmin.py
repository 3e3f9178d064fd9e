"""Cloud SQL Admin v1: the instance, patch and restart, sqladmin operations.

``state`` only from the v1 enum (RUNNABLE, SUSPENDED, PENDING_DELETE, PENDING_CREATE, MAINTENANCE,
FAILED, REPAIRING): a stopped instance is RUNNABLE with ``settings.activationPolicy: NEVER``.
``patch`` merges settings but replaces lists whole (``databaseFlags`` included).
"""
from __future__ import annotations

import copy
import hashlib
import os
import re
from typing import Any

from runbook_lib.sandbox.state.common import ACTOR, SQL_PRIVATE_IP, SQLADMIN, ApiFault, Base, bad_request, merge


class SqlAdmin(Base):
    HANDLERS = {
        "sql.instances.list": lambda s, c: s._page_of(c, s.list_instances(c.params["project"]), "items",
                                                      size="maxResults", kind="sql#instancesList"),
        "sql.instances.get": lambda s, c: s.get_instance(c.params["project"], c.params["instance"]),
        "sql.instances.patch": lambda s, c: s.patch_instance(c.params["project"], c.params["instance"], c.body),
        "sql.instances.restart": lambda s, c: s.restart_instance(c.params["project"], c.params["instance"]),
        "sql.operations.get": lambda s, c: s.get_sql_operation(c.params["project"], c.params["operation"]),
        "sql.operations.list": lambda s, c: s._page_of(c, s.ops.listing("sqladmin"), "items",
                                                       size="maxResults", kind="sql#operationsList"),
    }

    _instances: dict[str, dict[str, Any]]

    def _build_instance(self) -> None:
        self._instances = {}
        p, f = self.params.cloudsql, self.scenario.cloudsql
        flags = p.required_flags if f.flags is None else f.flags
        name = p.instance
        ip_config: dict[str, Any] = {
            "authorizedNetworks": [],
            "ipv4Enabled": False,
            "requireSsl": f.require_ssl,
            "sslMode": "ENCRYPTED_ONLY" if f.require_ssl else "ALLOW_UNENCRYPTED_AND_ENCRYPTED",
        }
        if f.private_network:
            ip_config["privateNetwork"] = f"projects/{self.project}/global/networks/{p.network}"
        self._instances[name] = {
            "kind": "sql#instance",
            "state": f.state,
            "databaseVersion": "POSTGRES_15",
            "settings": {
                "authorizedGaeApplications": [],
                "tier": "db-custom-2-7680",
                "kind": "sql#settings",
                "availabilityType": "ZONAL",
                "pricingPlan": "PER_USE",
                "replicationType": "SYNCHRONOUS",
                "activationPolicy": f.activation_policy,
                "ipConfiguration": ip_config,
                "locationPreference": {"zone": f"{self.region}-a", "kind": "sql#locationPreference"},
                "databaseFlags": [{"name": k, "value": v} for k, v in flags.items()],
                "dataDiskType": "PD_SSD",
                "backupConfiguration": {
                    "startTime": "06:00",
                    "kind": "sql#backupConfiguration",
                    "backupRetentionSettings": {"retentionUnit": "COUNT", "retainedBackups": 7},
                    "enabled": True,
                    "transactionLogRetentionDays": 7,
                },
                "settingsVersion": "1",
                "storageAutoResizeLimit": "0",
                "storageAutoResize": True,
                "dataDiskSizeGb": "10",
            },
            "etag": hashlib.sha256(os.urandom(16)).hexdigest(),
            "ipAddresses": [{"type": "PRIVATE", "ipAddress": SQL_PRIVATE_IP}] if f.private_network else [],
            "instanceType": "CLOUD_SQL_INSTANCE",
            "project": self.project,
            "serviceAccountEmailAddress": f"p{self.project_number}-abcd12@gcp-sa-cloud-sql.iam.gserviceaccount.com",
            "backendType": "SECOND_GEN",
            "selfLink": f"{SQLADMIN}/projects/{self.project}/instances/{name}",
            "connectionName": f"{self.project}:{self.region}:{name}",
            "name": name,
            "region": self.region,
            "gceZone": f"{self.region}-a",
            "databaseInstalledVersion": "POSTGRES_15_7",
            "createTime": self._rfc3339(3),
        }
        if not self._instances[name]["ipAddresses"]:
            del self._instances[name]["ipAddresses"]  # proto3 JSON leaves empty lists out

    def sql_running(self) -> bool:
        """Whether the instance accepts connections now (RUNNABLE and not activation policy NEVER)."""
        sql = self._instances.get(self.params.cloudsql.instance)
        return bool(sql) and sql["state"] == "RUNNABLE" and sql["settings"].get("activationPolicy") != "NEVER"

    def list_instances(self, project: str) -> list[dict[str, Any]]:
        with self._lock:
            self._check_project(project)
            return copy.deepcopy(list(self._instances.values()))

    def get_instance(self, project: str, instance: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(project)
            if instance not in self._instances:
                raise ApiFault(404, "NOT_FOUND", "The Cloud SQL instance does not exist.", "instanceDoesNotExist")
            return copy.deepcopy(self._instances[instance])

    def patch_instance(self, project: str, instance: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            current = self.get_instance(project, instance)
            if any(p.kind == "UPDATE" and p.resource["targetId"] == instance for p in self.ops.running("sqladmin")):
                raise ApiFault(409, "ABORTED", "Operation failed because another operation was already in "
                               "progress. Try your request after the current operation is complete.",
                               "operationInProgress")
            settings = body.get("settings") or {}
            merged = merge(copy.deepcopy(current["settings"]), settings, "settings")
            self._validate_settings(merged)

            def apply() -> None:
                live = self._instances[instance]
                live["settings"] = merged
                merged["settingsVersion"] = str(int(current["settings"]["settingsVersion"]) + 1)
                ip = merged["ipConfiguration"]
                if "requireSsl" in settings.get("ipConfiguration", {}) and "sslMode" not in settings["ipConfiguration"]:
                    ip["sslMode"] = "ENCRYPTED_ONLY" if ip["requireSsl"] else "ALLOW_UNENCRYPTED_AND_ENCRYPTED"
                if ip.get("privateNetwork") and not live.get("ipAddresses"):
                    live["ipAddresses"] = [{"type": "PRIVATE", "ipAddress": SQL_PRIVATE_IP}]
                live["etag"] = hashlib.sha256(os.urandom(16)).hexdigest()
                return None

            return self.ops.sql("UPDATE", self.project, instance, SQLADMIN, ACTOR, apply)

    @staticmethod
    def _validate_settings(settings: dict[str, Any]) -> None:
        flags = settings.get("databaseFlags", [])
        if not all(isinstance(f.get("name"), str) and isinstance(f.get("value", ""), str) for f in flags):
            raise bad_request("Invalid value for databaseFlags: expected [{name, value}] with string values",
                              field="settings.databaseFlags")
        network = settings.get("ipConfiguration", {}).get("privateNetwork")
        if network is not None and not re.match(r"^projects/[^/]+/global/networks/[^/]+$", network):
            raise bad_request(f"Invalid value for ipConfiguration.privateNetwork: {network!r}; expected "
                              "projects/PROJECT/global/networks/NETWORK", field="settings.ipConfiguration.privateNetwork")

    def restart_instance(self, project: str, instance: str) -> dict[str, Any]:
        with self._lock:
            current = self.get_instance(project, instance)
            if current["state"] == "SUSPENDED":
                raise ApiFault(400, "FAILED_PRECONDITION",
                               "Invalid request: Invalid request since instance is suspended.", "invalid")
            if current["settings"].get("activationPolicy") == "NEVER":
                raise ApiFault(400, "FAILED_PRECONDITION",
                               "Invalid request: Invalid request since instance is not running. "
                               "Start it by setting settings.activationPolicy to ALWAYS.", "invalid")
            return self.ops.sql("RESTART", self.project, instance, SQLADMIN, ACTOR, None)

    def get_sql_operation(self, project: str, name: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(project)
            op = self.ops.get("sqladmin", name)
            if op is None:
                raise ApiFault(404, "NOT_FOUND", f"The operation {name} does not exist.", "operationDoesNotExist")
            return op
