"""The sandbox's control plane: GCP resources as the real APIs return them, and what they mean.

``SandboxState`` is built from the parameters (every name) and a scenario (every fault). It keeps
each resource as the JSON of the real API (field names, types, enum values), applies mutations
the way the real API would (validation errors included), and implements ``DataPlaneView`` so the
data plane behaves as the resources say: a saturated connector delays the database, a stopped
instance resets connections, a missing certificate means a hostname mismatch. PATCH the resource
and the wire heals.

Thread-safe: one lock around every read and mutation. Time-dependent resources (a managed
certificate turning ACTIVE) are computed from the injected clock on read.
"""
from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import os
import re
import secrets as pysecrets
import threading
import time
import uuid
from typing import Any, Callable, Iterable

from ..errors import RunbookError
from ..params import Params
from .dataplane_view import CertKind, ProxyPolicy
from .scenario import Scenario

COMPUTE = "https://www.googleapis.com/compute/v1"
SQLADMIN = "https://sqladmin.googleapis.com/v1"
ACTOR = "runbook-sandbox@sandbox.iam.gserviceaccount.com"
SQL_PRIVATE_IP = "10.103.0.3"  # what the API reports; the data path is the sandbox proxy
CONNECTOR_ROUTES = ("READY", "UPDATING")  # states in which a connector forwards traffic


class ApiFault(RunbookError):
    """A request the real API would refuse; the emulator renders it in Google's error format."""

    def __init__(self, code: int, status: str, message: str, reason: str = "", domain: str = "googleapis.com"):
        self.code, self.status, self.message = code, status, message
        self.reason = reason or status.lower()
        self.domain = domain
        super().__init__(message)


def not_found(what: str) -> ApiFault:
    return ApiFault(404, "NOT_FOUND", f"The resource '{what}' was not found", "notFound")


def bad_request(message: str, reason: str = "invalid") -> ApiFault:
    return ApiFault(400, "INVALID_ARGUMENT", message, reason)


def _num_id(*parts: str, digits: int = 19) -> str:
    """Stable numeric ids (compute ids, project numbers) derived from names."""
    n = int(hashlib.sha256("/".join(parts).encode()).hexdigest(), 16)
    return str(10 ** (digits - 1) + n % (9 * 10 ** (digits - 1)))


def _fingerprint(content: Any) -> str:
    """Derived from the resource's content, as Compute's are: it changes exactly when the resource
    does, so a plan built against one state is refused (412) once the state has moved on."""
    blob = json.dumps(content, sort_keys=True, default=str).encode()
    return base64.b64encode(hashlib.sha256(blob).digest()[:8]).decode()


def _merge(base: dict[str, Any], patch: dict[str, Any], where: str = "resource") -> dict[str, Any]:
    """JSON merge as the PATCH methods do it: objects merge, lists and scalars replace.

    A value whose JSON type contradicts the resource (an object where a string was) is refused,
    as the real APIs refuse it, before anything changes.
    """
    for key, value in patch.items():
        current = base.get(key)
        if current is not None and value is not None:
            for kind, expected in ((dict, "an object"), (list, "a list")):
                if isinstance(current, kind) != isinstance(value, kind):
                    wanted = expected if isinstance(current, kind) else "a scalar"
                    raise bad_request(f"Invalid value for field '{where}.{key}': expected {wanted}.")
        if isinstance(value, dict) and isinstance(current, dict):
            _merge(current, value, f"{where}.{key}")
        else:
            base[key] = copy.deepcopy(value)
    return base


def _covers(name: str, domain: str) -> bool:
    """Certificate name matching: exact, or a wildcard for exactly one leftmost label."""
    name, domain = name.lower().rstrip("."), domain.lower().rstrip(".")
    if name == domain:
        return True
    if name.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == name[2:]
    return False


def canary_value(secret_id: str) -> str:
    """A random value shaped like the secret, with a distinctive token that leak tests can grep for."""
    token = f"rbkcanary{pysecrets.token_hex(12)}"
    if "database" in secret_id and "url" in secret_id:
        return f"postgresql://app:{token}@{SQL_PRIVATE_IP}:5432/app"
    if "redis" in secret_id:
        return f"redis://:{token}@10.103.1.4:6379/0"
    if "cors" in secret_id:
        return f"https://{token}.example.com,https://console.example.com"
    return token


