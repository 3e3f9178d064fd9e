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
    return parser


def main(argv: list[str] | None = None) -> int:
    import signal

    args = build_parser().parse_args(argv)
    terminated: list[int] = []
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_like_interrupt(terminated))
    try:
        return COMMANDS[args.command](args)
    except RunbookError as exc:
        _error_line(f"runbook: {redact.text(str(exc))}")
        return exc.exit_code
    except KeyboardInterrupt:
        _error_line("runbook: terminated" if terminated else "runbook: interrupted")
        return 143 if terminated else 130
    finally:
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _terminate_like_interrupt(seen: list[int]):
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` runs: the run's sandbox is stopped, its
    temporary folders removed, the kernel shut down and the report marked INCOMPLETE."""

    def handler(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    return handler


def _error_line(text: str) -> None:
    """One line on stderr, whatever bytes the message holds (an argument that was not UTF-8)."""
    line = " ".join(text.split())
    print(line.encode("utf-8", "backslashreplace").decode("utf-8"), file=sys.stderr)


def cmd_run(args) -> int:
    from .report import PHASES, PHASE_NUMBERS
    from .runner import run

    phases = PHASES if args.phase == "all" else (PHASE_NUMBERS[args.phase],)
    outcome = run(args.params, phases=phases, overrides=args.overrides, out=args.out,
                  progress=not args.no_progress, echo=lambda s: print(s, file=sys.stderr, flush=True))
    print(f"Report: {outcome.run_dir}")
    if outcome.error:
        _error_line(f"runbook: INCOMPLETE: {outcome.error}")
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


COMMANDS = {"run": cmd_run, "check": cmd_check, "plan": cmd_plan, "params": cmd_params,
            "sandbox": cmd_sandbox, "record": cmd_record, "attach": cmd_attach}

if __name__ == "__main__":
    sys.exit(main())
