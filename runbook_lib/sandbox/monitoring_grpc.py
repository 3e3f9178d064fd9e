"""Cloud Monitoring's ``MetricService.ListTimeSeries`` over gRPC, served from the sandbox's metrics.

The real client library talks to it unchanged (``MetricServiceClient`` with an insecure channel
or ``client_options.api_endpoint`` and anonymous credentials, and its ``Query`` helper). What it
implements, as the real API does:

- filters: ``metric.type = "X"`` (required) AND ``resource.type``, ``resource.label(s).K``,
  ``metric.label(s).K`` with ``=``, ``!=``, ``starts_with("…")``, ``ends_with("…")``;
  ``project = "P"``; an unknown metric type matches nothing (empty response, no error);
- the interval ``(start_time, end_time]``; points newest first; ``view`` FULL or HEADERS;
- aggregation: per-series aligners NONE, MEAN, MAX, MIN, SUM, COUNT, DELTA, RATE, NEXT_OLDER,
  PERCENTILE_05/50/95/99 (percentiles on distributions only) on ``alignment_period`` buckets that
  end at ``end_time``; cross-series reducers MEAN, MAX, MIN, SUM, COUNT, PERCENTILE_* grouped by
  ``group_by_fields``;
- series pagination (``page_size``, ``page_token``).

In a blackout the call is accepted and never answered: it ends at the client's deadline.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Callable

import grpc
from google.api import distribution_pb2, metric_pb2
from google.cloud.monitoring_v3 import types as mt

from runbook_lib.errors import RunbookError
from runbook_lib.sandbox.metrics import MetricStore, Point, Series
from runbook_lib.util.stats import percentile

SERVICE = "google.monitoring.v3.MetricService"
Aligner = mt.Aggregation.Aligner
Reducer = mt.Aggregation.Reducer
Kind = metric_pb2.MetricDescriptor.MetricKind
VType = metric_pb2.MetricDescriptor.ValueType
PERCENTILES = {
    Aligner.ALIGN_PERCENTILE_05: 5.0, Aligner.ALIGN_PERCENTILE_50: 50.0,
    Aligner.ALIGN_PERCENTILE_95: 95.0, Aligner.ALIGN_PERCENTILE_99: 99.0,
}
REDUCER_PERCENTILES = {
    Reducer.REDUCE_PERCENTILE_05: 5.0, Reducer.REDUCE_PERCENTILE_50: 50.0,
    Reducer.REDUCE_PERCENTILE_95: 95.0, Reducer.REDUCE_PERCENTILE_99: 99.0,
}
# The bucket layout Cloud Load Balancing and Cloud Run use for latency distributions.
BUCKETS = {"num_finite_buckets": 66, "growth_factor": 1.4, "scale": 1.0}


class MonitoringFault(RunbookError):
    """A request the real API would refuse: gRPC status and message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        self.code, self.message = code, message
        super().__init__(message)


# --- filters -----------------------------------------------------------------------------------

_TERM = re.compile(
    r"""^\s*(?P<key>[A-Za-z_]+(?:\.[A-Za-z0-9_]+)*)\s*(?P<op>=|!=)\s*
        (?P<val>"[^"]*"|'[^']*'|(?:starts_with|ends_with)\(\s*"[^"]*"\s*\)|[A-Za-z0-9_.:/\-]+)\s*$""",
    re.X,
)


@dataclass(frozen=True)
class Term:
    key: str      # metric.type, resource.type, resource.label.K, metric.label.K, project
    op: str       # "=" or "!="
    how: str      # equals, starts_with, ends_with
    value: str

    def accepts(self, actual: str | None) -> bool:
        if actual is None:
            hit = False
        elif self.how == "starts_with":
            hit = actual.startswith(self.value)
        elif self.how == "ends_with":
            hit = actual.endswith(self.value)
        else:
            hit = actual == self.value
        return hit if self.op == "=" else not hit


def parse_filter(text: str) -> list[Term]:
    """The conjunction of terms in a Monitoring filter; ``MonitoringFault`` if it is not one."""
    terms = []
    for part in re.split(r"\s+AND\s+", text.strip()):
        part = part.strip()
        m = _TERM.match(part)
        if m is None and part.startswith("(") and part.endswith(")"):
            m = _TERM.match(part[1:-1])
        if m is None:
            raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT,
                                  f'Field filter had an invalid value of "{text}": could not parse "{part.strip()}"')
        key, val = m["key"], m["val"]
        key = re.sub(r"^(metric|resource)\.labels\.", r"\1.label.", key)
        if not re.match(r"^(metric\.type|resource\.type|project|(metric|resource)\.label\.\w+)$", key):
            raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT,
                                  f'Field filter had an invalid value of "{text}": unknown selector "{m["key"]}"')
        how = "equals"
        fn = re.match(r"^(starts_with|ends_with)\(\s*\"([^\"]*)\"\s*\)$", val)
        if fn:
            how, val = fn[1], fn[2]
        elif val[:1] in "\"'":
            val = val[1:-1]
        terms.append(Term(key, m["op"], how, val))
    if not any(t.key == "metric.type" and t.op == "=" and t.how == "equals" for t in terms):
        raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT,
                              f'Field filter had an invalid value of "{text}": it must specify metric.type = "…"')
    return terms


