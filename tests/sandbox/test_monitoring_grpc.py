"""Cloud Monitoring's ListTimeSeries, served by the sandbox and read with the real client library
(``MetricServiceClient`` over an insecure channel, and its ``Query`` helper)."""
from __future__ import annotations

import datetime as dt
import time
from typing import Iterator

import grpc
import pytest
from google.api.metric_pb2 import MetricDescriptor
from google.api_core import exceptions as gexc
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3 import query
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

from runbook_lib.sandbox.metrics import (
    CONNECTOR_INSTANCES,
    DB_CONNECT,
    LB_LATENCIES,
    RUN_LATENCIES,
    SQL_BACKENDS,
    BackendsUnavailable,
    MetricsSampler,
    MetricStore,
    Names,
)
from runbook_lib.sandbox.monitoring_grpc import MonitoringServer

from .kit import LoopThread, make_state

P = "netra-staging"
Aligner = monitoring_v3.Aggregation.Aligner
NOW = time.time()


def _fill(store: MetricStore) -> None:
    """Two connectors (3 then 6 instances for the staging one) and request latencies."""
    for i in range(40):
        t = NOW - 20 + i * 0.5
        for name, value in (("staging-connector", 3 if i < 20 else 6), ("other-connector", 2)):
            store.record(CONNECTOR_INSTANCES, "vpc_access_connector",
                         {"project_id": P, "location": "us-central1", "connector_name": name}, {},
                         kind="GAUGE", value_type="INT64", unit="1", start=t, end=t, value=value)
        store.record(RUN_LATENCIES, "cloud_run_revision", {"project_id": P, "service_name": "netra-backend-staging"},
                     {"response_code_class": "2xx"}, kind="DELTA", value_type="DISTRIBUTION", unit="ms",
                     start=t - 0.5, end=t, value=[float(i + 1)])
        store.record(RUN_LATENCIES, "cloud_run_revision", {"project_id": P, "service_name": "netra-backend-staging"},
                     {"response_code_class": "5xx"}, kind="DELTA", value_type="DISTRIBUTION", unit="ms",
                     start=t - 0.5, end=t, value=[1000.0])


class Monitoring:
    def __init__(self, loop_thread: LoopThread, *, blackout: bool = False):
        self.store = MetricStore()
        _fill(self.store)
        self.server = MonitoringServer(self.store, P, blackout=lambda: blackout)
        self.loop_thread = loop_thread
        port = loop_thread.run(self.server.start())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.client = monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=self.channel))

    def close(self) -> None:
        self.channel.close()
        self.loop_thread.run(self.server.stop())

    def query(self, metric_type: str) -> query.Query:
        return query.Query(self.client, P, metric_type, end_time=dt.datetime.fromtimestamp(NOW + 0.1, dt.timezone.utc),
                           minutes=5)

    def list(self, filter_: str, **request: object) -> list[monitoring_v3.TimeSeries]:
        interval = {"end_time": {"seconds": int(NOW) + 1}, "start_time": {"seconds": int(NOW) - 300}}
        return list(self.client.list_time_series(
            request={"name": f"projects/{P}", "filter": filter_, "interval": interval, **request}, timeout=5))


@pytest.fixture
def mon(loop_thread: LoopThread) -> Iterator[Monitoring]:
    m = Monitoring(loop_thread)
    try:
        yield m
    finally:
        m.close()


def test_query_helper_reads_aligned_gauges_into_a_dataframe(mon: Monitoring) -> None:
    q = mon.query(CONNECTOR_INSTANCES).select_resources(connector_name="staging-connector")
    frame = q.align(Aligner.ALIGN_MAX, seconds=5).as_dataframe(label="connector_name")
    assert list(frame.columns.get_level_values(0)) == ["staging-connector"]
    values = frame.iloc[:, 0].tolist()
    assert set(values) == {3, 6} and values == sorted(values)  # the frame is oldest first


def test_percentile_aligners_on_latency_distributions(mon: Monitoring) -> None:
    q = mon.query(RUN_LATENCIES).select_metrics(response_code_class="2xx")
    frame = q.align(Aligner.ALIGN_PERCENTILE_99, minutes=5).as_dataframe()
    assert frame.shape == (1, 1)
    assert frame.iloc[0, 0] == pytest.approx(39.61)  # p99 of 1..40 ms, interpolated
    p50 = mon.query(RUN_LATENCIES).align(Aligner.ALIGN_PERCENTILE_50, minutes=5).as_dataframe(
        label="response_code_class")
    by_class = dict(zip(p50.columns.get_level_values(0), p50.iloc[0], strict=True))
    assert by_class["5xx"] == pytest.approx(1000.0) and by_class["2xx"] == pytest.approx(20.5)