class SandboxState:
    """GCP resources as real API JSON, mutations with the real API's rules, and a DataPlaneView."""

    def __init__(
        self,
        params: Params,
        scenario: Scenario,
        time_scale: float | None = None,
        *,
        secret_values: dict[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ):
        self.params, self.scenario = params, scenario
        self.time_scale = params.target.time_scale if time_scale is None else time_scale
        self._clock, self._wall = clock, wall
        self._lock = threading.RLock()
        self._started = clock()
        self.project = params.project
        self.project_number = _num_id("project", params.project, digits=12)
        self.region = params.region
        self.domains = {
            "frontend": params.domains.frontend,
            "api": params.domains.api,
            "wildcard": params.domains.wildcard or "*." + params.domains.api.split(".", 1)[1],
            "legacy": (params.cloud_run.deprecated_domain_patterns or ["*." + params.domains.frontend])[0],
        }
        values = dict(secret_values or {})
        for sid in params.secrets.required:
            values.setdefault(sid, canary_value(sid))
        self._connectors: dict[str, dict[str, Any]] = {}
        self._instances: dict[str, dict[str, Any]] = {}
        self._compute: dict[str, dict[str, dict[str, Any]]] = {
            "healthChecks": {}, "backendServices": {}, "sslCertificates": {}, "targetHttpsProxies": {},
        }
        self._cert_timers: dict[str, float] = {}      # managed cert name -> clock time it was inserted
        self._secrets: dict[str, dict[str, Any]] = {}
        self._versions: dict[str, list[dict[str, Any]]] = {}
        self._payloads: dict[tuple[str, int], bytes] = {}  # never serialised by any read
        self._services: dict[str, dict[str, Any]] = {}
        self._operations: dict[tuple[str, str], dict[str, Any]] = {}
        self._build_connector()
        self._build_instance()
        self._build_load_balancer()
        self._build_secrets(values)
        self._build_services()

    # --- time and names -----------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return self._wall()

    def _rfc3339(self, digits: int = 6) -> str:
        text = self._now().astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
        return text[: 20 + digits] + "Z"

    def _compute_time(self) -> str:
        return self._now().isoformat(timespec="milliseconds")

    def _link(self, collection: str, name: str) -> str:
        return f"{COMPUTE}/projects/{self.project}/global/{collection}/{name}"

    @property
    def connector_name(self) -> str:
        return f"projects/{self.project}/locations/{self.region}/connectors/{self.params.connector.name}"

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    # --- initial resources --------------------------------------------------------------------

    def _build_connector(self) -> None:
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

    def _build_instance(self) -> None:
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

    def _build_load_balancer(self) -> None:
        lb, f = self.params.load_balancer, self.scenario.load_balancer
        hc = f.health_check
        hc_names = list(lb.health_checks)
        for name, path in lb.health_checks.items():
            self._compute["healthChecks"][name] = {
                "kind": "compute#healthCheck",
                "id": _num_id("hc", self.project, name),
                "creationTimestamp": self._compute_time(),
                "name": name,
                "checkIntervalSec": hc.interval_s if hc.interval_s is not None else lb.health_check.interval_s,
                "timeoutSec": hc.timeout_s if hc.timeout_s is not None else lb.health_check.timeout_s,
                "unhealthyThreshold": (hc.unhealthy_threshold if hc.unhealthy_threshold is not None
                                       else lb.health_check.unhealthy_threshold),
                "healthyThreshold": (hc.healthy_threshold if hc.healthy_threshold is not None
                                     else lb.health_check.healthy_threshold),
                "type": "HTTP",
                "httpHealthCheck": {
                    "port": 8080,
                    "portSpecification": "USE_FIXED_PORT",
                    "requestPath": hc.request_path or path,
                    "proxyHeader": "NONE",
                },
                "selfLink": self._link("healthChecks", name),
                "logConfig": {"enable": True},
            }
        timeout = f.backend_timeout_s if f.backend_timeout_s is not None else lb.backend_timeout_s
        for i, name in enumerate(lb.backend_services):
            group = f"{COMPUTE}/projects/{self.project}/zones/{self.region}-b/instanceGroups/{name}-ig"
            self._compute["backendServices"][name] = {
                "kind": "compute#backendService",
                "id": _num_id("bs", self.project, name),
                "creationTimestamp": self._compute_time(),
                "name": name,
                "description": "",
                "selfLink": self._link("backendServices", name),
                "backends": [{"group": group, "balancingMode": "UTILIZATION", "capacityScaler": 1}],
                "healthChecks": [self._link("healthChecks", hc_names[i % len(hc_names)])],
                "timeoutSec": timeout,
                "port": 80,
                "protocol": "HTTP",
                "fingerprint": _fingerprint(("backendServices", name, timeout, hc_names)),
                "portName": "http",
                "enableCDN": False,
                "sessionAffinity": "NONE",
                "affinityCookieTtlSec": 0,
                "loadBalancingScheme": "EXTERNAL_MANAGED",
                "connectionDraining": {"drainingTimeoutSec": 0},
            }
        certs = self.scenario.certificates
        for m in certs.managed:
            name = m.name or lb.certificate_name
            domains = [self.domains[r] for r in m.domains]
            domain_status = m.domain_status or ("ACTIVE" if m.status == "ACTIVE" else "PROVISIONING")
            self._compute["sslCertificates"][name] = self._managed_cert_json(
                name, domains, m.status, {d: domain_status for d in domains})
        for s in certs.self_managed:
            domains = [self.domains[r] for r in s.domains]
            self._compute["sslCertificates"][s.name] = self._self_managed_cert_json(s.name, domains, s.expired)
        attached = certs.attached if certs.attached is not None else list(self._compute["sslCertificates"])
        self._compute["targetHttpsProxies"][lb.https_proxy] = {
            "kind": "compute#targetHttpsProxy",
            "id": _num_id("thp", self.project, lb.https_proxy),
            "creationTimestamp": self._compute_time(),
            "name": lb.https_proxy,
            "selfLink": self._link("targetHttpsProxies", lb.https_proxy),
            "urlMap": self._link("urlMaps", "staging-url-map"),
            "sslCertificates": [self._link("sslCertificates", n) for n in attached],
            "quicOverride": "NONE",
            "fingerprint": _fingerprint(("targetHttpsProxies", lb.https_proxy, attached)),
            "tlsEarlyData": "DISABLED",
        }

    def _managed_cert_json(self, name: str, domains: list[str], status: str,
                           domain_status: dict[str, str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "compute#sslCertificate",
            "id": _num_id("cert", self.project, name, str(self._clock())),
            "creationTimestamp": self._compute_time(),
            "name": name,
            "selfLink": self._link("sslCertificates", name),
            "managed": {"domains": domains, "status": status, "domainStatus": domain_status},
            "type": "MANAGED",
        }
        if status == "ACTIVE":
            self._activate(body)
        return body

    def _activate(self, cert: dict[str, Any]) -> None:
        cert["managed"]["status"] = "ACTIVE"
        cert["managed"]["domainStatus"] = {d: "ACTIVE" for d in cert["managed"]["domains"]}
        cert["subjectAlternativeNames"] = list(cert["managed"]["domains"])
        cert["expireTime"] = (self._now() + dt.timedelta(days=90)).isoformat(timespec="milliseconds")

    def _self_managed_cert_json(self, name: str, domains: list[str], expired: bool) -> dict[str, Any]:
        expires = self._now() + (dt.timedelta(days=-1) if expired else dt.timedelta(days=365))
        return {
            "kind": "compute#sslCertificate",
            "id": _num_id("cert", self.project, name),
            "creationTimestamp": (self._now() - dt.timedelta(days=400)).isoformat(timespec="milliseconds"),
            "name": name,
            "selfLink": self._link("sslCertificates", name),
            "subjectAlternativeNames": domains,
            "expireTime": expires.isoformat(timespec="milliseconds"),
            "type": "SELF_MANAGED",
        }

    def _build_secrets(self, values: dict[str, str]) -> None:
        required = list(self.params.secrets.required)
        missing = self._pick(self.scenario.secrets.missing, required, "missing", exclude=())
        disabled = self._pick(self.scenario.secrets.disabled, required, "disabled", exclude=missing)
        for sid in required:
            if sid in missing:
                continue
            self._create_secret(sid, {"replication": {"automatic": {}}}, labels={"env": "staging"})
            self._add_version(sid, values[sid].encode(), state="DISABLED" if sid in disabled else "ENABLED")

    def _pick(self, spec: list[str] | int, required: list[str], key: str, exclude: Iterable[str]) -> list[str]:
        if isinstance(spec, int):
            pool = [s for s in required if s not in set(exclude)]
            if spec > len(pool):
                raise RunbookError(f"scenario {self.scenario.name}: secrets.{key}: expected at most "
                                   f"{len(pool)} secrets, got {spec}")
            return pool[len(pool) - spec:] if spec else []
        unknown = [s for s in spec if s not in required]
        if unknown:
            raise RunbookError(f"scenario {self.scenario.name}: secrets.{key}: expected names from "
                               f"secrets.required, got {', '.join(unknown)}")
        return list(spec)

    def _build_services(self) -> None:
        required = self.params.secrets.required
        services = self.params.cloud_run.services
        egress = self.scenario.cloud_run.vpc_egress or self.params.cloud_run.vpc_egress
        legacy = self.domains["legacy"].removeprefix("*.")
        subst = {"frontend": self.domains["frontend"], "api": self.domains["api"], "legacy": legacy}
        for i, svc in enumerate(services):
            if i == 0:
                refs = list(required)
            elif i == len(services) - 1 and len(services) > 2:
                refs = []  # the frontend reads no secrets
            else:
                refs = [s for s in required if re.search(r"jwt|oauth|database", s)]
            env: list[dict[str, Any]] = [
                {"name": "ENVIRONMENT", "value": "staging"},
                {"name": "FRONTEND_URL", "value": f"https://{self.domains['frontend']}"},
                {"name": "API_URL", "value": f"https://{self.domains['api']}"},
            ]
            for key, value in self.scenario.cloud_run.env.items():
                env = [e for e in env if e["name"] != key]
                env.append({"name": key, "value": value.format(**subst)})
            env += [{"name": re.sub(r"[^A-Z0-9]", "_", s.upper()),
                     "valueSource": {"secretKeyRef": {"secret": s, "version": "latest"}}} for s in refs]
            name = f"projects/{self.project}/locations/{self.region}/services/{svc}"
            revision = f"{name}/revisions/{svc}-00042-abc"
            when = self._rfc3339(6)
            ready = {"lastTransitionTime": when, "state": "CONDITION_SUCCEEDED"}
            self._services[svc] = {
                "name": name,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                "generation": "42",
                "createTime": when,
                "updateTime": when,
                "creator": ACTOR,
                "lastModifier": ACTOR,
                "ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
                "launchStage": "GA",
                "template": {
                    "containers": [{
                        "image": f"{self.region}-docker.pkg.dev/{self.project}/staging/{svc}:latest",
                        "ports": [{"containerPort": 8080, "name": "http1"}],
                        "env": env,
                        "resources": {"cpuIdle": True, "limits": {"cpu": "1000m", "memory": "1Gi"}},
                    }],
                    "vpcAccess": {"connector": self.connector_name, "egress": egress},
                    "maxInstanceRequestConcurrency": 80,
                    "scaling": {"maxInstanceCount": 20},
                    "serviceAccount": f"{svc}@{self.project}.iam.gserviceaccount.com",
                    "timeout": "300s",
                },
                "traffic": [{"percent": 100, "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}],
                "observedGeneration": "42",
                "terminalCondition": {**ready, "type": "Ready"},
                "conditions": [{**ready, "type": "RoutesReady"}, {**ready, "type": "ConfigurationsReady"}],
                "latestReadyRevision": revision,
                "latestCreatedRevision": revision,
                "trafficStatuses": [{"percent": 100, "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}],
                "uri": f"https://{svc}-{self.project_number[:10]}.{self.region}.run.app",
                "etag": f'"{_fingerprint(("run", svc, revision))}"',
            }

    # --- reads ---------------------------------------------------------------------------------

    def _check_project(self, project: str, *, numbers: bool = False) -> None:
        if project != self.project and not (numbers and project == self.project_number):
            raise ApiFault(403, "PERMISSION_DENIED",
                           f"Permission denied on resource project {project} (or it may not exist).",
                           "CONSUMER_INVALID")

    def snapshot(self) -> dict[str, Any]:
        """Every resource as the APIs would return it (never a secret payload)."""
        with self._lock:
            self._tick()
            return copy.deepcopy({
                "connectors": list(self._connectors.values()),
                "instances": list(self._instances.values()),
                **{k: list(v.values()) for k, v in self._compute.items()},
                "secrets": list(self._secrets.values()),
                "versions": {k: v for k, v in self._versions.items()},
                "services": list(self._services.values()),
            })

    def _tick(self) -> None:
        """Advance time-dependent resources: managed certificates provisioning."""
        certs = self.scenario.certificates
        for name, inserted in list(self._cert_timers.items()):
            cert = self._compute["sslCertificates"].get(name)
            if cert is None:
                del self._cert_timers[name]
                continue
            if self._clock() - inserted < self.scaled(certs.provisioning_s):
                continue
            if certs.dns_visible:
                self._activate(cert)
            else:
                cert["managed"]["domainStatus"] = {d: "FAILED_NOT_VISIBLE" for d in cert["managed"]["domains"]}
            del self._cert_timers[name]

    # --- vpcaccess v1 ----------------------------------------------------------------------------

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
        allowed = {"minInstances", "maxInstances", "machineType", "minThroughput", "maxThroughput"}
        fields = [f.strip() for f in update_mask.split(",") if f.strip()]
        if not fields:
            raise bad_request("updateMask is required; expected a subset of " + ", ".join(sorted(allowed)))
        bad = [f for f in fields if f not in allowed]
        if bad:
            raise bad_request(f"Updating {', '.join(bad)} is not supported; expected fields from "
                              + ", ".join(sorted(allowed)))
        with self._lock:
            connector = self._connectors.get(name)
            self._check_project(name.split("/")[1])
            if connector is None:
                raise not_found(name)
            if connector["state"] not in CONNECTOR_ROUTES:
                raise ApiFault(400, "FAILED_PRECONDITION",
                               f"Connector {name} is in state {connector['state']}; delete and recreate it",
                               "failedPrecondition")
            new = dict(connector)
            for f in fields:
                if f not in body:
                    raise bad_request(f"updateMask names {f} but the request body has no value for it")
                value = body[f]
                # proto3 JSON accepts integers written as strings
                new[f] = int(value) if isinstance(value, str) and value.isdigit() and f != "machineType" else value
            self._validate_scaling(new)
            if "minInstances" in fields:
                new["minThroughput"] = 100 * int(new["minInstances"])
            if "maxInstances" in fields:
                new["maxThroughput"] = 100 * int(new["maxInstances"])
            new["state"] = "READY"
            self._connectors[name] = new
            return self._vpc_operation("UpdateConnector", name, new)

    @staticmethod
    def _validate_scaling(c: dict[str, Any]) -> None:
        if c.get("machineType") not in ("f1-micro", "e2-micro", "e2-standard-4"):
            raise bad_request("machine_type must be one of f1-micro, e2-micro, e2-standard-4, "
                              f"got {c.get('machineType')!r}")
        mn, mx = c.get("minInstances"), c.get("maxInstances")
        if not isinstance(mn, int) or not 2 <= mn <= 9:
            raise bad_request(f"min_instances must be between 2 and 9, got {mn!r}")
        if not isinstance(mx, int) or not 3 <= mx <= 10:
            raise bad_request(f"max_instances must be between 3 and 10, got {mx!r}")
        if mn >= mx:
            raise bad_request(f"max_instances ({mx}) must be greater than min_instances ({mn})")

    def create_connector(self, project: str, location: str, connector_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if not re.match(r"^[a-z][-a-z0-9]{0,23}[a-z0-9]$", connector_id or ""):
            raise bad_request(f"connectorId must match ^[a-z][-a-z0-9]{{0,23}}[a-z0-9]$, got {connector_id!r}")
        with self._lock:
            self._check_project(project)
            name = f"projects/{project}/locations/{location}/connectors/{connector_id}"
            if name in self._connectors:
                raise ApiFault(409, "ALREADY_EXISTS", f"Connector {name} already exists", "alreadyExists")
            subnet = (body.get("subnet") or {}).get("name")
            if not body.get("network") and not subnet:
                raise bad_request("network or subnet must be set")
            if not subnet and not body.get("ipCidrRange"):
                raise bad_request("ipCidrRange must be set when no subnet is given")
            new = self._connector_json(
                name, network=body.get("network", ""), ip_cidr_range=body.get("ipCidrRange"),
                machine_type=body.get("machineType", "e2-micro"), min_instances=body.get("minInstances", 2),
                max_instances=body.get("maxInstances", 10), state="READY", subnet=subnet)
            self._validate_scaling(new)
            self._connectors[name] = new
            return self._vpc_operation("CreateConnector", name, new)

    def delete_connector(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(name.split("/")[1])
            if name not in self._connectors:
                raise not_found(name)
            del self._connectors[name]
            return self._vpc_operation("DeleteConnector", name, None)

    def _vpc_operation(self, method: str, target: str, response: dict[str, Any] | None) -> dict[str, Any]:
        parent = target.split("/connectors/")[0]
        name = f"{parent}/operations/{uuid.uuid4()}"
        when = self._rfc3339(9)
        op: dict[str, Any] = {
            "name": name,
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.vpcaccess.v1.OperationMetadata",
                "method": f"google.cloud.vpcaccess.v1.VpcAccessService.{method}",
                "createTime": when,
                "endTime": when,
                "target": target,
            },
            "done": True,
            "response": ({"@type": "type.googleapis.com/google.cloud.vpcaccess.v1.Connector", **response}
                         if response is not None else {"@type": "type.googleapis.com/google.protobuf.Empty"}),
        }
        self._operations[("vpcaccess", name)] = op
        return copy.deepcopy(op)

    def get_vpc_operation(self, name: str) -> dict[str, Any]:
        with self._lock:
            op = self._operations.get(("vpcaccess", name))
            if op is None:
                raise not_found(name)
            return copy.deepcopy(op)

    # --- sqladmin v1 ---------------------------------------------------------------------------

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
            settings = body.get("settings") or {}
            if not isinstance(settings, dict):
                raise bad_request("Invalid value for settings: expected an object")
            merged = _merge(copy.deepcopy(current["settings"]), settings, "settings")
            self._validate_settings(merged)
            live = self._instances[instance]
            live["settings"] = merged
            merged["settingsVersion"] = str(int(current["settings"]["settingsVersion"]) + 1)
            ip = merged["ipConfiguration"]
            if "requireSsl" in settings.get("ipConfiguration", {}) and "sslMode" not in settings["ipConfiguration"]:
                ip["sslMode"] = "ENCRYPTED_ONLY" if ip["requireSsl"] else "ALLOW_UNENCRYPTED_AND_ENCRYPTED"
            if ip.get("privateNetwork") and not live["ipAddresses"]:
                live["ipAddresses"] = [{"type": "PRIVATE", "ipAddress": SQL_PRIVATE_IP}]
            if merged["activationPolicy"] == "NEVER":
                live["state"] = "STOPPED"
            elif current["state"] == "STOPPED":
                live["state"] = "RUNNABLE"
            live["etag"] = hashlib.sha256(os.urandom(16)).hexdigest()
            return self._sql_operation("UPDATE", instance)

    @staticmethod
    def _validate_settings(settings: dict[str, Any]) -> None:
        policy = settings.get("activationPolicy")
        if policy not in ("ALWAYS", "NEVER", "ON_DEMAND"):
            raise bad_request(f"Invalid value for activationPolicy: {policy!r}; expected ALWAYS or NEVER")
        flags = settings.get("databaseFlags", [])
        if not all(isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("value"), str)
                   for f in flags):
            raise bad_request("Invalid value for databaseFlags: expected [{name, value}] with string values")
        ip = settings.get("ipConfiguration", {})
        if not isinstance(ip.get("requireSsl", False), bool):
            raise bad_request("Invalid value for ipConfiguration.requireSsl: expected true or false")
        network = ip.get("privateNetwork")
        network_link = r"^projects/[^/]+/global/networks/[^/]+$"
        if network is not None and not (isinstance(network, str) and re.match(network_link, network)):
            raise bad_request(f"Invalid value for ipConfiguration.privateNetwork: {network!r}; expected "
                              "projects/PROJECT/global/networks/NETWORK")

    def restart_instance(self, project: str, instance: str) -> dict[str, Any]:
        with self._lock:
            current = self.get_instance(project, instance)
            if current["state"] == "SUSPENDED":
                raise ApiFault(400, "FAILED_PRECONDITION",
                               "Invalid request: Invalid request since instance is suspended.", "invalid")
            if current["state"] == "STOPPED" or current["settings"]["activationPolicy"] == "NEVER":
                raise ApiFault(400, "FAILED_PRECONDITION",
                               "Invalid request: Invalid request since instance is not running. "
                               "Start it by setting settings.activationPolicy to ALWAYS.", "invalid")
            self._instances[instance]["state"] = "RUNNABLE"
            return self._sql_operation("RESTART", instance)

    def _sql_operation(self, kind: str, instance: str) -> dict[str, Any]:
        name = str(uuid.uuid4())
        when = self._rfc3339(3)
        op = {
            "kind": "sql#operation",
            "targetLink": f"{SQLADMIN}/projects/{self.project}/instances/{instance}",
            "status": "DONE",
            "user": ACTOR,
            "insertTime": when,
            "startTime": when,
            "endTime": when,
            "operationType": kind,
            "name": name,
            "targetId": instance,
            "selfLink": f"{SQLADMIN}/projects/{self.project}/operations/{name}",
            "targetProject": self.project,
        }
        self._operations[("sqladmin", name)] = op
        return copy.deepcopy(op)

    def get_sql_operation(self, project: str, name: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(project)
            op = self._operations.get(("sqladmin", name))
            if op is None:
                raise ApiFault(404, "NOT_FOUND", f"The operation {name} does not exist.", "operationDoesNotExist")
            return copy.deepcopy(op)

    # --- compute v1 (global) -------------------------------------------------------------------

    def compute_list(self, project: str, collection: str) -> list[dict[str, Any]]:
        with self._lock:
            self._check_project(project)
            self._tick()
            return copy.deepcopy(list(self._compute[collection].values()))

    def compute_get(self, project: str, collection: str, name: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(project)
            self._tick()
            item = self._compute[collection].get(name)
            if item is None:
                raise not_found(f"projects/{project}/global/{collection}/{name}")
            return copy.deepcopy(item)

    def compute_patch(self, project: str, collection: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if collection not in ("healthChecks", "backendServices"):
            raise ApiFault(405, "METHOD_NOT_ALLOWED", f"PATCH is not supported on {collection}", "httpMethodNotAllowed")
        with self._lock:
            current = self.compute_get(project, collection, name)
            if "fingerprint" in body and body["fingerprint"] != current.get("fingerprint", body["fingerprint"]):
                raise ApiFault(412, "FAILED_PRECONDITION",
                               "Supplied fingerprint does not match current resource fingerprint.", "conditionNotMet")
            readonly = {"kind", "id", "creationTimestamp", "selfLink", "name", "fingerprint"}
            changes = {k: v for k, v in body.items() if k not in readonly}
            merged = _merge(copy.deepcopy(current), changes)
            if collection == "backendServices" and not all(isinstance(x, str) for x in merged.get("healthChecks", [])):
                raise bad_request("Invalid value for field 'resource.healthChecks': expected health check URLs.")
            (self._validate_health_check if collection == "healthChecks" else self._validate_backend)(merged)
            if "fingerprint" in current:
                merged["fingerprint"] = _fingerprint({k: v for k, v in merged.items() if k != "fingerprint"})
            self._compute[collection][name] = merged
            return self._compute_operation("patch", merged)

    @staticmethod
    def _validate_health_check(hc: dict[str, Any]) -> None:
        for key, lo, hi in (("checkIntervalSec", 1, 300), ("timeoutSec", 1, 300),
                            ("unhealthyThreshold", 1, 10), ("healthyThreshold", 1, 10)):
            v = hc.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise bad_request(f"Invalid value for field 'resource.{key}': '{v}'. "
                                  f"Must be between {lo} and {hi}.", "invalid")
        if hc["timeoutSec"] > hc["checkIntervalSec"]:
            raise bad_request(f"Invalid value for field 'resource.timeoutSec': '{hc['timeoutSec']}'. "
                              "TimeoutSec should be less than checkIntervalSec.", "invalid")
        path = (hc.get("httpHealthCheck") or hc.get("httpsHealthCheck") or {}).get("requestPath", "/")
        if not isinstance(path, str) or not path.startswith("/"):
            raise bad_request(f"Invalid value for field 'resource.httpHealthCheck.requestPath': '{path}'.")

    def _validate_backend(self, bs: dict[str, Any]) -> None:
        t = bs.get("timeoutSec")
        if not isinstance(t, int) or isinstance(t, bool) or not 1 <= t <= 86400:
            raise bad_request(f"Invalid value for field 'resource.timeoutSec': '{t}'. Must be between 1 and 86400.")
        for link in bs.get("healthChecks") or []:
            if str(link).rsplit("/", 1)[-1] not in self._compute["healthChecks"]:
                raise bad_request(f"Invalid value for field 'resource.healthChecks[0]': '{link}'. "
                                  "The URL is malformed or the resource does not exist.")

    def insert_ssl_certificate(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not re.match(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", name):
            raise bad_request(f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex "
                              "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'")
        if body.get("type", "MANAGED") != "MANAGED" or "certificate" in body:
            raise bad_request("The sandbox accepts Google-managed certificates only (type MANAGED).")
        domains = (body.get("managed") or {}).get("domains")
        if not isinstance(domains, list) or not domains or not all(isinstance(d, str) for d in domains):
            raise bad_request("Invalid value for field 'resource.managed.domains': at least one domain is required.")
        for d in domains:
            if d.startswith("*"):
                raise bad_request(f"Invalid value for field 'resource.managed.domains': '{d}'. "
                                  "Wildcard domains are not supported for Google-managed certificates.")
        with self._lock:
            self._check_project(project)
            if name in self._compute["sslCertificates"]:
                raise ApiFault(409, "ALREADY_EXISTS",
                               f"The resource 'projects/{project}/global/sslCertificates/{name}' already exists",
                               "alreadyExists")
            cert = self._managed_cert_json(name, list(domains), "PROVISIONING", {d: "PROVISIONING" for d in domains})
            self._compute["sslCertificates"][name] = cert
            self._cert_timers[name] = self._clock()
            return self._compute_operation("insert", cert)

    def delete_ssl_certificate(self, project: str, name: str) -> dict[str, Any]:
        with self._lock:
            cert = self.compute_get(project, "sslCertificates", name)
            for proxy in self._compute["targetHttpsProxies"].values():
                if cert["selfLink"] in proxy["sslCertificates"]:
                    raise ApiFault(400, "FAILED_PRECONDITION",
                                   f"The ssl_certificate resource '{cert['selfLink']}' is already being used by "
                                   f"'{proxy['selfLink']}'", "resourceInUseByAnotherResource")
            del self._compute["sslCertificates"][name]
            return self._compute_operation("delete", cert)

    def set_ssl_certificates(self, project: str, proxy_name: str, body: dict[str, Any]) -> dict[str, Any]:
        links = body.get("sslCertificates")
        if not isinstance(links, list) or not 1 <= len(links) <= 15:
            raise bad_request("Invalid value for field 'sslCertificates': expected 1 to 15 certificate URLs.")
        with self._lock:
            proxy = self._compute["targetHttpsProxies"].get(proxy_name)
            self._check_project(project)
            if proxy is None:
                raise not_found(f"projects/{project}/global/targetHttpsProxies/{proxy_name}")
            resolved = []
            for i, link in enumerate(links):
                cert_name = str(link).rstrip("/").rsplit("/", 1)[-1]
                if cert_name not in self._compute["sslCertificates"]:
                    raise bad_request(f"Invalid value for field 'sslCertificates[{i}]': '{link}'. "
                                      "The URL is malformed or the resource does not exist.")
                resolved.append(self._link("sslCertificates", cert_name))
            proxy["sslCertificates"] = resolved
            proxy["fingerprint"] = _fingerprint({k: v for k, v in proxy.items() if k != "fingerprint"})
            return self._compute_operation("setSslCertificates", proxy)

    def backend_health(self, project: str, backend: str, body: dict[str, Any]) -> dict[str, Any]:
        group = body.get("group")
        with self._lock:
            bs = self.compute_get(project, "backendServices", backend)
            groups = [b["group"] for b in bs.get("backends", [])]
            if not isinstance(group, str) or group not in groups:
                raise bad_request(f"Invalid value for field 'resourceGroupReference.group': '{group}'. "
                                  "Group is not a backend of this backend service.")
            state = "HEALTHY" if not self._health_problems(bs) else "UNHEALTHY"
            zone_base = group.split("/instanceGroups/")[0]
            return {
                "kind": "compute#backendServiceGroupHealth",
                "healthStatus": [
                    {"ipAddress": f"10.128.0.{10 + i}", "port": 8080,
                     "instance": f"{zone_base}/instances/{backend}-{i}", "healthState": state}
                    for i in range(2)
                ],
            }

    def _health_problems(self, bs: dict[str, Any]) -> list[str]:
        """Why the backends of ``bs`` fail their health check now (empty: healthy)."""
        problems = []
        expected = self.params.load_balancer.health_checks
        startup = self.scenario.services.startup_s
        for link in bs.get("healthChecks") or []:
            name = link.rsplit("/", 1)[-1]
            hc = self._compute["healthChecks"].get(name)
            if hc is None:
                problems.append(f"health check {name} does not exist")
                continue
            tolerance = hc["checkIntervalSec"] * hc["unhealthyThreshold"]
            if tolerance < startup:
                problems.append(f"{name} gives up after {tolerance} s, startup takes {startup:g} s")
            path = (hc.get("httpHealthCheck") or hc.get("httpsHealthCheck") or {}).get("requestPath")
            if name in expected and path != expected[name]:
                problems.append(f"{name} requests {path}, the service answers on {expected[name]}")
        if not bs.get("healthChecks"):
            problems.append("no health check attached")
        if self.startup_remaining_s() > 0:
            problems.append("services are still starting")
        return problems

    def _compute_operation(self, kind: str, target: dict[str, Any]) -> dict[str, Any]:
        when = self._compute_time()
        name = f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:13]}-{uuid.uuid4().hex[:8]}"
        op = {
            "kind": "compute#operation",
            "id": _num_id("op", name),
            "name": name,
            "operationType": kind,
            "targetLink": target["selfLink"],
            "targetId": target["id"],
            "status": "DONE",
            "user": ACTOR,
            "progress": 100,
            "insertTime": when,
            "startTime": when,
            "endTime": when,
            "selfLink": self._link("operations", name),
        }
        self._operations[("compute", name)] = op
        return copy.deepcopy(op)

    def get_compute_operation(self, project: str, name: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(project)
            op = self._operations.get(("compute", name))
            if op is None:
                raise not_found(f"projects/{project}/global/operations/{name}")
            return copy.deepcopy(op)

    # --- secretmanager v1 ----------------------------------------------------------------------

    def _secret_name(self, sid: str) -> str:
        return f"projects/{self.project_number}/secrets/{sid}"

    def list_secrets(self, project: str) -> list[dict[str, Any]]:
        with self._lock:
            self._check_project(project, numbers=True)
            return copy.deepcopy(list(self._secrets.values()))

    def get_secret(self, project: str, sid: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(project, numbers=True)
            if sid not in self._secrets:
                raise ApiFault(404, "NOT_FOUND", f"Secret [{self._secret_name(sid)}] not found or has no versions.")
            return copy.deepcopy(self._secrets[sid])

    def create_secret(self, project: str, sid: str | None, body: dict[str, Any]) -> dict[str, Any]:
        if not sid or not re.match(r"^[A-Za-z0-9_-]{1,255}$", sid):
            raise bad_request(f"Secret ID must be 1-255 letters, digits, hyphens and underscores, got {sid!r}.")
        replication = body.get("replication")
        if not isinstance(replication, dict) or not ({"automatic", "userManaged"} & set(replication)):
            raise bad_request("Secret.replication must be set (automatic or userManaged).")
        labels = body.get("labels")
        if labels is not None and not (isinstance(labels, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
            raise bad_request("Invalid value for Secret.labels: expected a map of strings.")
        with self._lock:
            self._check_project(project, numbers=True)
            if sid in self._secrets:
                raise ApiFault(409, "ALREADY_EXISTS", f"Secret [{self._secret_name(sid)}] already exists.")
            return copy.deepcopy(self._create_secret(sid, body, labels=body.get("labels")))

    def _create_secret(self, sid: str, body: dict[str, Any], labels: dict[str, str] | None) -> dict[str, Any]:
        secret: dict[str, Any] = {
            "name": self._secret_name(sid),
            "replication": copy.deepcopy(body["replication"]),
            "createTime": self._rfc3339(6),
            "etag": f'"{int(time.time() * 1e6):x}"',
        }
        if labels:
            secret["labels"] = dict(labels)
        self._secrets[sid] = secret
        self._versions[sid] = []
        return secret

    def list_versions(self, project: str, sid: str) -> list[dict[str, Any]]:
        with self._lock:
            self.get_secret(project, sid)
            return copy.deepcopy(sorted(self._versions[sid], key=self._version_number, reverse=True))

    @staticmethod
    def _version_number(v: dict[str, Any]) -> int:
        return int(v["name"].rsplit("/", 1)[-1])

    def get_version(self, project: str, sid: str, version: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._find_version(project, sid, version))

    def _find_version(self, project: str, sid: str, version: str) -> dict[str, Any]:
        self.get_secret(project, sid)
        versions = self._versions[sid]
        if version == "latest":
            if not versions:
                raise ApiFault(404, "NOT_FOUND", f"Secret [{self._secret_name(sid)}] not found or has no versions.")
            return max(versions, key=self._version_number)
        for v in versions:
            if v["name"].rsplit("/", 1)[-1] == version:
                return v
        raise ApiFault(404, "NOT_FOUND", f"Secret Version [{self._secret_name(sid)}/versions/{version}] not found.")

    def add_version(self, project: str, sid: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = body.get("payload")
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, str):
            raise bad_request("SecretPayload.data is required (base64).")
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            raise bad_request("Invalid value at 'payload.data' (TYPE_BYTES), Base64 decoding failed.") from None
        if len(raw) > 65536:
            raise bad_request("Secret payload exceeds the 64 KiB limit.")
        with self._lock:
            self.get_secret(project, sid)
            version = self._add_version(sid, raw, state="ENABLED")
            if isinstance(payload, dict) and "dataCrc32c" in payload:
                version["clientSpecifiedPayloadChecksum"] = True
            return copy.deepcopy(version)

    def _add_version(self, sid: str, raw: bytes, state: str) -> dict[str, Any]:
        number = 1 + max((self._version_number(v) for v in self._versions[sid]), default=0)
        version = {
            "name": f"{self._secret_name(sid)}/versions/{number}",
            "createTime": self._rfc3339(6),
            "state": state,
            "replicationStatus": {"automatic": {}},
            "etag": f'"{int(time.time() * 1e6):x}"',
            "clientSpecifiedPayloadChecksum": False,
        }
        self._versions[sid].append(version)
        self._payloads[(sid, number)] = raw
        return version

    def set_version_state(self, project: str, sid: str, version: str, action: str) -> dict[str, Any]:
        with self._lock:
            v = self._find_version(project, sid, version)
            if v["state"] == "DESTROYED":
                raise ApiFault(400, "FAILED_PRECONDITION", f"Secret Version [{v['name']}] is in DESTROYED state.")
            v["state"] = {"enable": "ENABLED", "disable": "DISABLED", "destroy": "DESTROYED"}[action]
            if action == "destroy":
                v["destroyTime"] = self._rfc3339(6)
                self._payloads.pop((sid, self._version_number(v)), None)
            v["etag"] = f'"{int(time.time() * 1e6):x}"'
            return copy.deepcopy(v)

    def access_version(self, project: str, sid: str, version: str) -> dict[str, Any]:
        """The payload (the real API's ``:access``); only a client that opted in calls it."""
        with self._lock:
            v = self._find_version(project, sid, version)
            if v["state"] != "ENABLED":
                raise ApiFault(400, "FAILED_PRECONDITION", f"Secret Version [{v['name']}] is in {v['state']} state.")
            raw = self._payloads[(sid, self._version_number(v))]
            return {"name": v["name"], "payload": {"data": base64.b64encode(raw).decode(),
                                                   "dataCrc32c": str(_crc32c(raw))}}

    # --- run v2 --------------------------------------------------------------------------------

    def list_services(self, project: str, location: str) -> list[dict[str, Any]]:
        with self._lock:
            self._check_project(project)
            if location not in (self.region, "-"):
                return []
            return copy.deepcopy(list(self._services.values()))

    def get_service(self, project: str, location: str, service: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(project)
            if location != self.region or service not in self._services:
                raise ApiFault(404, "NOT_FOUND",
                               f"Resource 'projects/{project}/locations/{location}/services/{service}' was not found")
            return copy.deepcopy(self._services[service])

    # --- DataPlaneView -------------------------------------------------------------------------

    def blackout(self) -> bool:
        return self.scenario.blackout

    def connector_instances(self) -> int:
        """Instances the connector runs now: the demand, clamped to its autoscaling range."""
        with self._lock:
            c = self._connectors.get(self.connector_name)
            if c is None or c["state"] not in CONNECTOR_ROUTES:
                return 0
            return max(c["minInstances"], min(self.scenario.demand_instances, c["maxInstances"]))

    def proxy_policy(self) -> ProxyPolicy:
        with self._lock:
            if self.scenario.blackout:
                return ProxyPolicy("blackhole", reason="blackout: nothing answers")
            c = self._connectors.get(self.connector_name)
            if c is None:
                return ProxyPolicy("blackhole", reason=f"connector {self.params.connector.name} does not exist")
            if c["state"] not in CONNECTOR_ROUTES:
                return ProxyPolicy("blackhole", reason=f"connector state {c['state']}")
            if c["network"] != self.params.cloudsql.network:
                return ProxyPolicy("blackhole", reason=f"connector on network {c['network']}, "
                                                       f"database on {self.params.cloudsql.network}")
            sql = self._instances.get(self.params.cloudsql.instance)
            if sql is None:
                return ProxyPolicy("reset", reason="Cloud SQL instance does not exist")
            if sql["state"] != "RUNNABLE" or sql["settings"]["activationPolicy"] == "NEVER":
                return ProxyPolicy("reset", reason=f"Cloud SQL state {sql['state']}, "
                                                   f"activationPolicy {sql['settings']['activationPolicy']}")
            if not sql["ipAddresses"]:
                return ProxyPolicy("blackhole", reason="Cloud SQL has no private IP on the VPC")
            demand = self.scenario.demand_instances
            if c["maxInstances"] < demand:
                return ProxyPolicy("delay", delay_s=self.scaled(self.scenario.saturated_delay_s),
                                   max_connections=c["maxInstances"],
                                   reason=f"connector max_instances {c['maxInstances']} < demand {demand}")
            return ProxyPolicy("pass")

    def certificate_for(self, domain: str) -> CertKind:
        with self._lock:
            if self.scenario.blackout:
                return "blackhole"
            self._tick()
            proxy = self._compute["targetHttpsProxies"].get(self.params.load_balancer.https_proxy)
            links = proxy["sslCertificates"] if proxy else []
            expired = False
            for link in links:
                cert = self._compute["sslCertificates"].get(link.rsplit("/", 1)[-1])
                if cert is None:
                    continue
                if cert["type"] == "MANAGED":
                    if cert["managed"]["status"] == "ACTIVE" and any(
                            _covers(n, domain) for n in cert["managed"]["domains"]):
                        return "valid"
                elif any(_covers(n, domain) for n in cert.get("subjectAlternativeNames", [])):
                    if dt.datetime.fromisoformat(cert["expireTime"]) > self._now():
                        return "valid"
                    expired = True
            return "expired" if expired else self.scenario.certificates.fallback

    def ws_lifetime_s(self) -> float | None:
        with self._lock:
            timeouts = [b["timeoutSec"] for b in self._compute["backendServices"].values()]
            return self.scaled(min(timeouts)) if timeouts else None

    def startup_remaining_s(self) -> float:
        elapsed = self._clock() - self._started
        return max(0.0, self.scaled(self.scenario.services.warmup_s) - elapsed)

    def secret_problems(self) -> list[str]:
        with self._lock:
            return [sid for sid in self.params.secrets.required
                    if not any(v["state"] == "ENABLED" for v in self._versions.get(sid, []))]

    def secret_value(self, name: str) -> str | None:
        with self._lock:
            enabled = [v for v in self._versions.get(name, []) if v["state"] == "ENABLED"]
            if not enabled:
                return None
            latest = max(enabled, key=self._version_number)
            return self._payloads[(name, self._version_number(latest))].decode("utf-8", "replace")

    def health_summary(self) -> dict[str, list[str]]:
        """Per backend service, why its health check fails (for logs and the state endpoint)."""
        with self._lock:
            return {n: self._health_problems(b) for n, b in self._compute["backendServices"].items()}


def _crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as Secret Manager reports ``dataCrc32c``."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF
