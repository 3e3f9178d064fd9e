"""The sandbox's control plane: GCP resources as the real APIs return them, and what they mean.

``SandboxState`` is built from the parameters (every name) and a scenario (every fault). It is a
thin facade over one module per product, mirroring ``runbook_lib/gcp/``:

    vpcaccess.py  sqladmin.py  compute.py  secretmanager.py  run.py  networkmanagement.py
    operations.py (the three operation shapes)   common.py (errors, names, time, paging)

Each product module keeps its resources as the real API's JSON, applies mutations with the real
API's rules and declares its methods once (``HANDLERS``: discovery method id -> handler), which
the emulator's discovery router dispatches to. The facade implements ``DataPlaneView`` so the data
plane behaves as the resources say: a saturated connector delays the database, a stopped instance
resets connections, a certificate not on the proxy means a hostname mismatch, the serving Cloud
Run revision's timeout cuts WebSockets. PATCH the resource, wait for its operation, and the wire
heals.

Thread-safe: one lock around every read and mutation; time-dependent resources (operations,
managed certificates) advance on read from the injected clock.
"""
from __future__ import annotations

import copy
import datetime as dt
import time
from typing import Any, Callable

from runbook_lib.params import Params
from runbook_lib.sandbox.dataplane_view import CertKind, ProxyPolicy
from runbook_lib.sandbox.scenario import Scenario
from runbook_lib.sandbox.state.common import SQL_PRIVATE_IP, ApiFault, Call, bad_request, covers, last, not_found
from runbook_lib.sandbox.state.compute import Compute
from runbook_lib.sandbox.state.networkmanagement import NetworkManagement
from runbook_lib.sandbox.state.operations import Operations
from runbook_lib.sandbox.state.run import Run
from runbook_lib.sandbox.state.secretmanager import SecretManager, canary_value
from runbook_lib.sandbox.state.sqladmin import SqlAdmin
from runbook_lib.sandbox.state.vpcaccess import CONNECTOR_ROUTES, VpcAccess

__all__ = ["SandboxState", "ApiFault", "Call", "canary_value", "bad_request", "not_found", "SQL_PRIVATE_IP"]


