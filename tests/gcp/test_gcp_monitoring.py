"""monitoring.gather against a tiny local gRPC server (generic handler, canned ListTimeSeries answers)."""
from __future__ import annotations

import asyncio
import threading
from concurrent import futures
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from google.cloud.monitoring_v3 import (
    ListTimeSeriesRequest,
    ListTimeSeriesResponse,
    Point,
    TimeInterval,
    TimeSeries,
    TypedValue,
)

from runbook_lib.gcp import metrics, monitoring
from tests.gcp.gcp_testkit import make_params

pytestmark = pytest.mark.timeout(60)

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0)


PARAMS_SERVICES = ["netra-backend-staging", "auth-staging", "netra-frontend-staging"]


def series(metric_type: str, values: list[float], *, resource: dict, metric: dict | None = None, integer=False):
    points = [Point(interval=TimeInterval(end_time=NOW - timedelta(minutes=i)),
                    value=TypedValue(int64_value=int(v)) if integer else TypedValue(double_value=v))
              for i, v in enumerate(values)]  # newest first, as the API answers
    return TimeSeries(metric={"type": metric_type, "labels": metric or {}},
                      resource={"type": "x", "labels": resource}, points=points, unit="1")


class FakeMonitoring:
    """ListTimeSeries by metric type: series, a gRPC error, or silence until released."""

    def __init__(self):
        self.requests: list[ListTimeSeriesRequest] = []
        self.release = threading.Event()
        self.run_answers = False  # by default the run latency query never answers in time

    def list_time_series(self, request: ListTimeSeriesRequest, context: grpc.ServicerContext):
        self.requests.append(request)
        f = request.filter
        if "connector/instances" in f:
            return ListTimeSeriesResponse(time_series=[series(
                "vpcaccess.googleapis.com/connector/instances", [3, 3, 2], integer=True,
                resource={"connector_name": "staging-connector", "location": "us-central1"})])
        if "num_backends" in f:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "Permission monitoring.timeSeries.list denied")
        if "total_latencies" in f:
            return ListTimeSeriesResponse(time_series=[series(
                "loadbalancing.googleapis.com/https/total_latencies", [120.0, 80.5],
                resource={"target_proxy_name": "staging-https-proxy"}, metric={"response_code_class": "200"})])
        if "startup_latencies" in f:  # p95-aligned distribution: doubles, in ms
            service = f.split('service_name = "')[1].split('"')[0]
            ts = series("run.googleapis.com/container/startup_latencies", [4200.0, 3900.0],
                        resource={"service_name": service, "revision_name": f"{service}-00001-abc"})
            ts.unit = "ms"
            return ListTimeSeriesResponse(time_series=[ts])
        if self.run_answers:
            service = f.split('service_name = "')[1].split('"')[0]
            return ListTimeSeriesResponse(time_series=[series(
                "run.googleapis.com/request_latencies", [250.0], resource={"service_name": service})])
        self.release.wait(10)
        return ListTimeSeriesResponse()


@pytest.fixture
def server():
    fake = FakeMonitoring()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    handler = grpc.unary_unary_rpc_method_handler(
        fake.list_time_series, request_deserializer=ListTimeSeriesRequest.deserialize,
        response_serializer=ListTimeSeriesResponse.serialize)
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "google.monitoring.v3.MetricService", {"ListTimeSeries": handler}),))
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    try:
        yield fake, port
    finally:
        fake.release.set()
        srv.stop(grace=None).wait(5)


def params_for(port: int, **more):
    return make_params(**{"endpoints.monitoring": f"127.0.0.1:{port}", "endpoints.monitoring_insecure": True,
                          "deadlines.monitoring_s": 1.0, **more})


def test_each_metric_independently(server):
    fake, port = server
    records = asyncio.run(monitoring.gather(params_for(port)))
    assert sorted(records) == sorted(["monitoring.connector_instances", "monitoring.sql_backends",
                                      "monitoring.lb_latency_p50", "monitoring.lb_latency_p95",
                                      "monitoring.lb_latency_p99", "monitoring.run_latency_p95",
                                      "monitoring.startup_latencies"])
    startup = records["monitoring.startup_latencies"]
    assert startup.ok and sorted(s.labels["service_name"] for s in startup.series) == sorted(PARAMS_SERVICES)
    assert {s.unit for s in startup.series} == {"ms"} and [p.v for p in startup.series[0].points] == [3900.0, 4200.0]
    assert {r.aggregation.per_series_aligner.name for r in fake.requests if "startup_latencies" in r.filter} == {
        "ALIGN_PERCENTILE_95"}
    conn = records["monitoring.connector_instances"]
    assert conn.ok and [p.v for p in conn.series[0].points] == [2.0, 3.0, 3.0]  # oldest first
    assert conn.series[0].labels["connector_name"] == "staging-connector"
    assert metrics.latest_total(conn)[0] == 3.0 and metrics.peak(conn)[0] == 3.0

    sql = records["monitoring.sql_backends"]
    assert not sql.ok and sql.error.kind == "permission" and "roles/monitoring.viewer" in sql.error.message

    run_p95 = records["monitoring.run_latency_p95"]
    assert not run_p95.ok and run_p95.error.kind == "timeout"
    assert records["monitoring.lb_latency_p95"].ok

    by_type = {r.filter.split('"')[1]: r for r in fake.requests}
    conn_req = by_type["vpcaccess.googleapis.com/connector/instances"]
    assert 'resource.label.connector_name = "staging-connector"' in conn_req.filter
    assert 'resource.type = "vpc_access_connector"' in conn_req.filter
    assert conn_req.name == "projects/netra-staging"
    assert conn_req.aggregation.per_series_aligner.name == "ALIGN_MAX"
    sql_req = by_type["cloudsql.googleapis.com/database/postgresql/num_backends"]
    assert 'resource.label.database_id = "netra-staging:netra-staging-db"' in sql_req.filter
    aligners = sorted(r.aggregation.per_series_aligner.name for r in fake.requests if "total_latencies" in r.filter)
    assert aligners == ["ALIGN_PERCENTILE_50", "ALIGN_PERCENTILE_95", "ALIGN_PERCENTILE_99"]
    run_req = by_type["run.googleapis.com/request_latencies"]
    assert 'resource.label.service_name = "netra-backend-staging"' in run_req.filter
    span = run_req.interval.end_time - run_req.interval.start_time
    assert span == timedelta(minutes=60)


def test_run_latency_is_one_query_per_service_merged(server):
    fake, port = server
    fake.run_answers = True
    rec = asyncio.run(monitoring.gather(params_for(port)))["monitoring.run_latency_p95"]
    assert rec.ok and sorted(s.labels["service_name"] for s in rec.series) == [
        "auth-staging", "netra-backend-staging", "netra-frontend-staging"]


def test_disabled_monitoring_skips_everything():
    records = asyncio.run(monitoring.gather(make_params(**{"monitoring.enabled": False})))
    assert records and all(not r.ok and r.error.kind == "skipped" for r in records.values())


def test_unreachable_server_is_an_error_per_metric():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    records = asyncio.run(monitoring.gather(params_for(port)))
    assert all(not r.ok and r.error.kind in ("network", "timeout") for r in records.values())


def test_client_factory_failure_is_recorded_not_raised():
    def broken(params):
        import google.auth.exceptions

        raise google.auth.exceptions.DefaultCredentialsError("no ADC")

    records = asyncio.run(monitoring.gather(make_params(), client_factory=broken))
    assert all(r.error.kind == "unauthenticated" for r in records.values())
    assert "gcloud auth application-default login" in records["monitoring.sql_backends"].error.message
