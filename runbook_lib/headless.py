"""The runbook without notebooks: ``runbook check``, ``runbook plan`` and ``runbook record``."""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from .aio import run_sync
from .environment import open_environment
from .params import load_params
from .render.style import ICONS, STATUS_WORDS
from .render.tables import failures_text
from .results import ResultSet, component_statuses
from .runner import target_running


def diagnose(params_file: str, overrides: Sequence[str]):
    """Gather and evaluate once; returns (params, evidence, results)."""
    from .checks import evaluate_all

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


def plan(params_file: str, overrides: Sequence[str], *, id_only: bool = False) -> int:
    from .remediate import build_plan

    params, ev, results = diagnose(params_file, overrides)
    p = build_plan(results, ev, params)
    if id_only:
        print(p.id)
        return 0
    import pandas as pd

    with pd.option_context("display.max_colwidth", 120, "display.width", 200):
        print(p.table()[["action", "what", "fixes", "risk"]].to_string(index=False))
    print(f"\nPlan {p.id}: {len(p.actions)} actions ({len(p.automatic)} automatic, {len(p.manual)} manual)")
    print(f"Apply it with: runbook run --params {params_file} -p remediation.apply=true -p remediation.confirm={p.id}")
    return 0


def record(scenario: str, out: Path, *, params_file: str = "parameters/sandbox.yaml") -> int:
    """Regenerate recorded evidence from a real sandbox run (dry run, all three phases)."""
    from .runner import run

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
