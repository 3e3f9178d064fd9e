"""Structured check results and the overall verdict.

A check never returns a bare boolean: each result says what was observed, what was expected, why
it has the status it has and what to do about it. Two invariants are enforced on construction: a
SKIP carries a reason, a FAIL carries a remediation (an ERROR carries a reason).
"""
from __future__ import annotations

from collections import Counter
from enum import Enum
from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

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


# -- statuses: decided here, once; every view (HTML, summary, terminal, index, JSON) renders them --

class ComponentStatus(BaseModel):
    """One component's standing, by the verdict's blocking rule.

    FAIL: a blocking failure (FAIL/ERROR at critical/high severity); ERROR when every blocking
    result is an ERROR (the runbook could not look). WARN: a warning or a non-blocking failure.
    PASS: every check that ran passed (skips are listed, with reasons, but are not failures).
    SKIP: no check ran.
    """

    component: str
    status: Status
    checks: int
    passed: int
    counts: dict[str, int]
    problems: list[str] = Field(default_factory=list)      # ids: FAIL, ERROR, WARN
    skipped: dict[str, str] = Field(default_factory=dict)  # id -> reason

    @property
    def blocking(self) -> bool:
        return self.status in BAD


def component_status(component: str, results: Iterable[CheckResult]) -> ComponentStatus:
    rs = [r for r in results if r.component == component]
    counts = Counter(r.status.value for r in rs)
    blocking = [r for r in rs if r.blocking]
    if blocking:
        status = Status.FAIL if any(r.status is Status.FAIL for r in blocking) else Status.ERROR
    elif any(r.status in (Status.WARN, *BAD) for r in rs):
        status = Status.WARN
    elif counts.get("PASS"):
        status = Status.PASS
    else:
        status = Status.SKIP
    return ComponentStatus(
        component=component, status=status, checks=len(rs), passed=counts.get("PASS", 0),
        counts={s.value: counts.get(s.value, 0) for s in Status},
        problems=[r.id for r in rs if r.status in (Status.WARN, *BAD)],
        skipped={r.id: r.reason for r in rs if r.status is Status.SKIP},
    )


def component_statuses(results: Iterable[CheckResult]) -> list[ComponentStatus]:
    results = list(results)
    return [component_status(c, results) for c in dict.fromkeys(r.component for r in results)]


class ActionCounts(BaseModel):
    """What phase 2 did with its plan, counted from the plan and the apply step's audit log."""

    mode: str = "dry-run"           # dry-run | applied | refused | failed | none
    planned: int = 0
    automatic: int = 0
    manual: int = 0
    applied: int = 0                # changed something
    unchanged: int = 0              # already in the wanted state
    failed: int = 0
    manual_pending: int = 0         # a person still has to do it
    skipped: int = 0                # left out of the plan by remediation.skip
    not_applied: int = 0            # automatic actions not run (dry run, or after a failure)


class OpenItem(BaseModel):
    """Something still to do after a run: a manual step, a skipped or failed action, a warning."""

    kind: str                       # manual | skipped | failed | not-applied | warning | failing
    id: str
    text: str
    checks: list[str] = Field(default_factory=list)
    how: str = ""


class PhaseStatus(BaseModel):
    phase: str
    status: str                     # HEALTHY | UNHEALTHY for diagnose/validate; APPLIED | DRY RUN | ... for remediate
    line: str                       # the one terminal line for this phase
    components: list[ComponentStatus] = Field(default_factory=list)
    root_causes: list[str] = Field(default_factory=list)
    golden: dict[str, int] | None = None     # {"passed": n, "total": m} (SKIPs excluded from total)
    actions: ActionCounts | None = None


def _results_of(fragment: dict) -> list[CheckResult]:
    return [CheckResult.model_validate(r) for r in fragment.get("results", [])]