def _selects(terms: list[Term], series: Series, project: str) -> bool:
    k = series.key
    resource, metric = dict(k.resource_labels), dict(k.metric_labels)
    for t in terms:
        if t.key == "metric.type":
            actual: str | None = k.metric_type
        elif t.key == "resource.type":
            actual = k.resource_type
        elif t.key == "project":
            actual = project if t.value == project else resource.get("project_id")
        elif t.key.startswith("resource.label."):
            actual = resource.get(t.key.removeprefix("resource.label."))
        else:
            actual = metric.get(t.key.removeprefix("metric.label."))
        if not t.accepts(actual):
            return False
    return True


# --- alignment ---------------------------------------------------------------------------------

@dataclass
class Aligned:
    """One output point: interval, and a number or distribution samples."""

    start: float
    end: float
    value: float | list[float]





def _numbers(points: list[Point]) -> list[float]:
    out: list[float] = []
    for p in points:
        out.extend(p.value if isinstance(p.value, list) else [float(p.value)])
    return out


def _align(series: Series, aligner: int, period: float, start: float, end: float
           ) -> tuple[list[Aligned], int, int]:
    """Points of ``series`` in ``(start, end]`` after ``aligner``; plus output kind and value type."""
    kind = Kind.GAUGE if series.kind == "GAUGE" else Kind.DELTA
    vtype = getattr(VType, series.value_type)
    points = [p for p in series.points if start < p.end <= end or (start == end and p.end == end)]
    if aligner == Aligner.ALIGN_NONE:
        return [Aligned(p.start, p.end, p.value) for p in reversed(points)], kind, vtype
    is_dist = series.value_type == "DISTRIBUTION"
    if aligner in PERCENTILES and not is_dist:
        raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT,
                              f"The aligner {Aligner(aligner).name} is only valid for distribution values; "
                              f"{series.key.metric_type} has value type {series.value_type}.")
    if aligner == Aligner.ALIGN_RATE and series.kind == "GAUGE":
        raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT,
                              f"The aligner ALIGN_RATE is not valid for GAUGE metric {series.key.metric_type}.")
    if period <= 0:
        raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT,
                              "The alignment period must be positive when an aligner is given.")
    buckets: dict[int, list[Point]] = {}
    for p in points:
        buckets.setdefault(int(math.floor((end - p.end) / period)), []).append(p)
    out: list[Aligned] = []
    out_kind, out_type = Kind.GAUGE, VType.DOUBLE
    for k in sorted(buckets):  # k = 0 is the newest bucket: newest first, as the API returns
        b_end = end - k * period
        b_start = b_end - period
        group = sorted(buckets[k], key=lambda p: p.end)
        values = _numbers(group)
        value: float | list[float]
        if aligner in PERCENTILES:
            value = percentile(values, PERCENTILES[aligner])
        elif aligner in (Aligner.ALIGN_MEAN, Aligner.ALIGN_INTERPOLATE):
            value = sum(values) / len(values)
        elif aligner == Aligner.ALIGN_MAX:
            value, out_type = max(values), (vtype if not is_dist else VType.DOUBLE)
        elif aligner == Aligner.ALIGN_MIN:
            value, out_type = min(values), (vtype if not is_dist else VType.DOUBLE)
        elif aligner == Aligner.ALIGN_COUNT:
            value, out_type = float(len(values)), VType.INT64
        elif aligner in (Aligner.ALIGN_SUM, Aligner.ALIGN_DELTA):
            value = values if is_dist else sum(values)
            out_type = vtype
            out_kind = kind
        elif aligner == Aligner.ALIGN_RATE:
            value = (len(values) if is_dist else sum(values)) / period
        elif aligner == Aligner.ALIGN_NEXT_OLDER:
            value, out_type = _numbers(group[-1:])[-1], vtype if not is_dist else VType.DOUBLE
        else:
            raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"The sandbox does not implement the aligner {Aligner(aligner).name}.")
        out.append(Aligned(b_start if out_kind == Kind.DELTA else b_end, b_end, value))
    return out, out_kind, out_type


