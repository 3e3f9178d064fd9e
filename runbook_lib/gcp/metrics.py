"""Reading the metric evidence (``MetricRecord``) the checks judge: pure, no client library.

``monitoring.py`` queries Cloud Monitoring over gRPC; what a check needs from the answer lives
here, so a check importing it imports no ``google.cloud`` or ``grpc``.
"""
from __future__ import annotations

from datetime import datetime

from runbook_lib.evidence import MetricRecord


def latest_total(record: MetricRecord) -> tuple[float, datetime] | None:
    """Sum over series of each series' newest point, with the newest time (for gauges like counts)."""
    last = [s.points[-1] for s in record.series if s.points]
    if not last:
        return None
    return sum(p.v for p in last), max(p.t for p in last)


def peak(record: MetricRecord) -> tuple[float, datetime] | None:
    """The highest per-minute total over the window."""
    totals: dict[datetime, float] = {}
    for s in record.series:
        for p in s.points:
            totals[p.t] = totals.get(p.t, 0.0) + p.v
    if not totals:
        return None
    when = max(totals, key=lambda t: (totals[t], t))
    return totals[when], when

