"""Two runs compared: newly failing, fixed, still failing (since when), and numbers that moved.

Pure: two ``RunRecord``s in, a ``Comparison`` out (plus, optionally, a lookup that says since
which run a check has been failing). "Failing" is FAIL or ERROR, as for the verdict; WARN is
advice. A number moved when the change is beyond the noise of its kind (``NOISE``): measured
timings jitter, counts do not, and days to a certificate's expiry fall by one a day on their own.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable

from runbook_lib.history.runs import RunRecord
from runbook_lib.util import clock

# (absolute floor, relative share of the larger value): a change must exceed both to count.
# Durations are real-world seconds; a 1 s floor keeps sandbox jitter (0.05 s on the wire = 1 s
# real at scale 0.05) from showing as movement, 20 % keeps a slow night from looking like a fault.
NOISE = {
    "_s": (1.0, 0.20),          # any duration: p50_s, p95_s, max_s, login_s
    "days_left": (2.0, 0.0),    # after subtracting the days that passed between the runs
    "error_pct": (1.0, 0.0),    # percentage points
    "": (1.0, 0.0),             # counts: instances, peak, max_instances, failed
}
UNITS = {"_s": "s", "days_left": "days", "error_pct": "%", "": ""}

FailingSince = Callable[[str], "tuple[str, str, int] | None"]


def _kind(name: str) -> str:
    if name == "days_left" or name == "error_pct":
        return name
    return "_s" if name.endswith("_s") else ""


@dataclass
class Change:
    id: str
    component: str
    severity: str
    before: str | None          # status in the earlier run (None: the check did not run then)
    after: str | None
    since: str | None = None    # still failing: started time of the first run of the streak
    since_dir: str | None = None
    runs: int | None = None     # still failing: how many runs in a row


@dataclass
class Moved:
    check: str
    name: str
    before: float
    after: float
    unit: str

    @property
    def delta(self) -> float:
        return self.after - self.before


@dataclass
class Comparison:
    base: dict[str, Any] | None        # the earlier run (RunRecord.brief()); None: nothing to compare with
    current: dict[str, Any]
    newly_failing: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    still_failing: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)     # other status changes (PASS -> WARN, -> SKIP, new, gone)
    moved: list[Moved] = field(default_factory=list)
    note: str = ""

    @property
    def verdict_changed(self) -> bool:
        return self.base is not None and self.base.get("verdict") != self.current.get("verdict")

    def counts(self) -> dict[str, int]:
        return {"newly_failing": len(self.newly_failing), "fixed": len(self.fixed),
                "still_failing": len(self.still_failing), "changed": len(self.changed), "moved": len(self.moved)}

    def headline(self) -> str:
        if self.base is None:
            return f"Since the last run: {self.note or 'no earlier completed run to compare with'}"
        when = clock.readable(self.base.get("started", ""))
        parts = [f"{len(self.newly_failing)} newly failing", f"{len(self.fixed)} fixed",
                 f"{len(self.still_failing)} still failing"]
        if self.moved:
            parts.append(f"{len(self.moved)} numbers moved")
        verdict = f"{self.base.get('verdict') or '?'} -> {self.current.get('verdict') or '?'}"
        return f"Since the last run ({self.base['dir']}, {when}, {verdict}): " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base, "current": self.current, "verdict_changed": self.verdict_changed,
            "counts": self.counts(), "headline": self.headline(),
            "newly_failing": [asdict(c) for c in self.newly_failing], "fixed": [asdict(c) for c in self.fixed],
            "still_failing": [asdict(c) for c in self.still_failing], "changed": [asdict(c) for c in self.changed],
            "moved": [{**asdict(m), "delta": m.delta} for m in self.moved], "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Comparison":
        return cls(base=d.get("base"), current=d.get("current") or {},
                   newly_failing=[Change(**c) for c in d.get("newly_failing", [])],
                   fixed=[Change(**c) for c in d.get("fixed", [])],
                   still_failing=[Change(**c) for c in d.get("still_failing", [])],
                   changed=[Change(**c) for c in d.get("changed", [])],
                   moved=[Moved(**{k: v for k, v in m.items() if k != "delta"}) for m in d.get("moved", [])],
                   note=d.get("note", ""))


def _days_between(a: str, b: str) -> float:
    try:
        return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() / 86400
    except (ValueError, TypeError):
        return 0.0


def moved_beyond_noise(name: str, before: float, after: float, elapsed_days: float = 0.0) -> bool:
    kind = _kind(name)
    floor, share = NOISE[kind]
    expected = before - elapsed_days if kind == "days_left" else before
    change = abs(after - expected)
    return change >= floor and change >= share * max(abs(before), abs(after))


def compare(base: RunRecord | None, current: RunRecord, *, failing_since: FailingSince | None = None,
            note: str = "", partial: bool = False) -> Comparison:
    """``current`` against ``base``; ``failing_since(check_id)`` dates a still-failing check's streak.

    ``partial``: the base knows only its failing checks (the state in the issue comment), so a
    check absent from it is not "new".
    """
    out = Comparison(base=base.brief() if base else None, current=current.brief(), note=note)
    if base is None:
        return out
    order = list(current.checks) + [c for c in base.checks if c not in current.checks]
    for cid in order:
        a, b = base.checks.get(cid), current.checks.get(cid)
        ref = b or a
        assert ref is not None
        before = a.status if a else ("not failing" if partial else None)
        change = Change(cid, ref.component, ref.severity, before, b.status if b else None)
        was, now = bool(a and a.failing), bool(b and b.failing)
        if now and not was:
            out.newly_failing.append(change)
        elif was and now:
            streak = failing_since(cid) if failing_since else None
            if streak:
                change.since_dir, change.since, change.runs = streak[0], streak[1], streak[2]
            else:
                change.since_dir, change.since, change.runs = base.dir, base.started, None
            out.still_failing.append(change)
        elif was and b is not None and b.status in ("PASS", "WARN"):
            out.fixed.append(change)
        elif change.before != change.after and not (partial and a is None):
            out.changed.append(change)   # e.g. FAIL -> SKIP (not verified, so not "fixed"), or a new check
    elapsed = _days_between(base.started, current.started)
    for cid, b in current.checks.items():
        a = base.checks.get(cid)
        if a is None:
            continue
        for name, after in b.measurements.items():
            before = a.measurements.get(name)
            if before is not None and moved_beyond_noise(name, before, after, elapsed):
                out.moved.append(Moved(cid, name, before, after, UNITS[_kind(name)]))
    return out
