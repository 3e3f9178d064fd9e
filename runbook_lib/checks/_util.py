"""Helpers the check modules share: building results, failed records, time and name formatting.

Nothing here does I/O or reads the clock; ``now`` always comes from the evidence.

Time and latency follow one rule in every check:

* **The time scale is the evidence's** (``time_scale(ev)``, recorded in ``meta.time_scale`` when
  the evidence was gathered): a sandbox recorded at 0.05 is judged at 0.05 on replay whatever the
  replay's parameters say. Never ``params.target.time_scale`` in a check.
* **Thresholds are real-world seconds.** ``on_wire(limit, scale)`` is the same limit in measured
  seconds (what a sample is compared with); ``real(measured, scale)`` turns a measurement back into
  real-world seconds (for ``measurements``, which history compares across runs); ``fmt_s`` and
  ``fmt_limit`` show both.
* **A sample's latency is ``latency_s(sample)``: wire time for a sample that succeeded, total time
  for one that failed.** Wire time (``ProbeResult.wire_s``) is the sum of the protocol's timed phases
  (resolve, connect, tls, ...): the network's and the peer's time, without the gaps in which the
  probe waited for its own event loop (dozens of probes share one loop, and on a busy two-core
  runner those gaps reach seconds that are not the target's fault). A failed sample has no complete
  set of phases (a timeout ends mid-phase, and that phase is not recorded), so its latency is the
  time until it gave up, which is what a client would have waited; it counts in the percentiles
  and, separately, as a failure. A sample with no timed phase at all (the golden path's HTTP steps)
  has wire time = total time.
"""
from __future__ import annotations

import re
from collections import Counter
from datetime import datetime
from typing import Iterable, Sequence

from runbook_lib.evidence import ApiRecord, Evidence, MetricRecord
from runbook_lib.probes.base import ProbeResult
from runbook_lib.results import CheckResult, Severity, Status
from runbook_lib.util.stats import percentile  # noqa: F401  (re-exported for the check modules)

PASS, WARN, FAIL, ERROR, SKIP = Status.PASS, Status.WARN, Status.FAIL, Status.ERROR, Status.SKIP


class Maker:
    """Results for one component, at its default severity."""

    def __init__(self, component: str, severity: Severity):
        self.component, self.severity = component, severity

    def __call__(
        self, id: str, title: str, status: Status, *, observed: str = "", expected: str = "",
        reason: str = "", remediation: str = "", evidence: Iterable[str] = (), upstream: Iterable[str] = (),
        severity: Severity | None = None, measurements: dict[str, float] | None = None,
    ) -> CheckResult:
        return CheckResult(
            id=id, component=self.component, title=title, status=status, severity=severity or self.severity,
            observed=observed, expected=expected, reason=reason, remediation=remediation,
            evidence=list(evidence), upstream=list(upstream), measurements=dict(measurements or {}),
        )


def usable(record: ApiRecord | MetricRecord | None) -> bool:
    return record is not None and record.ok


def unavailable(make: Maker, id: str, title: str, record: ApiRecord | MetricRecord | None, key: str,
                *, expected: str = "", severity: Severity | None = None) -> CheckResult:
    """The result of a check whose evidence could not be read: SKIP when the API is disabled (or the
    collector was told not to run), ERROR otherwise; never PASS, never missing."""
    if record is None:
        return make(id, title, ERROR, expected=expected, evidence=[key], severity=severity, reason=unread(record, key))
    kind = record.error.kind if record.error else "error"
    status = SKIP if kind in ("api_disabled", "skipped") else ERROR
    return make(id, title, status, observed=f"{kind}: could not read {key}", expected=expected,
                reason=unread(record, key), evidence=[key], severity=severity)


def unread(record: ApiRecord | MetricRecord | None, key: str) -> str:
    """Why ``key``'s evidence cannot be used, in one line (for a result that needs it only in part)."""
    if record is None:
        return f"no evidence recorded for {key} (the collector did not run or crashed)"
    return record.error.message if record.error else "the read failed without a message"


def safe_id(part: str) -> str:
    """A check-id segment from a resource name (ids are lower-case ``[a-z0-9_.-]``)."""
    cleaned = re.sub(r"[^a-z0-9_.\-]", "-", part.lower()).strip("-.")
    return cleaned or "x"


def domain_label(domain: str) -> str:
    """``api-staging.netrasystems.ai`` -> ``api-staging`` (the check-id segment for a domain)."""
    return safe_id(domain.removeprefix("*.").split(".")[0])


def path_slug(path: str) -> str:
    """``/auth/health`` -> ``auth-health``; ``/`` -> ``root``."""
    slug = safe_id(path.strip("/").replace("/", "-"))
    return "root" if slug == "x" else slug


def time_scale(ev: Evidence) -> float:
    """The speed the target ran at when ``ev`` was gathered (1.0 in real time)."""
    return ev.meta.time_scale or 1.0


def on_wire(real_seconds: float, time_scale: float) -> float:
    """A real-world threshold in measured seconds."""
    return real_seconds * time_scale


def real(measured_seconds: float, time_scale: float) -> float:
    """A measurement in real-world seconds."""
    return measured_seconds / time_scale


def latency_s(sample: ProbeResult) -> float:
    """The latency of one probe sample, by the rule in the module docstring."""
    return sample.wire_s if sample.ok else sample.total_s


def fmt_s(seconds: float, time_scale: float) -> str:
    """Measured seconds, with the real-world equivalent when the target runs faster."""
    text = f"{seconds:.2f} s"
    if time_scale != 1:
        text += f" (= {seconds / time_scale:.1f} s at time scale {time_scale:g})"
    return text


def fmt_limit(real_seconds: float, time_scale: float) -> str:
    """A real-world threshold, with what it is on the wire when the target runs faster."""
    text = f"{real_seconds:g} s"
    if time_scale != 1:
        text += f" ({real_seconds * time_scale:.2f} s on the wire at time scale {time_scale:g})"
    return text


def reasons_counted(samples: Iterable[ProbeResult]) -> str:
    """``timeout 7, reset 3`` (most frequent first)."""
    counts = Counter(s.reason.value if s.reason else "error" for s in samples if not s.ok)
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def name_matches(pattern: str, host: str) -> bool:
    """Certificate name matching: exact, or ``*.example.com`` for exactly one label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def covers(names: Iterable[str], host: str) -> bool:
    return any(name_matches(n, host) for n in names)


def days_between(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 86400


def fmt_days(days: float) -> str:
    """``4.5 days`` close to a deadline, ``80 days`` far from it."""
    return f"{days:.1f} days" if abs(days) < 10 else f"{days:.0f} days"


def first_failed(samples: Sequence[ProbeResult]) -> ProbeResult | None:
    return next((s for s in samples if not s.ok), None)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
