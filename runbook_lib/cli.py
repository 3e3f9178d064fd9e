"""The ``runbook`` command. Exit codes: 0 healthy, 1 unhealthy, 2 the runbook itself failed."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import redact
from .errors import RunbookError

DEFAULT_PARAMS = "parameters/sandbox.yaml"

EPILOG = """\
exit codes: 0 healthy, 1 unhealthy (blocking failures), 2 the runbook failed
            (bad parameters, unreachable target, dead kernel)

examples:
  runbook run                                   # all phases against the sandbox (default)
  runbook run --params parameters/staging.yaml  # live GCP with Application Default Credentials
  runbook run --phase 1 -p cloudsql.probe_samples=30
  runbook plan                                  # show the remediation plan and its id (dry run)
  runbook run -p remediation.apply=true -p remediation.confirm=<plan id>
  runbook check --params parameters/staging.yaml --detailed-report   # no notebooks, for cron
  runbook sandbox up --scenario issue-1278 && runbook sandbox status && runbook sandbox down
  runbook attach --run reports/latest --repo OWNER/NAME --issue 1278 --dry-run
  runbook fleet run --manifest parameters/fleet.example.yaml --parallel 3   # many targets, one roll-up
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runbook",
        description="Diagnose, remediate and hand back the GCP staging environment (incident #1278) "
        "with parameterised notebooks run by papermill into archived reports.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def params_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--params", default=DEFAULT_PARAMS, metavar="FILE",
                       help=f"parameters file (default: {DEFAULT_PARAMS})")
        p.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                       help="override one parameter, e.g. -p cloudsql.probe_samples=20 (repeatable)")

    run = sub.add_parser("run", help="run the phase notebooks with papermill into a report folder",
                         description="Execute the phase notebooks headless into reports/<UTC time>-<target>-<id>/: "
                         "executed notebooks, HTML, results.json, summary.md, evidence/, run.log; "
                         "and refresh reports/index.html.")
    params_args(run)
    run.add_argument("--phase", choices=["1", "2", "3", "all"], default="all",
                     help="1 diagnose, 2 remediate, 3 validate & hand back, or all (default)")
    run.add_argument("--out", default="reports", metavar="DIR", help="reports folder (default: reports)")
    run.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")

    check = sub.add_parser("check", help="the diagnosis without notebooks (terminal, cron)",
                           description="Gather and evaluate every check, print each component and the verdict line.")
    params_args(check)
    check.add_argument("--detailed-report", action="store_true", help="every check, not only the problems")
    check.add_argument("--json", action="store_true", help="results as JSON on stdout")

    plan = sub.add_parser("plan", help="diagnose and print the remediation plan and its id (never applies)")
    params_args(plan)
    plan.add_argument("--id-only", action="store_true", help="print only the plan id (for scripts)")

    params = sub.add_parser("params", help="validate a parameters file and print the effective values")
    params_args(params)

    sandbox = sub.add_parser("sandbox", help="the local twin of staging: up, status, down, scenarios")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    up = sandbox_sub.add_parser("up", help="start a sandbox and write parameters that target it")
    up.add_argument("--scenario", default="issue-1278", help="scenario name (see: runbook sandbox scenarios)")
    up.add_argument("--params", default=DEFAULT_PARAMS, metavar="FILE", help="names and thresholds to use")
    up.add_argument("--workdir", default=".sandbox", metavar="DIR")
    for name, text in (("status", "show the running sandbox"), ("down", "stop the sandbox, leave nothing running")):
        s = sandbox_sub.add_parser(name, help=text)
        s.add_argument("--workdir", default=".sandbox", metavar="DIR")
    sandbox_sub.add_parser("scenarios", help="list the scenarios")

    record = sub.add_parser("record", help="regenerate examples/evidence/<scenario> from a real sandbox run")
    record.add_argument("--scenario", default="issue-1278")
    record.add_argument("--out", default="examples/evidence", metavar="DIR")

    attach = sub.add_parser("attach", help="post a run's summary on the tracking GitHub issue",
                            description="Post (or update) the summary as an issue comment and move labels. "
                            "Token from GITHUB_TOKEN; GITHUB_API_URL is honoured.")
    attach.add_argument("--run", required=True, metavar="DIR", help="report folder (e.g. reports/latest)")
    attach.add_argument("--repo", metavar="OWNER/NAME", help="default: handback.repo of the run's parameters")
    attach.add_argument("--issue", type=int, metavar="N", help="default: handback.issue of the run's parameters")
    attach.add_argument("--report-url", metavar="URL", help="link to the full report (e.g. the CI artifact)")
    attach.add_argument("--dry-run", action="store_true", help="print the requests instead of sending them")
    add_fleet_parser(sub)
    return parser


