"""The remediation plan: actions with the exact API requests, gcloud equivalents, risk and rollback.

The plan id is a hash of the target and the actions' requests (never secret values), so the id a
person confirms after a dry run stops matching the moment the environment or the plan changes.
"""
from __future__ import annotations

import hashlib
import json
from typing import Iterable

import pandas as pd
from pydantic import BaseModel, Field

from runbook_lib.evidence import Evidence
from runbook_lib.gcp.api import ApiCall
from runbook_lib.params import Params
from runbook_lib.results import CheckResult, Status


class Read(BaseModel):
    """A resource to read before and after an action (for idempotency and the audit log)."""

    api: str
    path: str


class Action(BaseModel):
    id: str
    kind: str                      # its "already done?" / "apply" behaviour (remediate.kinds); "manual" for people
    component: str
    title: str
    answers: list[str]             # failing check ids this action fixes
    calls: list[ApiCall] = Field(default_factory=list)
    reads: list[Read] = Field(default_factory=list)
    risk: str = "low"
    rollback: str = ""
    verify: list[str] = Field(default_factory=list)
    instructions: str = ""         # for manual steps: exactly what a person does
    secret_name: str | None = None  # a secret whose value a person supplies (name only)
    change: dict = Field(default_factory=dict)  # a declarative change the kind applies to fresh state (names, numbers)

    @property
    def manual(self) -> bool:
        return self.kind == "manual"


class Plan(BaseModel):
    id: str
    target: str
    project: str
    actions: list[Action]
    skipped: list[str] = Field(default_factory=list)

    @property
    def automatic(self) -> list[Action]:
        return [a for a in self.actions if not a.manual]

    @property
    def manual(self) -> list[Action]:
        return [a for a in self.actions if a.manual]

    def table(self) -> pd.DataFrame:
        rows = []
        for a in self.actions:
            rows.append({
                "action": a.id, "what": a.title, "fixes": ", ".join(a.answers),
                "how": "\n".join(c.gcloud for c in a.calls) if a.calls else f"MANUAL: {a.instructions}",
                "API request": "\n".join(f"{c.method} {c.api}:{c.path}" + (f"?{_q(c.query)}" if c.query else "")
                                         + (f" {json.dumps(c.body, sort_keys=True)}" if c.body else "") for c in a.calls),
                "risk": a.risk, "rollback": a.rollback, "verified by": ", ".join(a.verify),
            })
        return pd.DataFrame(rows, columns=["action", "what", "fixes", "how", "API request", "risk", "rollback", "verified by"])


def _q(query: dict) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted(query.items()))


def plan_id(target: str, project: str, actions: Iterable[Action]) -> str:
    canonical = {
        "target": target, "project": project,
        "actions": [{"id": a.id, "calls": [c.model_dump(mode="json", exclude={"description"}) for c in a.calls],
                     "instructions": a.instructions, **({"change": a.change} if a.change else {})} for a in actions],
    }
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:12]


def build_plan(results: Iterable[CheckResult], ev: Evidence, params: Params) -> Plan:
    """One action per failing check (several checks may share one action), following the playbook."""
    from runbook_lib.remediate.playbook import RULES

    failing = {r.id: r for r in results if r.status in (Status.FAIL, Status.ERROR)}
    actions: list[Action] = []
    for rule in RULES:
        for action in rule(failing, ev, params):
            if action.id not in {a.id for a in actions}:
                actions.append(action)
    skipped = [a.id for a in actions if a.id in params.remediation.skip]
    actions = [a for a in actions if a.id not in params.remediation.skip]
    return Plan(id=plan_id(params.target.name, params.project, actions), target=params.target.name,
                project=params.project, actions=actions, skipped=skipped)
