"""Phase 2: turn failing checks into a plan (playbook.py), and apply a confirmed plan (apply.py)."""
from runbook_lib.remediate.apply import ApplyReport, apply_plan
from runbook_lib.remediate.plan import Action, Plan, build_plan

__all__ = ["Action", "ApplyReport", "Plan", "apply_plan", "build_plan"]
