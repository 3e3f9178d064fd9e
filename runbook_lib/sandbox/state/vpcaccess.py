"""Serverless VPC Access v1: connectors and their long-running operations.

Constraints (vpcaccess v1 discovery ``Connector`` descriptions and the product's documented
limits): ``minInstances`` >= 2, ``maxInstances`` <= 10 and > ``minInstances``; ``minThroughput``
a multiple of 100 from 200 to 900, ``maxThroughput`` from 300 to 1000, min < max; machine type
f1-micro, e2-micro or e2-standard-4; ``network`` and ``ipCidrRange`` cannot change in place.
"""
from __future__ import annotations

import copy
import re
from typing import Any

from runbook_lib.sandbox.state.common import ApiFault, Base, bad_request, not_found

CONNECTOR_ROUTES = ("READY", "UPDATING")  # states in which a connector forwards traffic
MUTABLE = ("minInstances", "maxInstances", "machineType", "minThroughput", "maxThroughput")
OP_META = "type.googleapis.com/google.cloud.vpcaccess.v1.OperationMetadata"
CONNECTOR_TYPE = "type.googleapis.com/google.cloud.vpcaccess.v1.Connector"
EMPTY = "type.googleapis.com/google.protobuf.Empty"


class VpcAccess(Base):
    HANDLERS = {
        "vpcaccess.projects.locations.connectors.list": lambda s, c: s._page_of(
            c, s.list_connectors(*_parent(c.params["parent"])), "connectors"),
        "vpcaccess.projects.locations.connectors.get": lambda s, c: s.get_connector(c.params["name"]),
        "vpcaccess.projects.locations.connectors.patch": lambda s, c: s.patch_connector(
            c.params["name"], c.body, c.query.get("updateMask", "")),
        "vpcaccess.projects.locations.connectors.create": lambda s, c: s.create_connector(
            *_parent(c.params["parent"]), c.query.get("connectorId", ""), c.body),
        "vpcaccess.projects.locations.connectors.delete": lambda s, c: s.delete_connector(c.params["name"]),
        "vpcaccess.projects.locations.operations.get": lambda s, c: s.get_vpc_operation(c.params["name"]),
        "vpcaccess.projects.locations.operations.list": lambda s, c: s._page_of(
            c, s.ops.listing("vpcaccess", c.params["name"] + "/operations/"), "operations"),
    }

    _connectors: dict[str, dict[str, Any]]

    @property
    def connector_name(self) -> str:
        return f"projects/{self.project}/locations/{self.region}/connectors/{self.params.connector.name}"

    def _build_connector(self) -> None:
        self._connectors = {}
        p, f = self.params.connector, self.scenario.connector
        self._connectors[self.connector_name] = self._connector_json(
            self.connector_name,
            network=f.network or p.network,
            ip_cidr_range=f.ip_cidr_range or p.ip_cidr_range,
            machine_type=p.machine_type,
            min_instances=p.min_instances if f.min_instances is None else f.min_instances,
            max_instances=p.max_instances if f.max_instances is None else f.max_instances,
            state=f.state,
            subnet=p.subnet,
        )

    def _connector_json(self, name: str, *, network: str, ip_cidr_range: str | None, machine_type: str,
                        min_instances: int, max_instances: int, state: str, subnet: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": name,
            "network": network,
            "state": state,
            "minThroughput": 100 * min_instances,
            "maxThroughput": 100 * max_instances,
            "connectedProjects": [self.project],
            "machineType": machine_type,
            "minInstances": min_instances,
            "maxInstances": max_instances,
        }
        if subnet:
            body["subnet"] = {"name": subnet, "projectId": self.project}
        else:
            body["ipCidrRange"] = ip_cidr_range
        return body

    def list_connectors(self, project: str, location: str) -> list[dict[str, Any]]:
        with self._lock:
            self._check_project(project)
            prefix = f"projects/{project}/locations/{location}/connectors/"
            return copy.deepcopy([c for n, c in self._connectors.items() if n.startswith(prefix)])

    def get_connector(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(name.split("/")[1])
            if name not in self._connectors:
                raise not_found(name)
            return copy.deepcopy(self._connectors[name])

    def patch_connector(self, name: str, body: dict[str, Any], update_mask: str) -> dict[str, Any]:
        fields = [f.strip() for f in update_mask.split(",") if f.strip()] or [f for f in MUTABLE if f in body]
        immutable = [f for f in fields if f in ("network", "ipCidrRange", "subnet", "subnet.name")]
        if immutable:
            raise bad_request(f"Updating {', '.join(immutable)} is not supported: the connector's network and "
                              "IP range cannot change; delete the connector and create a new one.",
                              field=immutable[0])
        bad = [f for f in fields if f not in MUTABLE]
        if bad:
            raise bad_request(f"Invalid update mask field(s): {', '.join(bad)}; updatable fields are "
                              + ", ".join(MUTABLE), field="updateMask")
        with self._lock:
            self._check_project(name.split("/")[1])
            connector = self._connectors.get(name)
            if connector is None:
                raise not_found(name)
            if connector["state"] not in ("READY",):
                raise ApiFault(400, "FAILED_PRECONDITION",
                               f"Connector {name} is in state {connector['state']} and cannot be updated; "
                               "wait for the running operation, or delete and recreate it", "failedPrecondition")
            new = dict(connector)
            for f in fields:
                if f not in body:
                    raise bad_request(f"updateMask names {f} but the request body has no value for it", field=f)
                new[f] = body[f]
            if "minInstances" in fields and "minThroughput" not in fields:
                new["minThroughput"] = 100 * int(new["minInstances"])
            if "maxInstances" in fields and "maxThroughput" not in fields:
                new["maxThroughput"] = 100 * int(new["maxInstances"])
            self._validate_scaling(new)
            connector["state"] = "UPDATING"

            def apply() -> dict[str, Any]:
                new["state"] = "READY"
                self._connectors[name] = new
                return copy.deepcopy(new)

            def settle() -> None:  # a failed update leaves the connector as it was, READY again
                if self._connectors.get(name, {}).get("state") == "UPDATING":
                    self._connectors[name]["state"] = "READY"

            return self._vpc_operation("UpdateConnector", name, apply, on_done=settle)

    @staticmethod
    def _validate_scaling(c: dict[str, Any]) -> None:
        if c.get("machineType") not in ("f1-micro", "e2-micro", "e2-standard-4"):
            raise bad_request("machine_type must be one of f1-micro, e2-micro, e2-standard-4, "
                              f"got {c.get('machineType')!r}", field="machineType")
        mn, mx = c.get("minInstances"), c.get("maxInstances")
        if not isinstance(mn, int) or mn < 2:
            raise bad_request(f"min_instances must be at least 2, got {mn!r}", field="minInstances")
        if not isinstance(mx, int) or mx > 10:
            raise bad_request(f"max_instances must be at most 10, got {mx!r}", field="maxInstances")
        if mn >= mx:
            raise bad_request(f"max_instances ({mx}) must be greater than min_instances ({mn})",
                              field="maxInstances")
        tmin, tmax = c.get("minThroughput"), c.get("maxThroughput")
        if not isinstance(tmin, int) or tmin % 100 or not 200 <= tmin <= 900:
            raise bad_request("min_throughput must be a multiple of 100 from 200 through 900, "
                              f"got {tmin!r}", field="minThroughput")
        if not isinstance(tmax, int) or tmax % 100 or not 300 <= tmax <= 1000:
            raise bad_request("max_throughput must be a multiple of 100 from 300 through 1000, "
                              f"got {tmax!r}", field="maxThroughput")
        if tmin >= tmax:
            raise bad_request(f"max_throughput ({tmax}) must be higher than min_throughput ({tmin})",
                              field="maxThroughput")

    def create_connector(self, project: str, location: str, connector_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if not re.match(r"^[a-z][-a-z0-9]{0,23}[a-z0-9]$", connector_id or ""):
            raise bad_request(f"connectorId must match ^[a-z][-a-z0-9]{{0,23}}[a-z0-9]$, got {connector_id!r}",
                              field="connectorId")
        with self._lock:
            self._check_project(project)
            name = f"projects/{project}/locations/{location}/connectors/{connector_id}"
            if name in self._connectors:
                raise ApiFault(409, "ALREADY_EXISTS", f"Connector {name} already exists", "alreadyExists")
            subnet = (body.get("subnet") or {}).get("name")
            if not body.get("network") and not subnet:
                raise bad_request("network or subnet must be set", field="network")
            if not subnet and not body.get("ipCidrRange"):
                raise bad_request("ipCidrRange must be set when no subnet is given", field="ipCidrRange")
            new = self._connector_json(
                name, network=body.get("network", ""), ip_cidr_range=body.get("ipCidrRange"),
                machine_type=body.get("machineType", "e2-micro"), min_instances=body.get("minInstances", 2),
                max_instances=body.get("maxInstances", 10), state="CREATING", subnet=subnet)
            for key in ("minThroughput", "maxThroughput"):
                if key in body:
                    new[key] = body[key]
            self._validate_scaling(new)
            self._connectors[name] = new

            def apply() -> dict[str, Any]:
                new["state"] = "READY"
                return copy.deepcopy(new)

            return self._vpc_operation("CreateConnector", name, apply)

    def delete_connector(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(name.split("/")[1])
            if name not in self._connectors:
                raise not_found(name)
            self._connectors[name]["state"] = "DELETING"

            def apply() -> None:
                self._connectors.pop(name, None)

            return self._vpc_operation("DeleteConnector", name, apply, empty=True)

    def _vpc_operation(self, method: str, target: str, apply: Any, *, empty: bool = False,
                       on_done: Any = None) -> dict[str, Any]:
        parent = target.split("/connectors/")[0]
        return self.ops.longrunning(
            "vpcaccess", method, parent, target, OP_META, EMPTY if empty else CONNECTOR_TYPE, apply,
            metadata={"method": f"google.cloud.vpcaccess.v1.VpcAccessService.{method}",
                      "createTime": self._rfc3339(9), "target": target}, on_done=on_done)

    def get_vpc_operation(self, name: str) -> dict[str, Any]:
        with self._lock:
            op = self.ops.get("vpcaccess", name)
            if op is None:
                raise not_found(name)
            return op


def _parent(parent: str) -> tuple[str, str]:
    parts = parent.split("/")
    return parts[1], parts[3]