class SandboxState(VpcAccess, SqlAdmin, Compute, SecretManager, Run, NetworkManagement):
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
        self._init_base(params, scenario, time_scale, clock, wall)
        ops = scenario.operations
        self.ops = Operations(clock, self._rfc3339, self._compute_time, self.scaled(ops.duration_s), ops.fail)
        values = dict(secret_values or {})
        for sid in params.secrets.required:
            values.setdefault(sid, canary_value(sid))
        self._build_connector()
        self._build_instance()
        self._build_load_balancer()
        self._build_secrets(values)
        self._build_services()
        self._build_network_management()

    def handlers(self) -> dict[str, Callable[[Call], dict[str, Any]]]:
        """Discovery method id -> handler, collected from every product module's ``HANDLERS``."""
        out: dict[str, Callable[[Call], dict[str, Any]]] = {}
        for cls in type(self).__mro__:
            for method_id, fn in cls.__dict__.get("HANDLERS", {}).items():
                out.setdefault(method_id, (lambda f: lambda call: f(self, call))(fn))
        return out

    def tick(self) -> None:
        with self._lock:
            self.ops.tick()
            self._tick_certificates()

    def snapshot(self) -> dict[str, Any]:
        """Every resource as the APIs would return it (never a secret payload)."""
        with self._lock:
            self.tick()
            return copy.deepcopy({
                "connectors": list(self._connectors.values()),
                "instances": list(self._instances.values()),
                **{k: list(v.values()) for k, v in self._compute.items()},
                "networkEndpointGroups": list(self._negs.values()),
                "secrets": list(self._secrets.values()),
                "versions": {k: v for k, v in self._versions.items()},
                "services": list(self._services.values()),
                "revisions": {k: list(v.values()) for k, v in self._revisions.items()},
                "connectivityTests": list(self._tests.values()),
                "dns": dict(self.dns),
                "operations": {api: self.ops.listing(api) for api in
                               ("compute", "sqladmin", "vpcaccess", "run", "networkmanagement")},
            })

    # --- DataPlaneView -------------------------------------------------------------------------

    def blackout(self) -> bool:
        return self.scenario.blackout

    def connector_instances(self) -> int:
        """Instances the connector runs now: the demand, clamped to its autoscaling range."""
        with self._lock:
            self.tick()
            c = self._connectors.get(self.connector_name)
            if c is None or c["state"] not in CONNECTOR_ROUTES:
                return 0
            return max(c["minInstances"], min(self.scenario.demand_instances, c["maxInstances"]))

    def proxy_policy(self) -> ProxyPolicy:
        with self._lock:
            self.tick()
            if self.scenario.blackout:
                return ProxyPolicy("blackhole", reason="blackout: nothing answers")
            c = self._connectors.get(self.connector_name)
            if c is None:
                return ProxyPolicy("blackhole", reason=f"connector {self.params.connector.name} does not exist")
            if c["state"] not in CONNECTOR_ROUTES:
                return ProxyPolicy("blackhole", reason=f"connector state {c['state']}")
            if last(c["network"]) != last(self.params.cloudsql.network):
                return ProxyPolicy("blackhole", reason=f"connector on network {c['network']}, "
                                                       f"database on {self.params.cloudsql.network}")
            sql = self._instances.get(self.params.cloudsql.instance)
            if sql is None:
                return ProxyPolicy("reset", reason="Cloud SQL instance does not exist")
            if not self.sql_running():
                return ProxyPolicy("reset", reason=f"Cloud SQL state {sql['state']}, "
                                                   f"activationPolicy {sql['settings'].get('activationPolicy')}")
            if not sql.get("ipAddresses"):
                return ProxyPolicy("blackhole", reason="Cloud SQL has no private IP on the VPC")
            demand = self.scenario.demand_instances
            if c["maxInstances"] < demand:
                return ProxyPolicy("delay", delay_s=self.scaled(self.scenario.saturated_delay_s),
                                   max_connections=c["maxInstances"],
                                   reason=f"connector max_instances {c['maxInstances']} < demand {demand}")
            return ProxyPolicy("pass")

    def certificate_for(self, domain: str) -> CertKind:
        """Per SNI: the first ACTIVE managed or valid self-managed cert on the proxy that covers it."""
        with self._lock:
            if self.scenario.blackout:
                return "blackhole"
            self.tick()
            proxy = self._compute["targetHttpsProxies"].get(self.params.load_balancer.https_proxy)
            links = proxy["sslCertificates"] if proxy else []
            expired = False
            for link in links:
                cert = self._compute["sslCertificates"].get(last(link))
                if cert is None:
                    continue
                if cert["type"] == "MANAGED":
                    if cert["managed"]["status"] == "ACTIVE" and any(
                            covers(n, domain) for n in cert["managed"]["domains"]):
                        return "valid"
                elif any(covers(n, domain) for n in cert.get("subjectAlternativeNames", [])):
                    if dt.datetime.fromisoformat(cert["expireTime"]) > self._now():
                        return "valid"
                    expired = True
            return "expired" if expired else self.scenario.certificates.fallback

    def ws_lifetime_s(self) -> float | None:
        """Serverless NEGs: the serving Cloud Run revision's timeout; instance groups: the backend timeout."""
        with self._lock:
            self.tick()
            if self.serverless:
                timeouts = []
                for svc in self._serving_services():
                    rev = self.serving_revision(svc)
                    if rev is not None:
                        timeouts.append(float(rev.get("timeout", "300s")[:-1]))
            else:
                timeouts = [b["timeoutSec"] for b in self._compute["backendServices"].values() if "timeoutSec" in b]
            return self.scaled(min(timeouts)) if timeouts else None

    def _serving_services(self) -> list[str]:
        """Cloud Run services behind the load balancer's serverless NEGs."""
        out = []
        for bs in self._compute["backendServices"].values():
            for b in bs.get("backends", []):
                neg = self._negs.get(last(b.get("group")))
                if neg and "cloudRun" in neg:
                    out.append(neg["cloudRun"]["service"])
        return out

    def startup_latencies(self) -> dict[str, tuple[str, float]]:
        """Per Cloud Run service: (serving revision id, its startup time, time-scaled like the wire)."""
        with self._lock:
            self.tick()
            out = {}
            for svc in self._services:
                rev = self.serving_revision(svc)
                if rev is not None:
                    out[svc] = (last(rev["name"]), self.scaled(self.startup_time_s(rev)))
            return out

    def startup_remaining_s(self) -> float:
        """Scenario warm-up, or the cold start of a new revision deployed without min instances."""
        with self._lock:
            self.tick()
            elapsed = self._clock() - self._started
            return max(0.0, self.scaled(self.scenario.services.warmup_s) - elapsed, self.cold_start_remaining_s())

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
