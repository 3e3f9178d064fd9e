"""A quiet tracking issue: what the issue last showed, and whether this run is news.

The report comment carries, under its marker, one hidden line with the state it shows::

    <!-- runbook:state {"v":1,"run":"2026...-sandbox-1a2b3c","verdict":"UNHEALTHY","failing":["sql.connect"],"notified":"2026-12-01T04:17:00+00:00"} -->

``decide`` compares that (or, when the issue has none yet, the previous run from ``--previous`` or
the catalog) with this run. The comment is updated on every run (an edit notifies nobody); the
labels move and a new comment is posted (GitHub notifies subscribers of new comments) only when
the verdict or the set of failing checks changed (``on-change``), additionally once a day as a
heartbeat (``daily``), or on every run (``always``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from runbook_lib.history.runs import Check, RunRecord

MODES = ("always", "on-change", "daily")
# A nightly cron drifts by minutes; "a day since the last notification" means 20 hours or more.
HEARTBEAT = timedelta(hours=20)
STATE_RE = re.compile(r"^<!-- runbook:state (?P<json>\{.*\}) -->$", re.MULTILINE)


@dataclass(frozen=True)
class State:
    run: str
    verdict: str | None
    failing: tuple[str, ...]
    notified: str = ""            # ISO time of the last new comment (notification)
    target: str = ""

    def line(self) -> str:
        data = {"v": 1, "run": self.run, "target": self.target, "verdict": self.verdict,
                "failing": list(self.failing), "notified": self.notified}
        # "--" cannot appear inside an HTML comment; check ids and folder names never hold it, but be sure
        return "<!-- runbook:state " + json.dumps(data, separators=(",", ":")).replace("--", "-\\u002d") + " -->"

    def as_record(self) -> RunRecord:
        """A partial run (only the failing checks are known) for the "since the last run" section."""
        return RunRecord(dir=self.run, target=self.target, started=_started(self.run), state="COMPLETE",
                         phases=[], final_phase="?", verdict=self.verdict, line="", critical=None, time_scale=1.0,
                         checks={c: Check(c, "", "FAIL", "") for c in self.failing})


def _started(run: str) -> str:
    try:
        return datetime.strptime(run[:16], "%Y%m%dT%H%M%SZ").isoformat() + "+00:00"
    except ValueError:
        return ""


def state_of(run: RunRecord, notified: str = "") -> State:
    return State(run.dir, run.verdict, tuple(sorted(run.failing)), notified, run.target)


def parse_state(body: str | None) -> State | None:
    """The state line of our earlier comment; None when it has none (older comment) or it is garbled."""
    m = STATE_RE.search(body or "")
    if not m:
        return None
    try:
        data = json.loads(m["json"])
        return State(str(data["run"]), data.get("verdict"), tuple(str(c) for c in data.get("failing", [])),
                     str(data.get("notified", "")), str(data.get("target", "")))
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class Decision:
    notify: bool          # post a new comment (and delete the old one) so subscribers hear of it
    move_labels: bool
    why: str
    changes: list[str] = field(default_factory=list)


def decide(mode: str, before: State | None, now_state: State, now: datetime) -> Decision:
    if mode not in MODES:
        raise ValueError(f"--notify: expected one of {', '.join(MODES)}, got {mode!r}")
    changes = []
    if before is None:
        changes.append("no earlier state (first report on this issue)")
    else:
        if before.verdict != now_state.verdict:
            changes.append(f"verdict {before.verdict or '?'} -> {now_state.verdict or '?'}")
        new, gone = set(now_state.failing) - set(before.failing), set(before.failing) - set(now_state.failing)
        if new:
            changes.append(f"newly failing: {', '.join(sorted(new))}")
        if gone:
            changes.append(f"no longer failing: {', '.join(sorted(gone))}")
    if mode == "always":
        return Decision(True, True, "--notify always", changes)
    if changes:
        return Decision(True, True, "; ".join(changes), changes)
    if mode == "daily" and _older(before.notified if before else "", now):
        return Decision(True, False, f"daily heartbeat (last notification {before.notified or 'unknown'})")
    return Decision(False, False, f"unchanged since {before.run if before else '?'}: comment updated quietly")


def _older(iso: str, now: datetime) -> bool:
    try:
        return now - datetime.fromisoformat(iso) >= HEARTBEAT
    except (ValueError, TypeError):
        return True


def replace_since_section(summary: str, section: list[str]) -> str:
    """Put ``section`` (Markdown lines, the first a "### Since the last run" heading) into the summary,
    replacing the one the run wrote (it may have had no earlier run to compare with)."""
    lines = summary.rstrip("\n").split("\n")
    start = next((i for i, l in enumerate(lines) if l.startswith("### Since the last run")), None)
    end_at = next((i for i, l in enumerate(lines) if l.startswith("Report files:")), len(lines))
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(("### ", "Report files:"))), len(lines))
        lines[start:end] = section
    else:
        at = end_at
        lines[at:at] = section
    return "\n".join(lines) + "\n"


def info(d: Decision) -> dict[str, Any]:
    return {"notify": d.notify, "move_labels": d.move_labels, "why": d.why}
