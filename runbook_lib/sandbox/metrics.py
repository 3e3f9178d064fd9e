"""Metric series the sandbox measures, for its Cloud Monitoring endpoint.

Nothing here is invented: every point comes from what the sandbox saw. ``MetricsSampler`` runs
every ``interval_s`` (0.5 s) and records:

| metric type | kind, value | from |
|---|---|---|
| ``vpcaccess.googleapis.com/connector/instances`` | GAUGE INT64 | the connector's state: demand clamped to min..max |
| ``cloudsql.googleapis.com/database/postgresql/num_backends`` | GAUGE INT64 | ``pg_stat_activity`` of the real server |
| ``loadbalancing.googleapis.com/https/total_latencies`` | DELTA DISTRIBUTION ms | the services' request log |
| ``run.googleapis.com/request_latencies`` | DELTA DISTRIBUTION ms | the services' request log |
| ``workload.googleapis.com/db.client.connections.create_time`` | DELTA DISTRIBUTION ms | the services' own database connects (through the connector) |
| ``run.googleapis.com/container/startup_latencies`` | DELTA DISTRIBUTION ms | the serving revision's startup time (scenario knob, CPU boost on/off; time-scaled like every wire measurement) |

The last one is what an application instrumented with OpenTelemetry (semantic convention
``db.client.connections.create_time``) publishes from Cloud Run; no Google service measures it.

A stopped database reports no ``num_backends`` points (as Cloud SQL does), not zeros.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal, Sequence

from runbook_lib.errors import RunbookError

log = logging.getLogger(__name__)

CONNECTOR_INSTANCES = "vpcaccess.googleapis.com/connector/instances"
SQL_BACKENDS = "cloudsql.googleapis.com/database/postgresql/num_backends"
LB_LATENCIES = "loadbalancing.googleapis.com/https/total_latencies"
RUN_LATENCIES = "run.googleapis.com/request_latencies"
DB_CONNECT = "workload.googleapis.com/db.client.connections.create_time"
STARTUP_LATENCIES = "run.googleapis.com/container/startup_latencies"

Kind = Literal["GAUGE", "DELTA"]
ValueType = Literal["INT64", "DOUBLE", "DISTRIBUTION"]
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SeriesKey:
    metric_type: str
    resource_type: str
    resource_labels: Labels
    metric_labels: Labels


@dataclass
class Point:
    start: float          # epoch seconds (== end for a gauge)
    end: float
    value: float | list[float]  # a number, or the raw samples of a distribution (ms)


@dataclass
class Series:
    key: SeriesKey
    kind: Kind
    value_type: ValueType
    unit: str
    points: deque[Point] = field(default_factory=lambda: deque(maxlen=20000))


class MetricStore:
    """Series in memory; ``record`` from the sampler, ``snapshot`` from the gRPC handler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, Series] = {}

    def record(self, metric_type: str, resource_type: str, resource_labels: dict[str, str],
               metric_labels: dict[str, str], *, kind: Kind, value_type: ValueType, unit: str,
               start: float, end: float, value: float | list[float]) -> None:
        key = SeriesKey(metric_type, resource_type, tuple(sorted(resource_labels.items())),
                        tuple(sorted(metric_labels.items())))
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = Series(key, kind, value_type, unit)
            series.points.append(Point(start, end, value))

    def snapshot(self, metric_type: str | None = None) -> list[Series]:
        with self._lock:
            return [Series(s.key, s.kind, s.value_type, s.unit, deque(s.points))
                    for s in self._series.values() if metric_type in (None, s.key.metric_type)]


class BackendsUnavailable(RunbookError):
    """The database could not be asked for its backends (down, stopped): no point this time."""


@dataclass
class Names:
    """The resource labels the series carry (all from the parameters)."""

    project: str
    region: str
    connector: str
    sql_instance: str
    https_proxy: str
    backend_services: Sequence[str]
    run_services: Sequence[str]
    frontend_domain: str


