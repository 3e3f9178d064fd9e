"""How statuses look (icons, words, colours): presentation only; the statuses come from results.py."""
from __future__ import annotations

ICONS = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌", "ERROR": "⛔", "SKIP": "⏭️"}
STATUS_WORDS = {"PASS": "passing", "WARN": "warning", "FAIL": "failing", "ERROR": "could not be checked",
                "SKIP": "skipped"}
COLOURS = {"PASS": "#e6f4ea", "WARN": "#fef7e0", "FAIL": "#fce8e6", "ERROR": "#f3e8fd", "SKIP": "#f1f3f4"}
# a run's or a phase's status (results.RunStatus / PhaseStatus)
RUN_ICONS = {"COMPLETE": "✅", "HEALTHY": "⚠️", "UNHEALTHY": "❌", "NO VERDICT": "❔"}
PHASE_COLOURS = {"HEALTHY": "#137333", "UNHEALTHY": "#c5221f", "APPLIED": "#137333", "DRY RUN": "#1a73e8",
                 "FAILED": "#c5221f", "REFUSED": "#c5221f", "NO PLAN": "#5f6368", "COMPLETE": "#137333"}