def _reduce(rows: list[tuple[Series, list[Aligned], int, int]], reducer: int, group_by: list[str]
            ) -> list[tuple[dict[str, str], dict[str, str], str, list[Aligned], int, int]]:
    """Cross-series reduction: one series per ``group_by`` label combination."""
    groups: dict[tuple[str, ...], list[tuple[Series, list[Aligned], int, int]]] = {}
    for row in rows:
        groups.setdefault(tuple(_label(row[0], f) for f in group_by), []).append(row)
    out = []
    for values, members in groups.items():
        by_end: dict[float, list[float]] = {}
        for _series, points, _k, _t in members:
            for p in points:
                by_end.setdefault(p.end, []).extend(p.value if isinstance(p.value, list) else [float(p.value)])
        kind, vtype = members[0][2], members[0][3]
        reduced: list[Aligned] = []
        for end in sorted(by_end, reverse=True):
            xs = by_end[end]
            if reducer in REDUCER_PERCENTILES:
                v, vtype = percentile(xs, REDUCER_PERCENTILES[reducer]), VType.DOUBLE
            elif reducer == Reducer.REDUCE_MEAN:
                v, vtype = sum(xs) / len(xs), VType.DOUBLE
            elif reducer == Reducer.REDUCE_MAX:
                v = max(xs)
            elif reducer == Reducer.REDUCE_MIN:
                v = min(xs)
            elif reducer == Reducer.REDUCE_SUM:
                v = sum(xs)
            elif reducer == Reducer.REDUCE_COUNT:
                v, vtype = float(len(xs)), VType.INT64
            else:
                raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT,
                                      f"The sandbox does not implement the reducer {Reducer(reducer).name}.")
            reduced.append(Aligned(end, end, v))
        resource = {f.split(".")[-1]: v for f, v in zip(group_by, values, strict=True) if f.startswith("resource.")}
        metric = {f.split(".")[-1]: v for f, v in zip(group_by, values, strict=True) if f.startswith("metric.")}
        out.append((resource, metric, members[0][0].key.resource_type, reduced, kind, vtype))
    return out


def _label(series: Series, field: str) -> str:
    name = re.sub(r"^(metric|resource)\.labels?\.", "", field)
    if field.startswith("resource.") and field != "resource.type":
        return dict(series.key.resource_labels).get(name, "")
    if field == "resource.type":
        return series.key.resource_type
    return dict(series.key.metric_labels).get(name, "")


# --- messages ----------------------------------------------------------------------------------

def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


def _typed(value: float | list[float], vtype: int) -> mt.TypedValue:
    if vtype == VType.DISTRIBUTION:
        return mt.TypedValue(distribution_value=_distribution(value if isinstance(value, list) else [value]))
    if vtype == VType.INT64:
        return mt.TypedValue(int64_value=int(round(float(value))))  # type: ignore[arg-type]
    return mt.TypedValue(double_value=float(value))  # type: ignore[arg-type]


def _distribution(samples: list[float]) -> distribution_pb2.Distribution:
    n = len(samples)
    mean = sum(samples) / n if n else 0.0
    counts = [0] * (BUCKETS["num_finite_buckets"] + 2)
    for x in samples:
        if x < BUCKETS["scale"]:
            i = 0
        else:
            i = 1 + int(math.floor(math.log(x / BUCKETS["scale"], BUCKETS["growth_factor"])))
            i = min(i, len(counts) - 1)
        counts[i] += 1
    while len(counts) > 1 and counts[-1] == 0:
        counts.pop()
    return distribution_pb2.Distribution(
        count=n, mean=mean, sum_of_squared_deviation=sum((x - mean) ** 2 for x in samples),
        bucket_options=distribution_pb2.Distribution.BucketOptions(
            exponential_buckets=distribution_pb2.Distribution.BucketOptions.Exponential(**BUCKETS)),
        bucket_counts=counts,
    )


def _time_series(metric_type: str, metric_labels: dict[str, str], resource_type: str,
                 resource_labels: dict[str, str], kind: int, vtype: int, unit: str,
                 points: list[Aligned], headers_only: bool) -> mt.TimeSeries:
    return mt.TimeSeries(
        metric={"type": metric_type, "labels": metric_labels},
        resource={"type": resource_type, "labels": resource_labels},
        metric_kind=kind,
        value_type=vtype,
        unit=unit,
        points=[] if headers_only else [
            mt.Point(interval=mt.TimeInterval(start_time=_ts(p.start), end_time=_ts(p.end)),
                     value=_typed(p.value, vtype))
            for p in points
        ],
    )


