"""The ``runbook`` command. Exit codes: 0 healthy, 1 unhealthy, 2 the runbook itself failed."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from runbook_lib import redact
from runbook_lib.errors import RunbookError

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
  runbook diff reports/<A> reports/<B>          # what changed between two runs (--json, --markdown)
  runbook history --target sandbox              # verdicts, check-by-run grid, key numbers over runs
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
    plan.add_argument("--json", action="store_true", help="the plan as JSON on stdout (for machines)")

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
    attach.add_argument("--notify", choices=["always", "on-change", "daily"], default="on-change",
                        help="when to post a new comment and move labels: every run, only when the verdict or the "
                        "failing checks change (default), or on change plus a daily heartbeat; the comment is "
                        "updated quietly otherwise")
    attach.add_argument("--previous", metavar="PATH", help="results.json (or report folder) of the previous run, "
                        "e.g. the last CI artifact: for 'since the last run' when the issue shows no state yet; "
                        "empty = none")

    diff = sub.add_parser("diff", help="compare two runs: newly failing, fixed, still failing, numbers that moved",
                          description="Compare run B with the earlier run A (two report folders), or the newest "
                          "completed run of a target with the one N-1 runs before it (--last N).")
    diff.add_argument("runs", nargs="*", metavar="DIR", help="two report folders: A (earlier) and B")
    diff.add_argument("--last", type=int, metavar="N", help="compare the newest completed run with the one N-1 runs before")
    diff.add_argument("--target", metavar="NAME", help="with --last: the target (needed when the folder holds several)")
    diff.add_argument("--reports", default="reports", metavar="DIR", help="with --last: reports folder (default: reports)")
    fmt = diff.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest="format", action="store_const", const="json", help="the comparison as JSON")
    fmt.add_argument("--markdown", dest="format", action="store_const", const="markdown", help="as Markdown")

    history = sub.add_parser("history", help="a target's runs: verdict over time, check-by-run grid, key numbers")
    history.add_argument("--target", metavar="NAME", help="default: every target in the reports folder")
    history.add_argument("--reports", default="reports", metavar="DIR", help="reports folder (default: reports)")
    history.add_argument("--last", type=int, default=20, metavar="N", help="how many runs (default 20)")
    history.add_argument("--json", action="store_true", help="as JSON")
    history.add_argument("--verify", action="store_true",
                         help="re-check every run folder's files (after editing finished runs by hand)")
    from runbook_lib.fleet.cli import add_parser as add_fleet_parser

    add_fleet_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    # platformdirs warns when $XDG_RUNTIME_DIR is set but unusable (not private, missing parent) and
    # then falls back to the platform default by itself: noise for someone reading `runbook check`
    warnings.filterwarnings("ignore", message=r"XDG_RUNTIME_DIR ")
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
    from runbook_lib.render.terminal import closing_lines
    from runbook_lib.run.report import NOTEBOOKS, PHASE_NUMBERS, PHASES
    from runbook_lib.run.runner import run

    phases = PHASES if args.phase == "all" else (PHASE_NUMBERS[args.phase],)
    # a progress bar is for a terminal; in CI logs (not a TTY) the per-phase lines are the progress
    progress = not args.no_progress and sys.stderr.isatty()
    outcome = run(args.params, phases=phases, overrides=args.overrides, out=args.out,
                  progress=progress, echo=lambda s: print(s, file=sys.stderr, flush=True))
    print(f"Report: {outcome.run_dir}")
    if outcome.error:
        _error_line(f"runbook: INCOMPLETE: {outcome.error}")
    if outcome.since_last_run:
        print(outcome.since_last_run, end="")
    print(outcome.verdict_line or "Overall Status: UNKNOWN (no verdict recorded)", flush=True)
    # stdout ends with the verdict line (scripts read it); a person reads on from these two
    for line in closing_lines(outcome.run_dir, [NOTEBOOKS[p] for p in outcome.phases_done]):
        print(line, file=sys.stderr, flush=True)
    return outcome.exit_code


def cmd_check(args) -> int:
    from runbook_lib.run.headless import check

    return check(args.params, args.overrides, detailed=args.detailed_report, as_json=args.json)


def cmd_plan(args) -> int:
    from runbook_lib.run.headless import plan

    return plan(args.params, args.overrides, id_only=args.id_only, as_json=args.json)


def cmd_params(args) -> int:
    from runbook_lib.params import dump_params, load_params

    print(dump_params(load_params(args.params, args.overrides)), end="")
    return 0


def cmd_sandbox(args) -> int:
    from runbook_lib.sandbox import manager

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
    from runbook_lib.sandbox.scenario import describe_scenarios

    for name, description in describe_scenarios():
        print(f"{name:24} {description}")
    return 0


def cmd_record(args) -> int:
    from runbook_lib.run.headless import record

    return record(args.scenario, Path(args.out))


def cmd_attach(args) -> int:
    from runbook_lib.handback.attach import attach

    attach(Path(args.run), repo=args.repo, issue=args.issue, report_url=args.report_url,
           dry_run=args.dry_run, token=None, api_url=None, notify=args.notify,
           previous=Path(args.previous) if args.previous else None)
    return 0


def cmd_diff(args) -> int:
    from runbook_lib.errors import HistoryError
    from runbook_lib.history.diff import diff_folders, diff_last, print_diff

    if args.last is not None and args.runs:
        raise HistoryError("diff: pass two report folders or --last N, not both")
    if args.last is not None:
        cmp = diff_last(Path(args.reports), args.target, args.last)
    elif len(args.runs) == 2:
        cmp = diff_folders(Path(args.runs[0]), Path(args.runs[1]))
    else:
        raise HistoryError(f"diff: expected two report folders (A B) or --last N, got {len(args.runs)} folders")
    print_diff(cmp, args.format or "text", sys.stdout)
    return 0


def cmd_history(args) -> int:
    from runbook_lib.history.diff import print_history

    print_history(Path(args.reports), args.target, last=args.last, as_json=args.json, out=sys.stdout, err=sys.stderr,
                  verify=args.verify)
    return 0


COMMANDS = {"run": cmd_run, "check": cmd_check, "plan": cmd_plan, "params": cmd_params,
            "sandbox": cmd_sandbox, "record": cmd_record, "attach": cmd_attach,
            "diff": cmd_diff, "history": cmd_history}


def cmd_fleet(args) -> int:
    from runbook_lib.fleet.cli import command

    return command(args)


COMMANDS["fleet"] = cmd_fleet

if __name__ == "__main__":
    sys.exit(main())
