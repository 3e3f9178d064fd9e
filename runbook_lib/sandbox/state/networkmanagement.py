"""Network Management v1: Connectivity Tests computed from the sandbox's own resources.

``connectivityTests.create`` stores the test and starts a ``google.longrunning.Operation``; when it
completes, ``reachabilityDetails`` holds one trace from the Cloud Run revision to the Cloud SQL
instance, with the step states and drop causes of the v1 enums (``START_FROM_CLOUD_RUN_REVISION``,
``ARRIVE_AT_VPC_CONNECTOR``, ``APPLY_EGRESS_FIREWALL_RULE``, ``APPLY_ROUTE``, ``DELIVER`` or ``DROP``
with ``VPC_CONNECTOR_NOT_SET``, ``VPC_CONNECTOR_NOT_RUNNING``, ``ROUTE_WRONG_NETWORK``,
``CLOUD_SQL_INSTANCE_NOT_RUNNING``, ``CLOUD_SQL_INSTANCE_NO_IP_ADDRESS``, ``CLOUD_RUN_REVISION_NOT_READY``).
It is a configuration analysis, as Google's is: a saturated but READY connector is reachable.
"""
from __future__ import annotations

import copy
import re
from typing import Any

from runbook_lib.sandbox.state.common import ApiFault, Base, bad_request, last

OP_META = "type.googleapis.com/google.cloud.networkmanagement.v1.OperationMetadata"
TEST_TYPE = "type.googleapis.com/google.cloud.networkmanagement.v1.ConnectivityTest"
EMPTY = "type.googleapis.com/google.protobuf.Empty"
PREFIX = "networkmanagement.projects.locations.global"