def action_counts(fragment: dict) -> ActionCounts:
    plan = fragment.get("plan") or {}
    report = fragment.get("apply_report") or {}
    actions = plan.get("actions", [])
    manual = [a for a in actions if a.get("kind") == "manual"]
    outcomes = Counter(e.get("outcome") for e in report.get("audit", []))
    automatic = len(actions) - len(manual)
    done = outcomes.get("applied", 0) + outcomes.get("unchanged", 0) + outcomes.get("failed", 0)
    return ActionCounts(
        mode=report.get("mode", "none" if not plan else "dry-run"),
        planned=len(actions), automatic=automatic, manual=len(manual),
        applied=outcomes.get("applied", 0), unchanged=outcomes.get("unchanged", 0), failed=outcomes.get("failed", 0),
        manual_pending=len(manual), skipped=len(plan.get("skipped", [])) + outcomes.get("skipped", 0),
        not_applied=max(0, automatic - done),
    )


def phase_status(fragment: dict) -> PhaseStatus:
    """The status and the one line of a phase, from its recorded fragment (phases/<phase>.json)."""
    name = fragment.get("phase", "")
    results = _results_of(fragment)
    comps = component_statuses(results)
    faults = [f["component"] for f in fragment.get("faults", [])] or [f.component for f in root_causes(results)]
    if name == "remediate":
        n = action_counts(fragment)
        label = {"applied": "APPLIED", "dry-run": "DRY RUN", "refused": "REFUSED", "failed": "FAILED"}.get(n.mode, "NO PLAN")
        if n.planned == 0 and not n.skipped:
            line = "remediate: nothing to do (no failing check has a playbook action)"
        elif n.mode == "dry-run":
            line = (f"remediate: DRY RUN, nothing changed; plan {(fragment.get('plan') or {}).get('id', '?')}: "
                    f"{n.automatic} automatic, {n.manual} manual actions")
        else:
            parts = [f"{n.applied} applied"]
            parts += [f"{n.unchanged} already done"] if n.unchanged else []
            parts += [f"{n.failed} failed"] if n.failed else []
            parts += [f"{n.not_applied} not applied"] if n.not_applied and n.mode != "applied" else []
            parts += [f"{n.manual_pending} manual pending"]
            parts += [f"{n.skipped} skipped"] if n.skipped else []
            line = f"remediate: {label}: " + ", ".join(parts)
        return PhaseStatus(phase=name, status=label, line=line, components=comps, actions=n)
    v = verdict_of(results)
    line = f"{name}: {v.status}, {v.critical_failures} critical"
    if v.blocking_failures != v.critical_failures:
        line += f", {v.blocking_failures - v.critical_failures} high"
    if faults:
        line += ", root causes " + ", ".join(faults)
    golden = None
    walked = [r for r in results if r.component == "golden_path" and r.status is not Status.SKIP]
    if walked:
        golden = {"passed": sum(r.status is Status.PASS for r in walked), "total": len(walked)}
        line += f", golden path {golden['passed']}/{golden['total']}"
    warnings = [c for c in comps if c.status is Status.WARN]
    if warnings:
        line += f", warnings in {', '.join(c.component for c in warnings)}"
    return PhaseStatus(phase=name, status=v.status, line=line, components=comps, root_causes=faults,
                       golden=golden)


class RunStatus(BaseModel):
    """A run's headline, from its phases: what kind of run, healthy or not, and what is still open."""

    kind: str                       # diagnosis | remediation | validation
    title: str
    status: str                     # COMPLETE | HEALTHY | UNHEALTHY | NO VERDICT
    healthy: bool | None
    final_phase: str | None
    open_items: list[OpenItem] = Field(default_factory=list)
    skipped_checks: dict[str, str] = Field(default_factory=dict)
    actions: ActionCounts | None = None
    phases: dict[str, PhaseStatus] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def headline(self) -> str:
        if self.status == "COMPLETE":
            return "INFRASTRUCTURE REMEDIATION COMPLETE"
        if self.status == "HEALTHY":
            n = len(self.open_items)
            return f"INFRASTRUCTURE HEALTHY, {n} OPEN ITEM{'S' if n != 1 else ''}" if n else "INFRASTRUCTURE HEALTHY"
        if self.status == "UNHEALTHY":
            return "INFRASTRUCTURE UNHEALTHY" if self.kind == "diagnosis" else "INFRASTRUCTURE NOT YET HEALTHY"
        return "NO VERDICT RECORDED"


