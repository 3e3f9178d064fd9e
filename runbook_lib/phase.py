"""What a notebook calls: one ``Phase`` per notebook, four verbs (gather, evaluate, finish, show).

Notebooks stay thin: they narrate, call these, and display what comes back. The same calls work
headless under papermill (``report_dir`` injected) and interactively in JupyterLab (results go to
``reports/interactive/``, shared by the three notebooks so phase 2 finds phase 1's results).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Mapping

from . import report
from .aio import run_sync
from .environment import open_environment
from .evidence import Evidence
from .params import Params, load_params
from .results import ResultSet, Verdict, root_causes

DEFAULT_REPORT_DIR = Path(__file__).resolve().parent.parent / "reports" / "interactive"


class Phase:
    def __init__(
        self,
        name: str,
        params_file: str | Path,
        overrides: Mapping[str, Any] | None = None,
        report_dir: str | Path | None = None,
    ):
        if name not in report.PHASES:
            raise ValueError(f"phase must be one of {report.PHASES}, got {name!r}")
        self.name = name
        self.params: Params = load_params(params_file, dict(overrides or {}))
        self.env = open_environment(self.params)
        self.report_dir = Path(report_dir) if report_dir else DEFAULT_REPORT_DIR
        self.report_dir.mkdir(parents=True, exist_ok=True)
        self.evidence: Evidence | None = None
        self.results: ResultSet | None = None
        from .render.plots import enable_notebook_display

        enable_notebook_display()

    # -- gather -----------------------------------------------------------------------------
    def gather(self, *, golden_path: bool = False, save: bool = True) -> Evidence:
        """Everything at once (API reads, probes, metrics), each with its own deadline."""
        started = time.perf_counter()
        ev = run_sync(self.env.gather(self.name, golden_path=golden_path))
        if save:
            ev.save(self.report_dir / "evidence" / self.name)
        self.evidence = ev
        print(
            f"Gathered {len(ev.api)} API records, {sum(len(v) for v in ev.probes.values())} probe samples, "
            f"{len(ev.metrics)} metric queries from {self.params.target.mode} target "
            f"'{self.params.target.name}' in {time.perf_counter() - started:.1f} s"
            + (f" (time scale {self.params.target.time_scale:g}: sandbox seconds x {1 / self.params.target.time_scale:g} = real seconds)"
               if self.params.target.time_scale != 1 else "")
        )
        return ev

    def probe_again(self, key: str):
        """One probe, run again now (live and sandbox targets); replay shows what was recorded."""
        samples = run_sync(self.env.probe(key, self.evidence))
        from .render.tables import probe_frame

        return probe_frame(samples)

    # -- judge ------------------------------------------------------------------------------
    def evaluate(self, evidence: Evidence | None = None) -> ResultSet:
        from .checks import evaluate_all

        ev = evidence or self.evidence
        if ev is None:
            raise RuntimeError("gather() first: there is no evidence to evaluate")
        self.results = evaluate_all(ev, self.params)
        return self.results

    # -- record -----------------------------------------------------------------------------
    def finish(self, results: ResultSet | None = None, **extra: Any) -> Verdict:
        """Write this phase's results into the report and print the verdict line."""
        results = results or self.results or ResultSet()
        verdict = results.verdict
        fragment = {
            "phase": self.name,
            "verdict": {**verdict.model_dump(), "line": verdict.line, "status": verdict.status},
            "faults": [f.model_dump(mode="json") for f in root_causes(results)],
            "results": results.to_records(),
            "evidence_now": self.evidence.now.isoformat() if self.evidence else None,
            **extra,
        }
        report.write_phase(self.report_dir, self.name, fragment)
        doc = report.merge_results(self.report_dir, self.target_info())
        from .render.summary import write_summary

        write_summary(self.report_dir, doc, self.params)
        if self.name == "remediate":  # a subset of checks: their verdict is not the environment's
            bad = verdict.counts["FAIL"] + verdict.counts["ERROR"]
            print(f"Re-verified {len(results)} checks after applying: {len(results) - bad} pass, {bad} still failing"
                  if len(results) else "Nothing was applied, so nothing was re-verified (phase 3 re-checks everything)")
        else:
            print(verdict.line)
        sys.stdout.flush()
        return verdict

    def target_info(self) -> dict[str, Any]:
        t = self.params.target
        return {"name": t.name, "mode": t.mode, "scenario": t.scenario, "time_scale": t.time_scale,
                "project": self.params.project, "region": self.params.region}

    def previous(self, phase: str) -> dict[str, Any] | None:
        """Another phase's recorded results from this report folder (e.g. phase 1 for the plan)."""
        return report.read_phase(self.report_dir, phase)

    # -- phase 2 ----------------------------------------------------------------------------
    def diagnosis(self) -> tuple[ResultSet, Evidence]:
        """Phase 1's results and evidence from this report, or a fresh diagnosis if there are none."""
        from .results import CheckResult

        recorded = self.previous("diagnose")
        folder = self.report_dir / "evidence" / "diagnose"
        if recorded is not None and (folder / "manifest.json").exists():
            print(f"Using phase 1's results from {self.report_dir.name}/phases/diagnose.json "
                  f"({recorded['verdict']['line']})")
            results = ResultSet(results=[CheckResult.model_validate(r) for r in recorded["results"]])
            return results, Evidence.load(folder)
        print("No phase 1 results in this report folder: diagnosing now.")
        ev = self.gather(save=False)
        return self.evaluate(ev), ev

    def plan(self, diagnosis: tuple[ResultSet, Evidence]):
        from .remediate import build_plan

        results, ev = diagnosis
        plan = build_plan(results, ev, self.params)
        return plan

    def apply(self, plan):
        """Dry run unless ``remediation.apply`` and ``remediation.confirm == plan.id``."""
        from .remediate.apply import apply_plan, check_confirmation

        check_confirmation(plan, self.params)  # refuse a stale or wrong id before anything else
        if not self.params.remediation.apply:
            return run_sync(apply_plan(None, plan, self.params))  # type: ignore[arg-type]
        api = self.env.api()

        async def go():
            async with api:
                return await apply_plan(api, plan, self.params,
                                        audit_file=self.report_dir / "evidence" / "remediate" / "audit.json")

        return run_sync(go())

    def verify(self, plan, applied) -> ResultSet:
        """Re-run every check (nothing cached) and keep the ones the applied actions answer."""
        if applied.mode != "applied" or not applied.changed:
            print("Nothing was changed, so there is nothing to re-verify here; phase 3 re-checks everything.")
            return ResultSet()
        ev = self.gather(save=True)
        everything = self.evaluate(ev)
        wanted = {i for a in plan.actions if a.id in applied.changed for i in a.verify + a.answers}
        return ResultSet(results=[r for r in everything if r.id in wanted])