def add_fleet_parser(sub) -> None:
    fleet = sub.add_parser("fleet", help="many targets from a manifest: each an ordinary run, one roll-up",
                           description="Run every target of a fleet manifest as its own `runbook run` and write "
                           "fleet-<id>/fleet.{json,md,html} in the reports folder. Exit 0 every target healthy, "
                           "1 any unhealthy, 2 the runbook failed for any.")
    fsub = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")

    def common(p, *, phase: bool = True) -> None:
        p.add_argument("--manifest", required=True, metavar="FILE", help="fleet manifest (targets: name, params, overrides)")
        p.add_argument("--out", default="reports", metavar="DIR", help="reports folder (default: reports)")
        if phase:
            p.add_argument("--phase", choices=["1", "2", "3", "all"], default="all", help="as in `runbook run`")
            p.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                           help="override one parameter in every target (repeatable)")

    frun = fsub.add_parser("run", help="every target on this machine, at most N at once, then the roll-up")
    common(frun)
    frun.add_argument("--parallel", type=int, default=2, metavar="N", help="targets at once (default: 2)")
    target = fsub.add_parser("target", help="the targets of one distributed task (Airflow, Cloud Run Jobs, CI)")
    common(target)
    target.add_argument("--fleet-id", metavar="ID", help="the fleet folder's id, the same for every task of one fleet "
                        "(default on Cloud Run Jobs: CLOUD_RUN_EXECUTION)")
    pick = target.add_mutually_exclusive_group(required=True)
    pick.add_argument("--name", action="append", default=[], help="target name (repeatable)")
    pick.add_argument("--index", type=int, action="append", default=[], help="target index in the manifest, from 0")
    pick.add_argument("--cloud-run-task", action="store_true",
                      help="the targets of this Cloud Run Jobs task: CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT")
    target.add_argument("--rollup-when-complete", action="store_true",
                        help="build the roll-up when every target of the fleet has recorded its outcome")
    target.add_argument("--unhealthy-ok", action="store_true",
                        help="exit 0 when the runbook ran, healthy or not (the roll-up carries the verdict); 2 stays 2")
    roll = fsub.add_parser("rollup", help="the roll-up from what the targets of a fleet id recorded")
    common(roll, phase=False)
    roll.add_argument("--fleet-id", required=True, metavar="ID")
    post = fsub.add_parser("attach", help="post a fleet roll-up as one (updated) comment on the tracking issue")
    post.add_argument("--fleet", required=True, metavar="DIR", help="the fleet folder (e.g. reports/fleet-latest)")
    post.add_argument("--repo", required=True, metavar="OWNER/NAME")
    post.add_argument("--issue", required=True, type=int, metavar="N")
    post.add_argument("--report-url", metavar="URL", help="link to the full reports (e.g. the CI artifacts)")
    post.add_argument("--dry-run", action="store_true", help="say what would be posted, send nothing")
    lst = fsub.add_parser("list", help="validate the manifest and list its targets")
    lst.add_argument("--manifest", required=True, metavar="FILE")
    shape = lst.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="the targets as JSON on stdout (an Airflow mapping)")
    shape.add_argument("--names", action="store_true", help="a JSON list of the target names (a CI matrix)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except RunbookError as exc:
        print(f"runbook: {redact.text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("runbook: interrupted", file=sys.stderr)
        return 130


def cmd_run(args) -> int:
    from .report import PHASES, PHASE_NUMBERS
    from .runner import run

    phases = PHASES if args.phase == "all" else (PHASE_NUMBERS[args.phase],)
    outcome = run(args.params, phases=phases, overrides=args.overrides, out=args.out,
                  progress=not args.no_progress, echo=lambda s: print(s, file=sys.stderr, flush=True))
    print(f"Report: {outcome.run_dir}")
    if outcome.error:
        print(f"runbook: INCOMPLETE: {outcome.error}", file=sys.stderr)
    print(outcome.verdict_line or "Overall Status: UNKNOWN (no verdict recorded)")
    return outcome.exit_code


def cmd_check(args) -> int:
    from .headless import check

    return check(args.params, args.overrides, detailed=args.detailed_report, as_json=args.json)


def cmd_plan(args) -> int:
    from .headless import plan

    return plan(args.params, args.overrides, id_only=args.id_only)


def cmd_params(args) -> int:
    from .params import dump_params, load_params

    print(dump_params(load_params(args.params, args.overrides)), end="")
    return 0


def cmd_sandbox(args) -> int:
    from .sandbox import manager

    if args.sandbox_command == "up":
        info = manager.up(args.params, args.scenario, workdir=args.workdir)
        print(json.dumps(info, indent=2, default=str))
        print(f"Parameters that target it: {Path(args.workdir) / 'params.yaml'}")
        return 0
    if args.sandbox_command == "status":
        print(json.dumps(manager.status(args.workdir), indent=2, default=str))
        return 0
    if args.sandbox_command == "down":
        manager.down(args.workdir)
        print("sandbox stopped")
        return 0
    from .sandbox.scenario import describe_scenarios

    for name, description in describe_scenarios():
        print(f"{name:24} {description}")
    return 0


def cmd_record(args) -> int:
    from .headless import record

    return record(args.scenario, Path(args.out))


def cmd_attach(args) -> int:
    from .attach import attach

    attach(Path(args.run), repo=args.repo, issue=args.issue, report_url=args.report_url,
           dry_run=args.dry_run, token=None, api_url=None)
    return 0


def cmd_fleet(args) -> int:
    import os

    from . import fleet
    from .errors import ParameterError

    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731  (progress on stderr, results on stdout)
    if args.fleet_command == "list":
        loaded = fleet.load_manifest(args.manifest)
        rows = [t.describe() for t in loaded.targets]
        if args.names:
            print(json.dumps([r["name"] for r in rows]))
        elif args.json:
            print(json.dumps({"targets": rows}))
        else:
            for r in rows:
                print(f"{r['index']:3}  {r['name']:24} {r['mode']:8} {r['params']}")
        return 0
    if args.fleet_command == "attach":
        from .fleet.attach import attach_fleet

        attach_fleet(Path(args.fleet), repo=args.repo, issue=args.issue, report_url=args.report_url,
                     dry_run=args.dry_run)
        return 0
    if args.fleet_command == "run":
        if args.parallel < 1:
            raise ParameterError("--parallel", str(args.parallel), "expected at least 1")
        doc = fleet.run(args.manifest, parallel=args.parallel, phase=args.phase, out=args.out,
                        overrides=args.overrides, echo=say)
    elif args.fleet_command == "rollup":
        doc = fleet.rollup(args.manifest, fleet_id=args.fleet_id, out=args.out)
    else:
        task = None
        fleet_id = args.fleet_id
        if args.cloud_run_task:
            try:
                task = (int(os.environ.get("CLOUD_RUN_TASK_INDEX", "0")), int(os.environ.get("CLOUD_RUN_TASK_COUNT", "1")))
            except ValueError:
                raise ParameterError("CLOUD_RUN_TASK_INDEX/COUNT", "(environment)", "expected integers") from None
            fleet_id = fleet_id or os.environ.get("CLOUD_RUN_EXECUTION")
        if not fleet_id:
            raise ParameterError("--fleet-id", "(missing)", "expected the fleet id shared by every task of this fleet")
        runs, doc = fleet.run_some(args.manifest, fleet_id=fleet_id, names=args.name, indexes=args.index, task=task,
                                   phase=args.phase, out=args.out, overrides=args.overrides,
                                   rollup_when_complete=args.rollup_when_complete, echo=say)
        for r in runs:
            print(f"Target {r.name}: exit {r.exit_code}, report {r.run_dir or 'none'}")
        codes = [r.exit_code if r.exit_code in (0, 1) else 2 for r in runs] or [0]
        code = max(codes)
        if doc is not None:
            print(f"Fleet: {Path(args.out).resolve() / ('fleet-' + fleet_id) / 'fleet.html'}")
            print(doc["line"])
        return 0 if (args.unhealthy_ok and code == 1) else code
    print(f"Fleet: {Path(args.out).resolve() / ('fleet-' + doc['fleet_id']) / 'fleet.html'}")
    print(doc["line"])
    return doc["exit_code"]


COMMANDS = {"fleet": cmd_fleet, "run": cmd_run, "check": cmd_check, "plan": cmd_plan, "params": cmd_params,
            "sandbox": cmd_sandbox, "record": cmd_record, "attach": cmd_attach}

if __name__ == "__main__":
    sys.exit(main())
