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
