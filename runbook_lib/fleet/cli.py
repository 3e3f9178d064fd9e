"""``runbook fleet run|target|rollup|attach|list``: the parser and the command (kept here so the
main CLI only registers it)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from runbook_lib.errors import ParameterError


def add_parser(sub) -> None:
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


def command(args) -> int:
    from runbook_lib import fleet

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
        from runbook_lib.fleet.attach import attach_fleet

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
