"""Mutation testing of the core (issue 11, item 6): ``make mutation`` (not part of ``make test``).

Runs mutmut over ``[tool.mutmut] only_mutate`` (checks/, results.py, redact.py,
remediate/apply.py, params.py) in a scratch copy of the working tree, with the fast test
selection from pyproject.toml, then writes the survivors to ``bench/results/mutation-<date>.md``
(one line each, to be killed by a test or explained there).

    python -m bench.mutation                               # everything configured (hours on 2 cores)
    python -m bench.mutation --only runbook_lib/checks/_util.py --only runbook_lib/remediate/apply.py
    python -m bench.mutation --budget-s 1800               # stop after 30 minutes, report what ran
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _scratch_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _restrict(pyproject: Path, only: list[str]) -> None:
    text = pyproject.read_text()
    listed = "only_mutate = [\n" + "".join(f'  "*{p}",\n' for p in only) + "]"
    text = re.sub(r"only_mutate = \[.*?\]", listed, text, count=1, flags=re.S)
    pyproject.write_text(text)


def _mutmut(workdir: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(exe), *args], cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(workdir), "TERM": "dumb"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutation")
    parser.add_argument("--only", action="append", default=[], metavar="PATH", help="mutate only these files")
    parser.add_argument("--budget-s", type=float, default=None, help="stop mutmut after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (mutants/, cache)")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="runbook-mutation-"))
    started = dt.datetime.now(dt.timezone.utc)
    try:
        _scratch_copy(scratch)
        if args.only:
            _restrict(scratch / "pyproject.toml", args.only)
        timed_out = False
        try:
            run = _mutmut(scratch, "run", timeout=args.budget_s)
            log = run.stdout[-4000:] + run.stderr[-4000:]
        except subprocess.TimeoutExpired as exc:
            timed_out, log = True, f"stopped after the {args.budget_s:g} s budget\n" + str(exc.stdout or "")[-2000:]
        results = _mutmut(scratch, "results", "--all", "true", timeout=300)
        lines = [ln.strip() for ln in results.stdout.splitlines() if ":" in ln]
        by_status: dict[str, list[str]] = {}
        for ln in lines:
            name, _, status = ln.rpartition(":")
            by_status.setdefault(status.strip(), []).append(name.strip())
        elapsed = (dt.datetime.now(dt.timezone.utc) - started).total_seconds()
        out = RESULTS / f"mutation-{started:%Y-%m-%d}.md"
        RESULTS.mkdir(parents=True, exist_ok=True)
        scope = ", ".join(args.only) if args.only else "every path in [tool.mutmut] only_mutate"
        body = [f"# Mutation testing, {started:%Y-%m-%d %H:%M} UTC", "",
                f"Scope: {scope}. Tests: [tool.mutmut] pytest_add_cli_args_test_selection. "
                f"Elapsed {elapsed:.0f} s{' (budget reached: partial run)' if timed_out else ''}.", "",
                "| status | mutants |", "|---|---|"]
        body += [f"| {status} | {len(names)} |" for status, names in sorted(by_status.items())]
        body += ["", "## Survivors", ""]
        body += [f"- `{name}`: TODO kill or explain" for name in by_status.get("survived", [])] or ["(none)"]
        body += ["", "<details><summary>mutmut output (tail)</summary>", "", "```", log[-3000:], "```", "</details>", ""]
        out.write_text("\n".join(body))
        print(f"wrote {out}: " + ", ".join(f"{s} {len(n)}" for s, n in sorted(by_status.items())))
        return 0
    finally:
        if args.keep:
            print(f"scratch copy kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