class NetworkManagement(Base):
    HANDLERS = {
        f"{PREFIX}.connectivityTests.create": lambda s, c: s.create_connectivity_test(
            c.params["parent"], c.query.get("testId", ""), c.body),
        f"{PREFIX}.connectivityTests.get": lambda s, c: s.get_connectivity_test(c.params["name"]),
        f"{PREFIX}.connectivityTests.list": lambda s, c: s._page_of(
            c, s.list_connectivity_tests(c.params["parent"]), "resources"),
        f"{PREFIX}.connectivityTests.delete": lambda s, c: s.delete_connectivity_test(c.params["name"]),
        f"{PREFIX}.connectivityTests.rerun": lambda s, c: s.rerun_connectivity_test(c.params["name"]),
        f"{PREFIX}.operations.get": lambda s, c: s._nm_operation(c.params["name"]),
        f"{PREFIX}.operations.list": lambda s, c: s._page_of(
            c, s.ops.listing("networkmanagement", c.params["name"] + "/operations/"), "operations"),
    }

    _tests: dict[str, dict[str, Any]]

    def _build_network_management(self) -> None:
        self._tests = {}

    def _nm_project(self, parent: str) -> str:
        project = parent.split("/")[1]
        self._check_project(project)
        return project

    def list_connectivity_tests(self, parent: str) -> list[dict[str, Any]]:
        with self._lock:
            self._nm_project(parent)
            return copy.deepcopy(list(self._tests.values()))

    def get_connectivity_test(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._nm_project(name)
            if name not in self._tests:
                raise ApiFault(404, "NOT_FOUND", f"Resource '{name}' was not found")
            return copy.deepcopy(self._tests[name])

    def create_connectivity_test(self, parent: str, test_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if not re.match(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", test_id or ""):
            raise bad_request(f"testId must be 1-63 lowercase letters, digits or hyphens, starting with a letter, "
                              f"got {test_id!r}", field="testId")
        source, destination = body.get("source") or {}, body.get("destination") or {}
        if not source or not destination:
            raise bad_request("ConnectivityTest.source and ConnectivityTest.destination are required",
                              field="source" if not source else "destination")
        with self._lock:
            self._nm_project(parent)
            name = f"{parent}/connectivityTests/{test_id}"
            if name in self._tests:
                raise ApiFault(409, "ALREADY_EXISTS", f"Resource '{name}' already exists")
            when = self._rfc3339(9)
            test = {"name": name, "source": copy.deepcopy(source), "destination": copy.deepcopy(destination),
                    "protocol": body.get("protocol", "TCP"), "displayName": test_id, "createTime": when,
                    "updateTime": when}
            for key in ("description", "labels", "relatedProjects", "bypassFirewallChecks", "roundTrip"):
                if key in body:
                    test[key] = copy.deepcopy(body[key])
            self._tests[name] = test
            return self._analyse(name, "create")

    def rerun_connectivity_test(self, name: str) -> dict[str, Any]:
        with self._lock:
            self.get_connectivity_test(name)
            return self._analyse(name, "rerun")

    def delete_connectivity_test(self, name: str) -> dict[str, Any]:
        with self._lock:
            self.get_connectivity_test(name)

            def apply() -> None:
                self._tests.pop(name, None)

            return self.ops.longrunning("networkmanagement", "delete", _op_parent(name), name, OP_META, EMPTY, apply,
                                        metadata=self._nm_meta(name, "delete"), op_id=_op_id(self._clock()))

    def _analyse(self, name: str, verb: str) -> dict[str, Any]:
        def apply() -> dict[str, Any]:
            test = self._tests.get(name)
            if test is None:
                return {}
            test["reachabilityDetails"] = self._reachability(test)
            test["updateTime"] = self._rfc3339(9)
            return copy.deepcopy(test)

        return self.ops.longrunning("networkmanagement", verb, _op_parent(name), name, OP_META, TEST_TYPE, apply,
                                    metadata=self._nm_meta(name, verb), op_id=_op_id(self._clock()))

    def _nm_meta(self, name: str, verb: str) -> dict[str, Any]:
        return {"createTime": self._rfc3339(9), "target": name, "verb": verb, "apiVersion": "v1"}

    def _nm_operation(self, name: str) -> dict[str, Any]:
        with self._lock:
            op = self.ops.get("networkmanagement", name)
            if op is None:
                raise ApiFault(404, "NOT_FOUND", f"Resource '{name}' was not found")
            return op

    # --- the analysis --------------------------------------------------------------------------

    def _reachability(self, test: dict[str, Any]) -> dict[str, Any]:
        src, dst = test["source"], test["destination"]
        steps: list[dict[str, Any]] = []
        network_uri = f"projects/{self.project}/global/networks/{self.params.cloudsql.network}"
        endpoint: dict[str, Any] = {"protocol": test.get("protocol", "TCP"), "destinationPort": dst.get("port", 5432)}

        def drop(cause: str, resource: str, *, on_last: bool = True) -> dict[str, Any]:
            if on_last and steps:
                steps[-1]["causesDrop"] = True
            steps.append({"description": f"Final state: packet dropped ({cause}).", "state": "DROP",
                          "projectId": self.project, "causesDrop": True,
                          "drop": {"cause": cause, "resourceUri": resource}})
            return {"result": "UNREACHABLE", "verifyTime": self._rfc3339(9),
                    "traces": [{"endpointInfo": endpoint, "steps": steps, "forwardTraceId": 1}]}

        rev_uri = (src.get("cloudRunRevision") or {}).get("uri", "")
        revision, svc = self._find_revision(rev_uri)
        if revision is None:
            steps.append({"description": "Initial state: packet originating from a Cloud Run revision.",
                          "state": "START_FROM_CLOUD_RUN_REVISION", "projectId": self.project,
                          "cloudRunRevision": {"uri": rev_uri, "displayName": last(rev_uri)}})
            return drop("CLOUD_RUN_REVISION_NOT_READY", rev_uri)
        service_uri = revision["service"]
        steps.append({"description": "Initial state: packet originating from a Cloud Run revision.",
                      "state": "START_FROM_CLOUD_RUN_REVISION", "projectId": self.project,
                      "cloudRunRevision": {"displayName": last(revision["name"]), "uri": rev_uri,
                                           "location": self.region, "serviceUri": service_uri}})
        if not self.revision_ready(revision):
            return drop("CLOUD_RUN_REVISION_NOT_READY", rev_uri)
        connector_name = (revision.get("vpcAccess") or {}).get("connector")
        if not connector_name:
            return drop("VPC_CONNECTOR_NOT_SET", rev_uri)
        connector = self._connectors.get(connector_name)
        steps.append({"description": "Packet is sent through the Serverless VPC Access connector.",
                      "state": "ARRIVE_AT_VPC_CONNECTOR", "projectId": self.project,
                      "vpcConnector": {"displayName": last(connector_name), "uri": connector_name,
                                       "location": self.region}})
        if connector is None or connector["state"] not in ("READY", "UPDATING"):
            return drop("VPC_CONNECTOR_NOT_RUNNING", connector_name)
        connector_network = f"projects/{self.project}/global/networks/{last(connector['network'])}"
        endpoint["sourceNetworkUri"] = connector_network
        steps.append({"description": "Config checking state: verify EGRESS firewall rule.",
                      "state": "APPLY_EGRESS_FIREWALL_RULE", "projectId": self.project,
                      "firewall": {"displayName": "default-egress-allow", "direction": "EGRESS", "action": "ALLOW",
                                   "priority": 65535, "networkUri": connector_network,
                                   "firewallRuleType": "IMPLIED_VPC_FIREWALL_RULE"}})
        sql_uri = dst.get("cloudSqlInstance", "")
        sql = self._instances.get(last(sql_uri))
        if sql is None:
            return drop("CLOUD_SQL_INSTANCE_NOT_RUNNING", sql_uri)
        private = [a["ipAddress"] for a in sql.get("ipAddresses", []) if a.get("type") == "PRIVATE"]
        if not private:
            return drop("CLOUD_SQL_INSTANCE_NO_IP_ADDRESS", sql_uri)
        endpoint["destinationIp"] = private[0]
        sql_network = sql["settings"].get("ipConfiguration", {}).get("privateNetwork", network_uri)
        steps.append({"description": "Config checking state: verify route.", "state": "APPLY_ROUTE",
                      "projectId": self.project,
                      "route": {"displayName": "peering-route", "routeType": "PEERING_SUBNET",
                                "destIpRange": "10.103.0.0/24", "nextHopType": "NEXT_HOP_PEERING",
                                "networkUri": connector_network, "priority": 0}})
        if last(connector_network) != last(sql_network):
            return drop("ROUTE_WRONG_NETWORK", connector_network)
        if not self.sql_running():
            return drop("CLOUD_SQL_INSTANCE_NOT_RUNNING", sql_uri)
        steps.append({"description": "Final state: packet delivered to Cloud SQL instance.", "state": "DELIVER",
                      "projectId": self.project,
                      "deliver": {"target": "CLOUD_SQL_INSTANCE", "resourceUri": sql_uri, "ipAddress": private[0]}})
        return {"result": "REACHABLE", "verifyTime": self._rfc3339(9),
                "traces": [{"endpointInfo": endpoint, "steps": steps, "forwardTraceId": 1}]}

    def _find_revision(self, uri: str) -> tuple[dict[str, Any] | None, str | None]:
        """``projects/P/locations/R/revisions/REV`` (Network Management's form) or a service's revision."""
        rid = last(uri)
        for svc, revisions in self._revisions.items():
            if rid in revisions:
                return revisions[rid], svc
        return None, None


def _op_parent(name: str) -> str:
    return name.split("/connectivityTests/")[0]


def _op_id(clock: float) -> str:
    import uuid

    return f"operation-{int(clock * 1000)}-{uuid.uuid4().hex[:12]}"