# --- the service -------------------------------------------------------------------------------

class MonitoringServer:
    """``port = await start()``; ``await stop()``. ``list_time_series`` is the pure core."""

    def __init__(self, store: MetricStore, project: str, *, project_number: str = "",
                 blackout: Callable[[], bool] = lambda: False):
        self.store, self.project, self.project_number = store, project, project_number
        self._blackout = blackout
        self._server: grpc.aio.Server | None = None
        self._stopping = asyncio.Event()
        self.port = 0
        self.calls = 0

    def list_time_series(self, request: mt.ListTimeSeriesRequest) -> mt.ListTimeSeriesResponse:
        project = request.name.removeprefix("projects/")
        if not request.name.startswith("projects/") or project not in (self.project, self.project_number):
            raise MonitoringFault(grpc.StatusCode.PERMISSION_DENIED,
                                  f"Permission monitoring.timeSeries.list denied (or the resource may not exist) "
                                  f"on {request.name}.")
        terms = parse_filter(request.filter)
        if "end_time" not in request.interval:
            raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT, "Field interval.endTime must be set.")
        end = request.interval.end_time.timestamp()
        start = request.interval.start_time.timestamp() if "start_time" in request.interval else end
        if start > end:
            raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT,
                                  "Field interval.startTime must not be later than interval.endTime.")
        agg = request.aggregation
        aligner = int(agg.per_series_aligner)
        period = agg.alignment_period.total_seconds() if "alignment_period" in agg else 0.0
        reducer = int(agg.cross_series_reducer)
        if reducer != Reducer.REDUCE_NONE and aligner == Aligner.ALIGN_NONE:
            raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT,
                                  "A cross-series reducer requires a per-series aligner other than ALIGN_NONE.")
        headers_only = request.view == mt.ListTimeSeriesRequest.TimeSeriesView.HEADERS
        metric_type = next(t.value for t in terms if t.key == "metric.type" and t.op == "=")
        rows = []
        for series in sorted(self.store.snapshot(metric_type), key=lambda s: (s.key.resource_labels,
                                                                             s.key.metric_labels)):
            if not _selects(terms, series, project):
                continue
            points, kind, vtype = _align(series, aligner, period, start, end)
            if points or headers_only:
                rows.append((series, points, kind, vtype))
        out: list[mt.TimeSeries] = []
        if reducer != Reducer.REDUCE_NONE:
            for resource, metric, rtype, points, kind, vtype in _reduce(rows, reducer, list(agg.group_by_fields)):
                unit = rows[0][0].unit if rows else ""
                out.append(_time_series(metric_type, metric, rtype, resource, kind, vtype, unit, points, headers_only))
        else:
            for series, points, kind, vtype in rows:
                out.append(_time_series(metric_type, dict(series.key.metric_labels), series.key.resource_type,
                                        dict(series.key.resource_labels), kind, vtype, series.unit, points,
                                        headers_only))
        return self._page(out, request)

    @staticmethod
    def _page(series: list[mt.TimeSeries], request: mt.ListTimeSeriesRequest) -> mt.ListTimeSeriesResponse:
        offset = 0
        if request.page_token:
            try:
                offset = int(base64.urlsafe_b64decode(request.page_token.encode()).decode().removeprefix("offset:"))
            except ValueError:
                raise MonitoringFault(grpc.StatusCode.INVALID_ARGUMENT, "Invalid page token.") from None
        size = request.page_size if request.page_size > 0 else 100000
        chunk = series[offset:offset + size]
        token = ""
        if offset + size < len(series):
            token = base64.urlsafe_b64encode(f"offset:{offset + size}".encode()).decode()
        return mt.ListTimeSeriesResponse(time_series=chunk, next_page_token=token)

    async def _handle(self, request: mt.ListTimeSeriesRequest,
                      context: grpc.aio.ServicerContext) -> mt.ListTimeSeriesResponse:
        self.calls += 1
        if self._blackout():
            remaining = context.time_remaining()
            try:
                await asyncio.wait_for(self._stopping.wait(), remaining)
            except asyncio.TimeoutError:
                pass
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline exceeded.")
        try:
            return self.list_time_series(request)
        except MonitoringFault as fault:
            await context.abort(fault.code, fault.message)
            raise  # unreachable: abort raises

    async def start(self, host: str = "127.0.0.1") -> int:
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                self._handle,
                request_deserializer=mt.ListTimeSeriesRequest.deserialize,
                response_serializer=mt.ListTimeSeriesResponse.serialize,
            ),
        })
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port(f"{host}:0")
        await self._server.start()
        return self.port

    async def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            await self._server.stop(grace=0.5)
            self._server = None

