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

from runbook_lib.run import report
from runbook_lib.util.aio import run_sync
from runbook_lib.gather.environment import open_environment
from runbook_lib.evidence import Evidence
from runbook_lib.params import Params, load_params
from runbook_lib.results import ResultSet, Verdict, phase_status, root_causes, run_status

# overrides that only change how evidence is gathered (no effect when replaying recorded evidence)
GATHER_ONLY = ("cloudsql.probe_samples", "cloudsql.probe_concurrency", "golden_path.requests", "deadlines.",
               "monitoring.", "endpoints.", "connectivity.")
# the views a notebook displayed, per phase name, for this kernel only (see Phase.refresh)
_VIEWS: dict[str, dict[str, tuple[str, tuple, dict]]] = {}

DEFAULT_REPORT_DIR = Path(__file__).resolve().parents[2] / "reports" / "interactive"  # repository root


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
        self.fragment: dict[str, Any] | None = None
        self.diagnosis_plan = None
        self.remediation_plan = None
        self.applied = None
        self.verification: ResultSet | None = None
        self._note_ineffective_overrides(overrides or {})
        from runbook_lib.render.plots import enable_notebook_display

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
        from runbook_lib.render.tables import probe_frame

        return probe_frame(samples).style.hide(axis="index")  # no 0..N index column

    # -- judge ------------------------------------------------------------------------------
    def evaluate(self, evidence: Evidence | None = None) -> ResultSet:
        from runbook_lib.checks import evaluate_all

        ev = evidence or self.evidence
        if ev is None:
            raise RuntimeError("gather() first: there is no evidence to evaluate")
        self.results = evaluate_all(ev, self.params)
        return self.results

    # -- record -----------------------------------------------------------------------------
    def finish(self, results: ResultSet | None = None, *, quiet: bool = False, **extra: Any) -> Verdict:
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
        # the phase's status, decided once by the results model; every view renders this
        fragment["status"] = phase_status(fragment).model_dump(mode="json")
        self.fragment = fragment
        report.write_phase(self.report_dir, self.name, fragment)
        doc = report.merge_results(self.report_dir, self.target_info())
        from runbook_lib.render.summary import write_summary

        write_summary(self.report_dir, doc, self.params)
        if quiet:
            return verdict
        if self.name == "remediate":  # a subset of checks: their verdict is not the environment's
            bad = verdict.counts["FAIL"] + verdict.counts["ERROR"]
            print(f"Re-verified {len(results)} checks after applying: {len(results) - bad} pass, {bad} still failing"
                  if len(results) else "Nothing was applied, so nothing was re-verified (phase 3 re-checks everything)")
        else:
            print(verdict.line)
        sys.stdout.flush()
        return verdict

    # -- notebook views -------------------------------------------------------------------
    # Every view is displayed with a stable display id and remembered (per phase name, for this
    # kernel), so re-running the cell that builds the phase (``run``) refreshes every view below
    # it in place: change ``overrides``, re-run that one cell, and the page follows.
    def run(self, *, golden_path: bool = False) -> None:
        """Gather, evaluate, record (phases 1 and 3), then show the verdict banner and refresh the views."""
        ev = self.gather(golden_path=golden_path)
        results = self.evaluate(ev)
        if self.name == "diagnose":
            self.diagnosis_plan = self.plan((results, ev))  # the fix for each root cause, shown now
        self.finish(results, quiet=True,
                    **({"plan": self.diagnosis_plan.model_dump(mode="json")} if self.diagnosis_plan else {}))
        self._save_key_plot()
        self.banner()
        self.refresh()

    def _save_key_plot(self) -> None:
        """The plot the issue comment shows (plots/<phase>-db_latency.png in the report folder)."""
        from runbook_lib.render.plots import db_latency

        folder = self.report_dir / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        db_latency(self.evidence, self.params).savefig(folder / f"{self.name}-db_latency.png", dpi=90)

    def remediate(self) -> None:
        """Phase 2 in one call: phase 1's results, the plan, apply (or dry run), re-verify, record; then the banner."""
        diagnosis = self.diagnosis()
        self.remediation_plan = self.plan(diagnosis)
        self.applied = self.apply(self.remediation_plan)
        self.verification = self.verify(self.remediation_plan, self.applied)
        self.results = self.verification
        self.finish(self.verification, quiet=True, plan=self.remediation_plan.model_dump(mode="json"),
                    applied=self.applied.mode == "applied", apply_report=self.applied.model_dump(mode="json"))
        self.banner()
        self.refresh()

    def print_plan(self) -> None:
        """The plan's id and size (checked by nbval), and how to apply it."""
        p = self.remediation_plan
        print(f"Plan {p.id}: {len(p.actions)} actions ({len(p.automatic)} automatic, {len(p.manual)} manual)")

    def plan_view(self) -> None:
        self._view("plan_view")

    def audit_view(self) -> None:
        self._view("audit_view")

    def banner(self) -> None:
        self._view("banner")

    def what_to_do(self) -> None:
        self._view("what_to_do")

    def show(self, component: str = "") -> None:
        """One component's checks (failing open, passing collapsed); no component: every check of this phase."""
        self._view("show", component)

    def plot(self, name: str, **options: Any) -> None:
        self._view("plot", name, **options)

    def evidence_links(self) -> None:
        self._view("evidence_links")

    def show_others(self) -> None:
        """Components no section above showed (checks added since the notebook was written)."""
        self._view("others")

    def served_certificates(self) -> None:
        """What each domain's TLS endpoint actually presented."""
        self._view("served_certificates")

    def print_verdict(self) -> None:
        """The incident health check's line (checked by nbval)."""
        print(self.results.verdict.line if self.results is not None else "no results: run the phase cell first")

    def refresh(self) -> None:
        from IPython.display import update_display

        for display_id, (view, args, options) in list(_VIEWS.get(self.name, {}).items()):
            if view != "banner":
                update_display(self._render(view, *args, **options), display_id=display_id)

    def _view(self, view: str, *args: Any, **options: Any) -> None:
        from IPython.display import display

        display_id = "-".join(["runbook", self.name, view, *map(str, args), *map(str, sorted(options.items()))])
        _VIEWS.setdefault(self.name, {})[display_id] = (view, args, options)
        display(self._render(view, *args, **options), display_id=display_id)

    def _render(self, view: str, *args: Any, **options: Any):
        from IPython.display import HTML

        from runbook_lib.render import page, plots

        if self.results is None:
            return HTML("<p><i>stale: run the phase cell above first</i></p>")
        frag = self.fragment or {}
        if view == "banner":
            st = phase_status(frag)
            return HTML(page.banner(st, target=self.target_info(), evidence_now=frag.get("evidence_now"),
                                    counts=self.results.verdict.counts))
        if view == "what_to_do":
            from runbook_lib.render.summary import fixes_for

            records = {r["id"]: r for r in frag.get("results", [])}
            plan = frag.get("plan")
            fixes = {f["component"]: fixes_for(f["checks"], plan, records) for f in frag.get("faults", [])}
            status = run_status({self.name: frag})
            return HTML(page.todo(frag.get("faults", []), fixes, records, healthy=self.results.verdict.healthy,
                                  open_items=[i for i in status.open_items if i.kind != "failing"]))
        if view == "show":
            if not args[0]:
                return HTML(page.verification(self.results))
            return HTML(page.component_section(self.results, args[0]))
        if view == "others":
            shown = {a[0] for v, a, _ in _VIEWS.get(self.name, {}).values() if v == "show" and a}
            rest = [r for r in self.results if r.component not in shown]
            if not rest:
                return HTML("<p>Every component's checks are shown above.</p>")
            return HTML(page.verification(rest))
        if view == "served_certificates":
            from runbook_lib.render.tables import served_certificates

            return served_certificates(self.evidence).style.hide(axis="index")
        if view == "plan_view":
            return HTML(page.plan_view(self.remediation_plan))
        if view == "audit_view":
            return HTML(page.audit_view(self.applied))
        if view == "evidence_links":
            ev = self.evidence
            keys = [*ev.api, *ev.probes, *ev.metrics] if ev else []
            return HTML(page.evidence_links(self.name, keys))
        if view == "plot":
            name = args[0]
            if name == "db_latency":
                return plots.db_latency(self.evidence, self.params)
            if name == "http_phases":
                return plots.http_phases(self.evidence)
            if name == "monitoring":
                return plots.monitoring(self.evidence, self.params, **options)
            if name == "golden_waterfall":
                from runbook_lib.gather.golden_path import waterfall_steps

                return plots.golden_waterfall(waterfall_steps(self.evidence), time_scale=self.evidence.meta.time_scale)
            raise ValueError(f"unknown plot {name!r}")
        raise ValueError(f"unknown view {view!r}")

    def _note_ineffective_overrides(self, overrides: Mapping[str, Any]) -> None:
        """On replay nothing is gathered: say so for an override that only changes gathering."""
        if self.params.target.mode != "replay":
            return
        for key in overrides:
            if key.startswith(GATHER_ONLY):
                print(f"Note: override {key}={overrides[key]!r} has no effect on a replay target: replay shows the "
                      f"recorded evidence exactly as it was gathered (point params_file at a live or sandbox target to re-sample).")

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
        from runbook_lib.results import CheckResult

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
        from runbook_lib.remediate import build_plan

        results, ev = diagnosis
        plan = build_plan(results, ev, self.params)
        return plan

    def apply(self, plan):
        """Dry run unless ``remediation.apply`` and ``remediation.confirm == plan.id``."""
        from runbook_lib.remediate.apply import apply_plan, check_confirmation

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
