"""The sandbox, assembled: one asyncio loop running a whole fake staging environment on loopback.

``Sandbox(params, scenario, workdir)`` starts, in order:

1. a local CA, and a real PostgreSQL (TLS, SCRAM) with the probe user (``cloudsql.user``), an
   application role, the database (``cloudsql.database``), the schema and the golden-path user;
2. ``SandboxState`` (the control plane) from the parameters and the scenario;
3. the fault proxy in front of PostgreSQL (the connector's data path, driven by the state);
4. the staging services behind one HTTPS port (the load balancer), reaching the database
   THROUGH the proxy;
5. the REST API emulator, the Cloud Monitoring gRPC server and the metrics sampler.

Then it writes into ``workdir`` (mode 0600): ``db-password``, ``golden-password``,
``secret-values.env`` (the values a person would supply to recreate the secrets) and, last,
``state.json`` (pid, ports, endpoints, scenario, the parameter overrides). No password or secret
value is ever in ``state.json``, a log line or the overrides: only file paths.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import os
import re
import secrets
import shutil
import ssl
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from runbook_lib import redact
from runbook_lib.errors import RunbookError
from runbook_lib.params import Endpoints, Params
from runbook_lib.sandbox.emulator import APIS, Emulator
from runbook_lib.sandbox.faultproxy import FaultProxy
from runbook_lib.sandbox.metrics import BackendsUnavailable, MetricsSampler, MetricStore, Names
from runbook_lib.sandbox.monitoring_grpc import MonitoringServer
from runbook_lib.sandbox.pg_tls import PgTlsFront
from runbook_lib.sandbox.pki import LocalCA
from runbook_lib.sandbox.postgres import SUPERUSER, PostgresServer
from runbook_lib.sandbox.scenario import Scenario
from runbook_lib.sandbox.services import StagingServices, prepare_database
from runbook_lib.sandbox.state import SandboxState, canary_value

log = logging.getLogger(__name__)

APP_ROLE = "staging_app"
STATE_FILE = "state.json"
SECRET_FILES = ("db-password", "golden-password", "secret-values.env")


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` with mode 0600 (atomically: a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


class Sandbox:
    """``info = await start()``; ``await stop()``. ``runtime_overrides()`` points parameters at it."""

    def __init__(self, params: Params, scenario: Scenario, workdir: str | Path, *, time_scale: float | None = None):
        self.params, self.scenario = params, scenario
        self.workdir = Path(workdir).resolve()
        self.time_scale = params.target.time_scale if time_scale is None else time_scale
        self.state: SandboxState | None = None
        self.pg: PostgresServer | None = None
        self.ca: LocalCA | None = None
        self.proxy: FaultProxy | None = None
        self.pg_front: PgTlsFront | None = None
        self.services: StagingServices | None = None
        self.emulator: Emulator | None = None
        self.monitoring: MonitoringServer | None = None
        self.sampler: MetricsSampler | None = None
        self.metrics = MetricStore()
        self.info: dict[str, Any] = {}
        self._stats_conn: psycopg.AsyncConnection[Any] | None = None
        self.db_connects: list[dict[str, Any]] = []  # the services' connects: t, latency_s, outcome
        self._app_password = ""

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Start everything; on any failure, stop what started and raise."""
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> dict[str, Any]:
        p = self.params
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)
        (self.workdir / STATE_FILE).unlink(missing_ok=True)
        probe_password, golden_password = secrets.token_urlsafe(24), secrets.token_urlsafe(18)
        self._app_password = secrets.token_urlsafe(24)
        secret_values = {sid: canary_value(sid) for sid in p.secrets.required}
        for value in (probe_password, golden_password, self._app_password, *secret_values.values()):
            redact.register(value)

        self.ca = LocalCA(self.workdir / "pki")
        self._start_postgres(probe_password)
        await self._prepare_schema(golden_password)

        self.state = SandboxState(p, self.scenario, self.time_scale, secret_values=secret_values)
        cert, key = self.ca.issue("cloudsql", ["127.0.0.1", "localhost", p.cloudsql.instance])
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
        self.pg_front = PgTlsFront(("127.0.0.1", self.pg.port), tls, self._require_ssl)  # type: ignore[union-attr]
        await self.pg_front.start()
        self.proxy = FaultProxy(("127.0.0.1", self.pg_front.port), self.state.proxy_policy)
        await self.proxy.start()
        self.services = StagingServices(
            self.state, ca=self.ca, frontend_domain=p.domains.frontend, api_domain=p.domains.api,
            legacy_names=[self.state.domains["legacy"]], db=self._connect_app,
            required_secrets=list(p.secrets.required), jwt_secret_name=self._jwt_secret_name(),
            events=list(p.golden_path.events), time_scale=self.time_scale,
            db_deadline_s=self._db_deadline_s(),
            # An agent turn takes about 36 s of real time (five events 9 s apart): longer than a
            # 30 s backend timeout, well inside a 600 s one.
            event_spacing_s=9.0,
        )
        https_port = await self.services.start()
        self.emulator = Emulator(self.state, validate_responses=True)
        api_ports = await self.emulator.start()
        self.monitoring = MonitoringServer(self.metrics, p.project, project_number=self.state.project_number,
                                           blackout=self.state.blackout)
        grpc_port = await self.monitoring.start()
        self.sampler = MetricsSampler(
            self.metrics,
            Names(project=p.project, region=p.region, connector=p.connector.name, sql_instance=p.cloudsql.instance,
                  https_proxy=p.load_balancer.https_proxy, backend_services=p.load_balancer.backend_services,
                  run_services=p.cloud_run.services, frontend_domain=p.domains.frontend),
            connector_instances=self.state.connector_instances, num_backends=self._num_backends,
            request_log=lambda: self.services.request_log if self.services else [],
            db_connects=lambda: self.db_connects, database=p.cloudsql.database,
            startup_latencies=self.state.startup_latencies,
        )
        await self.sampler.sample_once()  # a first point before anyone can query: no empty series race
        self.sampler.start()

        files = {
            "db-password": write_private(self.workdir / "db-password", probe_password + "\n"),
            "golden-password": write_private(self.workdir / "golden-password", golden_password + "\n"),
            "secret-values.env": write_private(
                self.workdir / "secret-values.env",
                "".join(f"{k}={v}\n" for k, v in secret_values.items())),
        }
        self.info = {
            "pid": os.getpid(),
            "scenario": self.scenario.name,
            "time_scale": self.time_scale,
            "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "workdir": str(self.workdir),
            "ports": {**api_ports, "monitoring": grpc_port, "https": https_port,
                      "postgres_proxy": self.proxy.port, "postgres": self.pg.port},  # type: ignore[union-attr]
            "endpoints": {**{api: f"http://127.0.0.1:{port}" for api, port in api_ports.items()},
                          "monitoring": f"127.0.0.1:{grpc_port}", "https": f"127.0.0.1:{https_port}",
                          "postgres": f"127.0.0.1:{self.proxy.port}"},
            "ca_bundle": str(self.ca.ca_cert_path),
            "files": {k: str(v) for k, v in files.items()},
        }
        self.info["overrides"] = self.runtime_overrides()
        write_private(self.workdir / STATE_FILE, json.dumps(self.info, indent=2) + "\n")
        log.info("sandbox ready: scenario %s, time scale %g, emulator %s, monitoring %s, https %s, database %s",
                 self.scenario.name, self.time_scale, api_ports, grpc_port, https_port, self.proxy.port)
        return dict(self.info)

    async def stop(self) -> None:
        """Stop in reverse order; every step runs even if an earlier one failed."""
        steps: list[tuple[str, Any]] = [
            ("metrics", self.sampler.stop() if self.sampler else None),
            ("monitoring", self.monitoring.stop() if self.monitoring else None),
            ("emulator", self.emulator.stop() if self.emulator else None),
            ("services", self.services.stop() if self.services else None),
            ("proxy", self.proxy.stop() if self.proxy else None),
            ("postgres front", self.pg_front.stop() if self.pg_front else None),
            ("stats", self._stats_conn.close() if self._stats_conn else None),
        ]
        for name, coro in steps:
            if coro is None:
                continue
            try:
                await asyncio.wait_for(coro, 10)
            except (Exception, asyncio.TimeoutError) as exc:  # noqa: BLE001 - keep stopping the rest
                log.warning("stopping %s failed: %s", name, redact.text(str(exc)))
        self.sampler = self.monitoring = self.emulator = self.services = self.proxy = self.pg_front = None
        self._stats_conn = None
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
        for name in (STATE_FILE, *SECRET_FILES):
            (self.workdir / name).unlink(missing_ok=True)
        for folder in ("pki", "pg"):  # the CA key and the (already deleted) database's parent
            shutil.rmtree(self.workdir / folder, ignore_errors=True)

    # --- parameters that target this sandbox ---------------------------------------------------

    def runtime_overrides(self) -> dict[str, Any]:
        """Dotted parameter overrides (ports and file paths only, never a secret)."""
        if not self.info:
            raise RunbookError("the sandbox is not started: no overrides yet")
        ports, files, p = self.info["ports"], self.info["files"], self.params
        https = f"127.0.0.1:{ports['https']}"
        return {
            "target.mode": "sandbox",
            "target.scenario": self.scenario.name,
            "target.time_scale": self.time_scale,
            # endpoints.networkmanagement only once the parameters know it (added with the runbook side)
            **{f"endpoints.{api}": f"http://127.0.0.1:{ports[api]}" for api in APIS if api in Endpoints.model_fields},
            "endpoints.monitoring": f"127.0.0.1:{ports['monitoring']}",
            "endpoints.monitoring_insecure": True,
            "endpoints.credentials": "anonymous",
            "network.connect_to": {f"{p.domains.frontend}:443": https, f"{p.domains.api}:443": https},
            "network.ca_bundle": self.info["ca_bundle"],
            "cloudsql.host": "127.0.0.1",
            "cloudsql.port": ports["postgres_proxy"],
            "cloudsql.password_env": None,
            "cloudsql.password_file": files["db-password"],
            "golden_path.password_env": None,
            "golden_path.password_file": files["golden-password"],
            "remediation.secret_values.file": files["secret-values.env"],
        }

    # --- database --------------------------------------------------------------------------------

    def _start_postgres(self, probe_password: str) -> None:
        """Blocking on purpose: the server must be forked by the thread that outlives it."""
        assert self.ca is not None
        # No TLS in the server itself: the wheel's PostgreSQL has no OpenSSL. The TLS front
        # (pg_tls.py) negotiates it the PostgreSQL way, whatever server is installed.
        self.pg = PostgresServer(self.workdir / "pg", max_connections=100)
        self.pg.start()
        probe_user, database = self.params.cloudsql.user, self.params.cloudsql.database
        if probe_user == APP_ROLE:
            raise RunbookError(f"cloudsql.user: {APP_ROLE} is the sandbox's application role; choose another user")
        if probe_user == SUPERUSER:
            self.pg.set_password(SUPERUSER, probe_password)
        else:
            self.pg.create_role(probe_user, probe_password)
        self.pg.create_role(APP_ROLE, self._app_password)
        if database == "postgres":
            self.pg.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(APP_ROLE)))
        else:
            self.pg.create_database(database, owner=APP_ROLE)

    async def _prepare_schema(self, golden_password: str) -> None:
        """Tables and the golden user, straight to the server (the scenario may block the proxy)."""
        assert self.pg is not None
        kwargs = self.pg.connect_kwargs(user=APP_ROLE, dbname=self.params.cloudsql.database)
        async with await psycopg.AsyncConnection.connect(**kwargs, password=self._app_password,
                                                         connect_timeout=10) as conn:
            await prepare_database(conn, self.params.golden_path.user, golden_password)

    def _require_ssl(self) -> bool:
        """Whether the instance refuses plaintext now (the API's ipConfiguration decides)."""
        assert self.state is not None
        ip = self.state.get_instance(self.params.project, self.params.cloudsql.instance)["settings"].get("ipConfiguration", {})
        return ip.get("sslMode", "ENCRYPTED_ONLY" if ip.get("requireSsl") else "") in ("ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED")

    def _db_deadline_s(self) -> float:
        # A little over the database threshold: slow is seen as slow, and the service still answers
        # (504 with the reason) before a client's probe deadline.
        return 1.2 * self.time_scale * self.params.thresholds.db_connect_s

    async def _connect_app(self) -> psycopg.AsyncConnection[Any]:
        """How the services reach the database: through the connector's data path (timed)."""
        assert self.proxy is not None
        started, outcome = time.monotonic(), "error"
        try:
            conn = await psycopg.AsyncConnection.connect(
                host="127.0.0.1", port=self.proxy.port, user=APP_ROLE, password=self._app_password,
                dbname=self.params.cloudsql.database, sslmode="require",
                connect_timeout=max(2, math.ceil(self._db_deadline_s())))  # libpq's floor is 2 s
            outcome = "ok"
            return conn
        except asyncio.CancelledError:
            outcome = "timeout"  # the caller's deadline passed first
            raise
        finally:
            self.db_connects.append({"t": time.time(), "latency_s": time.monotonic() - started, "outcome": outcome})
            del self.db_connects[:-10000]

    async def _num_backends(self) -> int:
        """Client connections to the database now, as Cloud SQL's num_backends counts them."""
        assert self.state is not None and self.pg is not None
        sql_state = self.state.get_instance(self.params.project, self.params.cloudsql.instance)["state"]
        if sql_state != "RUNNABLE":
            raise BackendsUnavailable(f"instance is {sql_state}: Cloud SQL reports no backends")
        try:
            if self._stats_conn is None or self._stats_conn.closed:
                self._stats_conn = await psycopg.AsyncConnection.connect(
                    host=str(self.pg.socket_dir), port=self.pg.port, user=SUPERUSER, dbname="postgres",
                    autocommit=True, connect_timeout=2)
            cur = await self._stats_conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
                " AND pid <> pg_backend_pid()", (self.params.cloudsql.database,))
            row = await cur.fetchone()
        except (psycopg.Error, OSError) as exc:
            self._stats_conn = None
            raise BackendsUnavailable(f"pg_stat_activity unavailable: {type(exc).__name__}") from None
        return int(row[0]) if row else 0

    def _jwt_secret_name(self) -> str:
        required = self.params.secrets.required
        return next((s for s in required if re.search(r"jwt", s)), required[0])