def test_raw_distribution_points_carry_counts_and_buckets(mon: Monitoring) -> None:
    series = mon.list(f'metric.type = "{RUN_LATENCIES}" AND metric.labels.response_code_class = "2xx"')
    assert len(series) == 1
    ts = series[0]
    kinds = monitoring_v3.types.TimeSeries.pb(ts)
    assert (kinds.metric_kind, kinds.value_type) == (MetricDescriptor.DELTA, MetricDescriptor.DISTRIBUTION)
    assert ts.unit == "ms" and len(ts.points) == 40
    newest = ts.points[0]
    assert newest.value.distribution_value.count == 1 and newest.value.distribution_value.mean == 40.0
    assert newest.interval.end_time > ts.points[-1].interval.end_time  # newest first, like the API


def test_filters_select_by_resource_and_metric_labels(mon: Monitoring) -> None:
    both = mon.list(f'metric.type = "{CONNECTOR_INSTANCES}"')
    assert sorted(s.resource.labels["connector_name"] for s in both) == ["other-connector", "staging-connector"]
    one = mon.list(f'metric.type = "{CONNECTOR_INSTANCES}" AND resource.labels.connector_name = "other-connector"')
    assert [s.resource.labels["connector_name"] for s in one] == ["other-connector"]
    prefixed = mon.list(f'metric.type = "{CONNECTOR_INSTANCES}" AND '
                        f'resource.label.connector_name = starts_with("staging")')
    assert len(prefixed) == 1
    assert mon.list('metric.type = "compute.googleapis.com/instance/cpu/utilization"') == []


def test_mean_alignment_and_cross_series_reduction(mon: Monitoring) -> None:
    aggregation = {"per_series_aligner": Aligner.ALIGN_MEAN, "alignment_period": {"seconds": 300},
                   "cross_series_reducer": monitoring_v3.Aggregation.Reducer.REDUCE_SUM,
                   "group_by_fields": ["resource.label.project_id"]}
    series = mon.list(f'metric.type = "{CONNECTOR_INSTANCES}"', aggregation=aggregation)
    assert len(series) == 1 and series[0].resource.labels["project_id"] == P
    assert series[0].points[0].value.double_value == pytest.approx(4.5 + 2)


def test_pages_of_series_are_followed_by_the_client(mon: Monitoring) -> None:
    series = mon.list(f'metric.type = "{CONNECTOR_INSTANCES}"', page_size=1)
    assert len(series) == 2


@pytest.mark.parametrize("filter_, aggregation, error", [
    ('resource.type = "vpc_access_connector"', None, gexc.InvalidArgument),
    ("metric.type = ", None, gexc.InvalidArgument),
    (f'metric.type = "{CONNECTOR_INSTANCES}"',
     {"per_series_aligner": Aligner.ALIGN_PERCENTILE_99, "alignment_period": {"seconds": 60}}, gexc.InvalidArgument),
])
def test_invalid_requests_are_refused_like_the_real_api(mon: Monitoring, filter_: str, aggregation: dict | None,
                                                        error: type[Exception]) -> None:
    extra = {"aggregation": aggregation} if aggregation else {}
    with pytest.raises(error):
        mon.list(filter_, **extra)


def test_another_project_is_permission_denied(mon: Monitoring) -> None:
    with pytest.raises(gexc.PermissionDenied):
        list(mon.client.list_time_series(request={
            "name": "projects/someone-else", "filter": f'metric.type = "{CONNECTOR_INSTANCES}"',
            "interval": {"end_time": {"seconds": int(NOW)}}}, timeout=5))


def test_blackout_hangs_until_the_client_deadline(loop_thread: LoopThread) -> None:
    m = Monitoring(loop_thread, blackout=True)
    try:
        with pytest.raises(gexc.DeadlineExceeded):
            list(m.client.list_time_series(request={
                "name": f"projects/{P}", "filter": f'metric.type = "{CONNECTOR_INSTANCES}"',
                "interval": {"end_time": {"seconds": int(NOW)}}}, timeout=0.5, retry=None))
    finally:
        m.close()