def run_status(phases: dict[str, dict]) -> RunStatus:
    """COMPLETE only when the final phase is healthy and nothing is open; else HEALTHY with the open
    items listed, or UNHEALTHY. A run without phase 3 is a diagnosis (titled as one)."""
    statuses = {p: phase_status(f) for p, f in phases.items()}
    final = next((p for p in ("validate", "diagnose") if p in phases), None)
    kind = "validation" if "validate" in phases else ("remediation" if "remediate" in phases else "diagnosis")
    rem = phases.get("remediate")
    counts = statuses["remediate"].actions if "remediate" in statuses else None
    if final is None:
        return RunStatus(kind=kind, title="Infrastructure status (no verdict recorded)", status="NO VERDICT",
                         healthy=None, final_phase=None, actions=counts, phases=statuses)
    results = _results_of(phases[final])
    healthy = verdict_of(results).healthy
    items: list[OpenItem] = []
    if rem:
        plan = rem.get("plan") or {}
        outcome = {e.get("action"): e for e in (rem.get("apply_report") or {}).get("audit", [])}
        mode = (rem.get("apply_report") or {}).get("mode", "dry-run")
        passing = {r.id for r in results if r.status is Status.PASS} if final == "validate" else set()
        for a in plan.get("actions", []):
            if a.get("answers") and set(a["answers"]) <= passing:
                continue  # what it was for passes now (phase 3 re-checked it)
            how = a.get("instructions") or "; ".join(c.get("gcloud", "") for c in a.get("calls", []))
            e = outcome.get(a["id"], {})
            if a.get("kind") == "manual":
                items.append(OpenItem(kind="manual", id=a["id"], text=a.get("title", a["id"]), checks=a.get("answers", []), how=how))
            elif e.get("outcome") == "failed":
                items.append(OpenItem(kind="failed", id=a["id"], text=f"{a.get('title', a['id'])}: {e.get('error', '')}".rstrip(": "),
                                      checks=a.get("answers", []), how=how))
            elif not e and mode != "applied" or e.get("outcome") == "skipped":
                items.append(OpenItem(kind="not-applied", id=a["id"], text=a.get("title", a["id"]), checks=a.get("answers", []), how=how))
        for sid in plan.get("skipped", []):
            items.append(OpenItem(kind="skipped", id=sid, text=f"{sid} was left out of the plan (remediation.skip)"))
    covered = {c for i in items for c in i.checks}
    for r in results:
        if r.id in covered or r.status not in (Status.WARN, *BAD):
            continue
        kind_ = "failing" if r.blocking else "warning"
        items.append(OpenItem(kind=kind_, id=r.id, text=f"{r.title}: {r.reason or r.observed}", checks=[r.id], how=r.remediation))
    if not healthy:
        status = "UNHEALTHY"
    elif items:
        status = "HEALTHY"
    else:
        status = "COMPLETE"
    title = {"diagnosis": "Infrastructure diagnosis", "remediation": "Infrastructure remediation",
             "validation": "Infrastructure Team Success Declaration" if status == "COMPLETE" else "Infrastructure validation"}[kind]
    skipped = {r.id: r.reason for r in results if r.status is Status.SKIP}
    return RunStatus(kind=kind, title=title, status=status, healthy=healthy, final_phase=final, open_items=items,
                     skipped_checks=skipped, actions=counts, phases=statuses)
