"""Structured check results and the overall verdict.

A check never returns a bare boolean: each result says what was observed, what was expected, why
it has the status it has and what to do about it. Two invariants are enforced on construction: a
SKIP carries a reason, a FAIL carries a remediation (an ERROR carries a reason).
"""
from __future__ import annotations

from collections import Counter
from enum import Enum
from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1


class Status(str, Enum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIP = "SKIP"


class Severity(str, Enum):
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"


# A FAIL or ERROR at these severities makes the environment UNHEALTHY; only critical ones are
# counted as "Critical Failures" (the incident script's wording).
BLOCKING = (Severity.critical, Severity.high)
BAD = (Status.FAIL, Status.ERROR)


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True, use_enum_values=False)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    component: str
    title: str
    status: Status
    severity: Severity
    observed: str = ""
    expected: str = ""
    reason: str = ""
    remediation: str = ""
    evidence: list[str] = Field(default_factory=list)
    # Components whose own failure would explain this one (a slow database behind a saturated
    # connector): used to name root causes, never to hide a result.
    upstream: list[str] = Field(default_factory=list)
    # The numbers behind ``observed``, typed, for comparisons across runs (runbook_lib/history):
    # name -> value, durations in real-world seconds (measured / time_scale), e.g. {"p95_s": 41.2}.
    measurements: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _explained(self) -> "CheckResult":
        if self.status in (Status.SKIP, Status.ERROR) and not self.reason:
            raise ValueError(f"{self.id}: a {self.status.value} result needs a reason")
        if self.status is Status.FAIL and not self.remediation:
            raise ValueError(f"{self.id}: a FAIL result needs a remediation")
        return self

    @property
    def blocking(self) -> bool:
        return self.status in BAD and self.severity in BLOCKING

    @property
    def critical_failure(self) -> bool:
        return self.status in BAD and self.severity is Severity.critical


class Verdict(BaseModel):
    healthy: bool
    critical_failures: int
    blocking_failures: int
    counts: dict[str, int]

    @property
    def status(self) -> str:
        return "HEALTHY" if self.healthy else "UNHEALTHY"

    @property
    def line(self) -> str:
        return f"Overall Status: {self.status}, Critical Failures: {self.critical_failures}"

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else 1


def verdict_of(results: Iterable[CheckResult]) -> Verdict:
    results = list(results)
    counts = Counter(r.status.value for r in results)
    blocking = sum(r.blocking for r in results)
    return Verdict(
        healthy=blocking == 0 and bool(results),
        critical_failures=sum(r.critical_failure for r in results),
        blocking_failures=blocking,
        counts={s.value: counts.get(s.value, 0) for s in Status},
    )


class ResultSet(BaseModel):
    """The results of one evaluation, in check order."""

    results: list[CheckResult] = Field(default_factory=list)

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def extend(self, more: Iterable[CheckResult]) -> None:
        self.results.extend(more)

    def for_component(self, component: str) -> "ResultSet":
        return ResultSet(results=[r for r in self.results if r.component == component])

    def by_id(self, check_id: str) -> CheckResult:
        for r in self.results:
            if r.id == check_id:
                return r
        raise KeyError(check_id)

    def get(self, check_id: str) -> CheckResult | None:
        return next((r for r in self.results if r.id == check_id), None)

    def problems(self) -> list[CheckResult]:
        return [r for r in self.results if r.status in (Status.FAIL, Status.ERROR, Status.WARN)]

    @property
    def components(self) -> list[str]:
        return list(dict.fromkeys(r.component for r in self.results))

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.results)

    def to_records(self) -> list[dict]:
        return [r.model_dump(mode="json") for r in self.results]

    def to_dataframe(self):
        import pandas as pd

        cols = ["id", "component", "status", "severity", "observed", "expected", "reason", "remediation"]
        return pd.DataFrame(self.to_records(), columns=cols + ["title", "evidence"])[cols]


class Fault(BaseModel):
    """A component that is broken in its own right, with the failing checks that show it."""

    component: str
    severity: Severity
    checks: list[str]
    reasons: list[str]
    symptoms: list[str] = Field(default_factory=list)  # failing checks elsewhere it explains


def root_causes(results: Iterable[CheckResult]) -> list[Fault]:
    """Name the broken components, attributing symptoms to the upstream component they name.

    A blocking failure whose ``upstream`` components are themselves failing is a symptom, not a
    separate fault: a slow database behind a saturated connector is one connector fault.
    """
    results = list(results)
    failing = [r for r in results if r.blocking]
    broken = {r.component for r in failing}
    own: dict[str, list[CheckResult]] = {}
    symptoms: dict[str, list[str]] = {}
    for r in failing:
        explained_by = [u for u in r.upstream if u in broken and u != r.component]
        if explained_by:
            for u in explained_by:
                symptoms.setdefault(u, []).append(r.id)
        else:
            own.setdefault(r.component, []).append(r)
    order = list(dict.fromkeys(r.component for r in results))
    faults = []
    for comp in sorted(own, key=order.index):
        rs = own[comp]
        sev = Severity.critical if any(r.severity is Severity.critical for r in rs) else Severity.high
        faults.append(Fault(component=comp, severity=sev, checks=[r.id for r in rs],
                            reasons=[r.reason for r in rs], symptoms=symptoms.get(comp, [])))
    return faults