def test_sampler_derives_series_from_the_sandbox_state(loop_thread: LoopThread) -> None:
    state = make_state("issue-1278")
    store = MetricStore()
    requests = [{"t": NOW, "domain": "api-staging.netrasystems.ai", "method": "GET", "path": "/health",
                 "status": 200, "latency_s": 0.012},
                {"t": NOW, "domain": "api-staging.netrasystems.ai", "method": "POST", "path": "/auth/login",
                 "status": 503, "latency_s": 0.5},
                {"t": NOW, "domain": "api-staging.netrasystems.ai", "method": "GET", "path": "/ws",
                 "status": 101, "latency_s": 0.0}]
    backends = {"n": 4}
    connects = [{"t": NOW, "latency_s": 1.4, "outcome": "timeout"}]

    async def num_backends() -> int:
        if backends["n"] < 0:
            raise BackendsUnavailable("instance is STOPPED")
        return backends["n"]

    p = state.params
    sampler = MetricsSampler(
        store, Names(project=P, region=p.region, connector=p.connector.name, sql_instance=p.cloudsql.instance,
                     https_proxy=p.load_balancer.https_proxy, backend_services=p.load_balancer.backend_services,
                     run_services=p.cloud_run.services, frontend_domain=p.domains.frontend),
        connector_instances=state.connector_instances, num_backends=num_backends, request_log=lambda: requests,
        db_connects=lambda: connects, database="netra")
    loop_thread.run(sampler.sample_once())
    connects.append({"t": NOW + 1, "latency_s": 0.02, "outcome": "ok"})
    state.ops.duration_s = 0  # this operation completes at once (operations are tested in test_emulator)
    state.patch_connector(state.connector_name, {"minInstances": 2, "maxInstances": 10}, "minInstances,maxInstances")
    backends["n"] = -1
    loop_thread.run(sampler.sample_once())

    instances = [p.value for s in store.snapshot(CONNECTOR_INSTANCES) for p in s.points]
    assert instances == [3, 6]  # clamp(demand 6, 2..3), then clamp(6, 2..10)
    assert [p.value for s in store.snapshot(SQL_BACKENDS) for p in s.points] == [4]  # none while down
    lb = {dict(s.key.resource_labels)["backend_target_name"]: s.points[0].value
          for s in store.snapshot(LB_LATENCIES)}
    assert lb == {"staging-backend-service": [12.0], "staging-auth-service": [500.0]}  # no WebSocket upgrade
    run = {(dict(s.key.resource_labels)["service_name"], dict(s.key.metric_labels)["response_code_class"])
           for s in store.snapshot(RUN_LATENCIES)}
    assert run == {("netra-backend-staging", "2xx"), ("auth-staging", "5xx")}
    db = {dict(s.key.metric_labels)["outcome"]: [p.value for p in s.points] for s in store.snapshot(DB_CONNECT)}
    assert db == {"timeout": [[1400.0]], "ok": [[20.0]]}  # each connect sampled once


def test_startup_latencies_follow_the_serving_revision_and_are_served_over_grpc(loop_thread: LoopThread) -> None:
    from runbook_lib.sandbox.metrics import STARTUP_LATENCIES

    state = make_state("issue-1278")
    store = MetricStore()
    p = state.params
    clock = iter([NOW - 1, NOW, NOW + 0.05])
    sampler = MetricsSampler(
        store, Names(project=P, region=p.region, connector=p.connector.name, sql_instance=p.cloudsql.instance,
                     https_proxy=p.load_balancer.https_proxy, backend_services=p.load_balancer.backend_services,
                     run_services=p.cloud_run.services, frontend_domain=p.domains.frontend),
        connector_instances=state.connector_instances, startup_latencies=state.startup_latencies,
        clock=lambda: next(clock))
    loop_thread.run(sampler.sample_once())
    server = MonitoringServer(store, P, blackout=lambda: False)
    port = loop_thread.run(server.start())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        client = monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
        interval = {"end_time": {"seconds": int(NOW) + 1}, "start_time": {"seconds": int(NOW) - 300}}
        series = list(client.list_time_series(request={
            "name": f"projects/{P}", "filter": f'metric.type = "{STARTUP_LATENCIES}"', "interval": interval},
            timeout=5))
        by_service = {s.resource.labels["service_name"]: s for s in series}
        backend = by_service["netra-backend-staging"]
        assert backend.resource.type == "cloud_run_revision"
        assert backend.resource.labels["revision_name"] == "netra-backend-staging-00042-abc"
        # issue-1278: no startup CPU boost, 600 s real-world cold start, at the sandbox's 0.02 scale
        assert backend.points[0].value.distribution_value.mean == pytest.approx(600 * 0.02 * 1000)
    finally:
        channel.close()
        loop_thread.run(server.stop())
