"""The runbook without notebooks: ``runbook check``, ``runbook plan`` and ``runbook record``."""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from runbook_lib.gather.environment import open_environment, target_running
from runbook_lib.params import load_params
from runbook_lib.render.style import ICONS, STATUS_WORDS
from runbook_lib.render.tables import failures_text
from runbook_lib.results import ResultSet, component_statuses
from runbook_lib.util.aio import run_sync


def diagnose(params_file: str, overrides: Sequence[str]):
    """Gather and evaluate once; returns (params, evidence, results)."""
    from runbook_lib.checks import evaluate_all

    params = load_params(params_file, overrides)
    with target_running(params, Path(params_file), overrides) as effective:
        env = open_environment(effective)
        ev = run_sync(env.gather("diagnose"))
    return effective, ev, evaluate_all(ev, effective)


def check(params_file: str, overrides: Sequence[str], *, detailed: bool, as_json: bool) -> int:
    params, ev, results = diagnose(params_file, overrides)
    verdict = results.verdict
    if as_json:
        print(json.dumps({"verdict": {**verdict.model_dump(), "line": verdict.line},
                          "components": [c.model_dump(mode="json") for c in component_statuses(results)],
                          "results": results.to_records()}, indent=2))
        return verdict.exit_code
    print(f"Target {params.target.name} ({params.target.mode}), gathered in {ev.meta.elapsed_s:.1f} s")
    for c in component_statuses(results):
        ran = c.checks - len(c.skipped)
        print(f"  {ICONS[c.status.value]} {c.component:14} {STATUS_WORDS[c.status.value]:9} {c.passed}/{ran} checks pass"
              + (f", {len(c.skipped)} skipped" if c.skipped else ""))
        if detailed:
            for r in results.for_component(c.component):
                print(f"      {ICONS[r.status.value]} {r.id}: {r.observed}")
    problems = failures_text(ResultSet(results=results.problems()))
    if problems:
        print("\nProblems:\n" + problems)
    print(verdict.line)
    return verdict.exit_code


def plan(params_file: str, overrides: Sequence[str], *, id_only: bool = False, as_json: bool = False) -> int:
    """A dry run: diagnose, build the plan, print it (never applies)."""
    from runbook_lib.remediate import build_plan

    target = load_params(params_file, overrides).target   # bad parameters: one line, before announcing anything
    print(f"Dry run: diagnosing {target.mode} target '{target.name}' to build the remediation plan (nothing is changed)...",
          file=sys.stderr, flush=True)
    params, ev, results = diagnose(params_file, overrides)
    p = build_plan(results, ev, params)
    print(f"Dry run: {results.verdict.line}; plan {p.id}: {len(p.automatic)} automatic, {len(p.manual)} manual actions",
          file=sys.stderr, flush=True)
    if id_only:
        print(p.id)
        return 0
    if as_json:
        print(json.dumps(p.model_dump(mode="json"), indent=2))
        return 0
    print(plan_text(p, width=shutil.get_terminal_size((100, 24)).columns))
    print(f"\nPlan {p.id}: {len(p.actions)} actions ({len(p.automatic)} automatic, {len(p.manual)} manual)")
    print(f"Apply it with: runbook run --params {params_file} -p remediation.apply=true -p remediation.confirm={p.id}")
    return 0


def plan_text(p, *, width: int = 100) -> str:
    """The plan as numbered actions, wrapped to the terminal: what, fixes, command, risk, rollback, verified by."""
    import textwrap

    width = max(60, min(width, 160))
    out = []
    for i, a in enumerate(p.actions, 1):
        out.append(textwrap.fill(f"{i}. {a.title} [{'manual' if a.manual else 'automatic'}: {a.id}]", width,
                                 subsequent_indent="   "))
        fields = [("fixes", ", ".join(a.answers))]
        fields += [("do", a.instructions)] if a.manual else [("gcloud", c.gcloud) for c in a.calls]
        fields += [("risk", a.risk), ("rollback", a.rollback), ("verified by", ", ".join(a.verify))]
        for label, value in fields:
            if value:
                out.append(textwrap.fill(value, width, initial_indent=f"   {label + ':':13}", subsequent_indent=" " * 16,
                                         break_on_hyphens=False, break_long_words=False))
    if p.skipped:
        out.append(f"Left out by remediation.skip: {', '.join(p.skipped)}")
    return "\n".join(out) if out else "No actions: nothing in the playbook applies to the failing checks."


def record(scenario: str, out: Path, *, params_file: str = "parameters/sandbox.yaml") -> int:
    """Regenerate recorded evidence from a real sandbox run (dry run, all three phases)."""
    from runbook_lib.run.runner import run

    with tempfile.TemporaryDirectory(prefix="runbook-record-") as tmp:
        outcome = run(params_file, overrides=[f"target.scenario={scenario}", "remediation.apply=false"],
                      out=tmp, progress=False, echo=lambda s: print(s, file=sys.stderr))
        if outcome.state != "COMPLETE":
            print(f"runbook: recording failed: {outcome.error}", file=sys.stderr)
            return 2
        dest = out / scenario
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(outcome.run_dir / "evidence", dest)
    print(f"Recorded {scenario} into {dest} ({outcome.verdict_line})")
    return 0