class MetricsSampler:
    """Samples the sandbox every ``interval_s`` into a ``MetricStore``; ``start()`` / ``stop()``."""

    def __init__(
        self,
        store: MetricStore,
        names: Names,
        *,
        connector_instances: Callable[[], int],
        num_backends: Callable[[], Awaitable[int]] | None = None,
        request_log: Callable[[], list[dict[str, Any]]] | None = None,
        db_connects: Callable[[], list[dict[str, Any]]] | None = None,
        database: str = "",
        startup_latencies: Callable[[], dict[str, tuple[str, float]]] | None = None,
        interval_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ):
        self.store, self.names = store, names
        self._instances = connector_instances
        self._backends = num_backends
        self._request_log = request_log
        self._db_connects = db_connects
        self._database = database
        self._startup = startup_latencies
        self.interval_s = interval_s
        self._clock = clock
        self._last = clock()
        self._seen: dict[str, float] = {}  # per log: time of the newest entry already sampled
        self._task: asyncio.Task[None] | None = None
        self._backend_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sample_once()
            except Exception:  # noqa: BLE001 - keep sampling; a gap in the series is logged, not silent
                log.exception("metrics sample failed")
            await asyncio.sleep(self.interval_s)

    async def sample_once(self) -> None:
        now = self._clock()
        start, self._last = self._last, now
        n = self.names
        self.store.record(
            CONNECTOR_INSTANCES, "vpc_access_connector",
            {"project_id": n.project, "location": n.region, "connector_name": n.connector}, {},
            kind="GAUGE", value_type="INT64", unit="1", start=now, end=now, value=self._instances())
        if self._backends is not None:
            await self._sample_backends(now)
        if self._request_log is not None:
            self._sample_requests(start, now)
        if self._db_connects is not None:
            self._sample_connects(start, now)
        if self._startup is not None:
            self._sample_startup(start, now)

    def _sample_startup(self, start: float, now: float) -> None:
        """One container start per service per sample: the serving revision's startup time."""
        n = self.names
        for service, (revision, seconds) in self._startup().items():  # type: ignore[misc]
            self.store.record(
                STARTUP_LATENCIES, "cloud_run_revision",
                {"project_id": n.project, "location": n.region, "service_name": service,
                 "revision_name": revision, "configuration_name": service},
                {}, kind="DELTA", value_type="DISTRIBUTION", unit="ms", start=start, end=now,
                value=[seconds * 1000.0])

    async def _sample_backends(self, now: float) -> None:
        n = self.names
        try:
            count = await self._backends()  # type: ignore[misc]
        except BackendsUnavailable as exc:  # a database that is down has no points, as in Cloud SQL
            message = str(exc).splitlines()[0] if str(exc) else "unavailable"
            if message != self._backend_error:
                log.warning("num_backends not sampled: %s", message)
                self._backend_error = message
            return
        self._backend_error = None
        self.store.record(
            SQL_BACKENDS, "cloudsql_database",
            {"project_id": n.project, "database_id": f"{n.project}:{n.sql_instance}", "region": n.region},
            {}, kind="GAUGE", value_type="INT64", unit="1", start=now, end=now, value=count)

    def _new_entries(self, log_name: str, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Entries newer than the last sample (logs are appended in time order, and may be trimmed)."""
        last = self._seen.get(log_name, float("-inf"))
        i = len(entries)
        while i > 0 and float(entries[i - 1]["t"]) > last:
            i -= 1
        new = list(entries[i:])
        if new:
            self._seen[log_name] = float(new[-1]["t"])
        return new

    def _sample_requests(self, start: float, now: float) -> None:
        new = self._new_entries("requests", self._request_log())  # type: ignore[misc]
        lb: dict[tuple[str, str], list[float]] = {}
        run: dict[tuple[str, str], list[float]] = {}
        for e in new:
            if e.get("status") in (None, 101):  # WebSocket upgrades are not request latencies
                continue
            ms = float(e.get("latency_s", 0.0)) * 1000.0
            klass = f"{int(e['status']) // 100 * 100}"
            backend, service = self._route(str(e.get("domain", "")), str(e.get("path", "")))
            lb.setdefault((backend, klass), []).append(ms)
            run.setdefault((service, klass), []).append(ms)
        n = self.names
        for (backend, klass), samples in lb.items():
            self.store.record(
                LB_LATENCIES, "https_lb_rule",
                {"project_id": n.project, "region": "global", "url_map_name": "staging-url-map",
                 "forwarding_rule_name": f"{n.https_proxy}-forwarding-rule", "target_proxy_name": n.https_proxy,
                 "backend_target_name": backend, "backend_type": "INSTANCE_GROUP", "matched_url_path_rule": "/"},
                {"response_code_class": klass, "protocol": "HTTP/1.1"},
                kind="DELTA", value_type="DISTRIBUTION", unit="ms", start=start, end=now, value=samples)
        for (service, klass), samples in run.items():
            self.store.record(
                RUN_LATENCIES, "cloud_run_revision",
                {"project_id": n.project, "location": n.region, "service_name": service,
                 "revision_name": f"{service}-00042-abc", "configuration_name": service},
                {"response_code_class": f"{klass[0]}xx", "route": ""},
                kind="DELTA", value_type="DISTRIBUTION", unit="ms", start=start, end=now, value=samples)

    def _sample_connects(self, start: float, now: float) -> None:
        """Database connect times as the services saw them (``outcome``: ok, error, timeout)."""
        new = self._new_entries("connects", self._db_connects())  # type: ignore[misc]
        by_outcome: dict[str, list[float]] = {}
        for e in new:
            by_outcome.setdefault(str(e["outcome"]), []).append(float(e["latency_s"]) * 1000.0)
        n = self.names
        service = n.run_services[0]
        for outcome, samples in by_outcome.items():
            self.store.record(
                DB_CONNECT, "cloud_run_revision",
                {"project_id": n.project, "location": n.region, "service_name": service,
                 "revision_name": f"{service}-00042-abc", "configuration_name": service},
                {"pool_name": self._database, "outcome": outcome},
                kind="DELTA", value_type="DISTRIBUTION", unit="ms", start=start, end=now, value=samples)

    def _route(self, domain: str, path: str) -> tuple[str, str]:
        """Which backend service and Cloud Run service answered a request (the URL map)."""
        n = self.names
        backends, services = list(n.backend_services), list(n.run_services)
        if path.startswith("/auth"):
            return backends[min(1, len(backends) - 1)], services[min(1, len(services) - 1)]
        if domain == n.frontend_domain and not path.startswith(("/api", "/ws", "/health")) and len(services) > 2:
            return backends[0], services[-1]
        return backends[0], services[0]
