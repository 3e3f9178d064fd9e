"""Cloud Monitoring (v3, gRPC via google-cloud-monitoring): the time series the checks and plots use.

    monitoring.connector_instances   vpcaccess.googleapis.com/connector/instances (max per minute)
    monitoring.sql_backends          cloudsql.googleapis.com/database/postgresql/num_backends (max)
    monitoring.lb_latency_p50/p95/p99 loadbalancing.googleapis.com/https/total_latencies (percentiles)
    monitoring.run_latency_p95       run.googleapis.com/request_latencies, per service (p95)
    monitoring.startup_latencies     run.googleapis.com/container/startup_latencies, per service (p95, ms)

Each metric is queried on its own, in a worker thread, with the call deadline
``deadlines.monitoring_s`` and no client-side retry, so one failing metric becomes one
``MetricRecord`` with ok=False and an actionable message while the others still arrive.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from runbook_lib import redact
from runbook_lib.evidence import ErrorInfo, MetricRecord, Point, Series
from runbook_lib.params import Params
from runbook_lib.util import clock

ClientFactory = Callable[[Params], Any]

ALIGNMENT_S = 60


@dataclass(frozen=True)
class MetricSpec:
    key: str
    metric_type: str
    resource_type: str
    aligner: str                       # an Aggregation.Aligner name
    labels: dict[str, str] = field(default_factory=dict)  # resource label equalities
    # One query per value of a resource label, merged into one record (plain equalities work with
    # every server; ``one_of`` would need the full filter grammar).
    each: tuple[tuple[str, str], ...] = ()


def specs(params: Params) -> list[MetricSpec]:
    """What to query, with the names from the parameters."""
    proxy = params.load_balancer.https_proxy
    lb = [
        MetricSpec(f"monitoring.lb_latency_p{p}", "loadbalancing.googleapis.com/https/total_latencies",
                   "https_lb_rule", f"ALIGN_PERCENTILE_{p}", labels={"target_proxy_name": proxy})
        for p in (50, 95, 99)
    ]
    return [
        MetricSpec("monitoring.connector_instances", "vpcaccess.googleapis.com/connector/instances",
                   "vpc_access_connector", "ALIGN_MAX", labels={"connector_name": params.connector.name}),
        MetricSpec("monitoring.sql_backends", "cloudsql.googleapis.com/database/postgresql/num_backends",
                   "cloudsql_database", "ALIGN_MAX",
                   labels={"database_id": f"{params.project}:{params.cloudsql.instance}"}),
        *lb,
        MetricSpec("monitoring.run_latency_p95", "run.googleapis.com/request_latencies", "cloud_run_revision",
                   "ALIGN_PERCENTILE_95", labels={"location": params.region},
                   each=tuple(("service_name", s) for s in params.cloud_run.services)),
        # A distribution in ms per revision (Cloud Monitoring's metrics list for run.googleapis.com);
        # aligned to its per-minute p95, read by run.<svc>.startup and golden.startup.
        MetricSpec("monitoring.startup_latencies", "run.googleapis.com/container/startup_latencies",
                   "cloud_run_revision", "ALIGN_PERCENTILE_95", labels={"location": params.region},
                   each=tuple(("service_name", s) for s in params.cloud_run.services)),
    ]


async def gather(params: Params, *, client_factory: ClientFactory | None = None) -> dict[str, MetricRecord]:
    wanted = specs(params)
    if not params.monitoring.enabled:
        return {s.key: _failed(s, "skipped", "monitoring.enabled is false: metrics were not queried") for s in wanted}
    try:
        client = (client_factory or make_client)(params)
    except Exception as exc:  # credentials or transport setup: every metric fails the same way
        kind, message = translate(exc, params)
        return {s.key: _failed(s, kind, message) for s in wanted}
    # Whole seconds (the API drops sub-second precision), rounded up so nothing recorded before
    # this call falls after the window.
    end = clock.utc_now().replace(microsecond=0) + timedelta(seconds=1)
    try:
        answers = await asyncio.gather(*(_query(client, s, params, end) for s in wanted))
    finally:
        _close(client)
    return {rec.key: rec for rec in answers}


def make_client(params: Params):
    """ADC against Google, or an insecure channel to a local server (the sandbox)."""
    from google.cloud import monitoring_v3
    from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

    ep = params.endpoints
    if ep.monitoring_insecure:
        import grpc

        return monitoring_v3.MetricServiceClient(
            transport=MetricServiceGrpcTransport(channel=grpc.insecure_channel(ep.monitoring))
        )
    from google.api_core.client_options import ClientOptions

    options = ClientOptions(api_endpoint=ep.monitoring)
    if ep.credentials == "anonymous":
        from google.auth.credentials import AnonymousCredentials

        return monitoring_v3.MetricServiceClient(credentials=AnonymousCredentials(), client_options=options)
    return monitoring_v3.MetricServiceClient(client_options=options)


async def _query(client, spec: MetricSpec, params: Params, end: datetime) -> MetricRecord:
    deadline = params.deadlines.monitoring_s
    try:
        series = await asyncio.wait_for(
            asyncio.to_thread(_fetch, client, spec, params, end), timeout=deadline + 1.0
        )
    except asyncio.TimeoutError:
        return _failed(spec, "timeout", f"no answer from Cloud Monitoring within {deadline:g} s")
    except Exception as exc:  # translated below into an ERROR record, never into "no data"
        return _failed(spec, *translate(exc, params))
    return MetricRecord(key=spec.key, metric_type=spec.metric_type, ok=True, series=series)


class _Deadlined:
    """What ``Query`` calls, with what is left of our deadline and no retry (it passes neither)."""

    def __init__(self, client, deadline: float):
        self._client, self._deadline = client, deadline

    def list_time_series(self, request):
        from google.api_core import exceptions as gexc

        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise gexc.DeadlineExceeded("the deadline passed between queries")
        return self._client.list_time_series(request, timeout=remaining, retry=None)


def _fetch(client, spec: MetricSpec, params: Params, end: datetime) -> list[Series]:
    from google.cloud.monitoring_v3 import Aggregation
    from google.cloud.monitoring_v3.query import Query

    deadlined = _Deadlined(client, time.monotonic() + params.deadlines.monitoring_s)
    base = Query(deadlined, params.project, spec.metric_type, end_time=end, minutes=params.monitoring.lookback_minutes)
    base = base.align(getattr(Aggregation.Aligner, spec.aligner), seconds=ALIGNMENT_S)
    series: list[Series] = []
    for extra in ([{k: v} for k, v in spec.each] or [{}]):
        query = base.select_resources(resource_type=spec.resource_type, **spec.labels, **extra)
        series += [to_series(ts) for ts in query]
    return series


def to_series(ts) -> Series:
    """A monitoring_v3 ``TimeSeries`` as evidence (points oldest first)."""
    from google.cloud.monitoring_v3 import TypedValue

    labels = {**dict(ts.resource.labels), **dict(ts.metric.labels)}
    points = []
    for p in ts.points:
        pb = TypedValue.pb(p.value)
        kind = pb.WhichOneof("value")
        if kind == "distribution_value":
            value = pb.distribution_value.mean
        elif kind in ("double_value", "int64_value", "bool_value"):
            value = float(getattr(pb, kind))
        else:
            continue
        when = p.interval.end_time
        points.append(Point(t=when if when.tzinfo else when.replace(tzinfo=timezone.utc), v=value))
    points.sort(key=lambda pt: pt.t)
    return Series(metric_type=ts.metric.type, labels=labels, unit=ts.unit or "", points=points)


def translate(exc: BaseException, params: Params) -> tuple[str, str]:
    """gRPC / google-api-core / google-auth errors -> (kind, message a person can act on)."""
    from google.api_core import exceptions as gexc

    p = params.project
    where = params.endpoints.monitoring
    text = str(getattr(exc, "message", "") or exc)
    if isinstance(exc, gexc.PermissionDenied):
        if "SERVICE_DISABLED" in text or "has not been used in project" in text or "is disabled" in text:
            return "api_disabled", ("the Cloud Monitoring API is not enabled in project "
                                    f"{p}: run `gcloud services enable monitoring.googleapis.com --project {p}`")
        return "permission", (f"permission denied reading Cloud Monitoring in project {p}: the caller needs "
                               f"roles/monitoring.viewer (`gcloud projects add-iam-policy-binding {p} "
                               "--member=user:YOU --role=roles/monitoring.viewer`)")
    if isinstance(exc, gexc.Unauthenticated):
        return "unauthenticated", "Cloud Monitoring rejected the credentials: run `gcloud auth application-default login`"
    if isinstance(exc, gexc.DeadlineExceeded):
        return "timeout", f"no answer from Cloud Monitoring ({where}) within {params.deadlines.monitoring_s:g} s"
    if isinstance(exc, gexc.ServiceUnavailable):
        return "network", f"cannot reach Cloud Monitoring at {where}: {redact.text(text)}"
    if isinstance(exc, gexc.ResourceExhausted):
        return "rate_limited", f"Cloud Monitoring quota exhausted for project {p}: wait a minute and re-run"
    if isinstance(exc, gexc.NotFound):
        return "not_found", f"Cloud Monitoring found nothing to query: {redact.text(text)}"
    if isinstance(exc, gexc.InvalidArgument):
        return "bad_request", f"Cloud Monitoring refused the query: {redact.text(text)}"
    if isinstance(exc, gexc.GoogleAPICallError):
        return "server", f"Cloud Monitoring failed: {redact.text(text)}"
    try:
        import google.auth.exceptions as auth_exc

        if isinstance(exc, auth_exc.GoogleAuthError):
            return "unauthenticated", ("no usable Application Default Credentials for Cloud Monitoring "
                                       f"({type(exc).__name__}): run `gcloud auth application-default login`")
    except ImportError:  # pragma: no cover - google-auth is a dependency
        pass
    return "error", redact.text(f"Cloud Monitoring query failed: {type(exc).__name__}: {text}")


def _failed(spec: MetricSpec, kind: str, message: str) -> MetricRecord:
    return MetricRecord(key=spec.key, metric_type=spec.metric_type, ok=False,
                        error=ErrorInfo(kind=kind, message=redact.text(message)))


def _close(client) -> None:
    transport = getattr(client, "transport", None)
    if transport is not None and hasattr(transport, "close"):
        transport.close()
