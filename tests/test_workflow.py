"""The CI recipe: it parses, it is triggered by hand and nightly, every `runbook` command it runs
exists in the CLI, and its shell steps collect the report even when the runbook exits 1."""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "runbook.yml"
RUNBOOK = re.compile(r"(?:^|\s)(?:\S*/)?runbook\s+(?P<rest>.*)$")
SHELL_OPERATOR = re.compile(r"^[();<>|&]+$")
SHELL_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
# What the workflow's variables hold at run time, so typed options (--issue N) parse.
SAMPLE_VALUES = {"ISSUE": "1278", "PARAMS": "parameters/sandbox.yaml", "GITHUB_REPOSITORY": "acme/app",
                 "NOTIFY": "on-change"}


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def triggers(workflow: dict) -> dict:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    return workflow.get("on", workflow.get(True)) or {}


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def step_named(workflow: dict, name: str) -> dict:
    return next(step for step in steps(workflow) if step.get("name") == name)


def runbook_commands(workflow: dict) -> list[list[str]]:
    """argv (after `runbook`) of every runbook invocation in the workflow's shell steps."""
    commands = []
    for step in steps(workflow):
        script = re.sub(r"\\\n\s*", " ", step.get("run", ""))
        for line in script.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("#"):
                continue
            match = RUNBOOK.search(line)
            if match:
                commands.append(_argv(match["rest"]))
    return commands


def _argv(shell_text: str) -> list[str]:
    lexer = shlex.shlex(shell_text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    argv: list[str] = []
    for token in lexer:
        if SHELL_OPERATOR.match(token):
            if token.startswith((">", "<")) and argv and argv[-1].isdigit():
                argv.pop()  # the "2" of "2>&1"
            break
        argv.append(token)
    return argv


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_workflow_parses_with_manual_and_nightly_triggers():
    workflow = load()
    on = triggers(workflow)
    assert set(on) >= {"workflow_dispatch", "schedule"}
    inputs = on["workflow_dispatch"]["inputs"]
    assert inputs["params"]["default"] == "parameters/sandbox.yaml"
    assert inputs["apply"]["type"] == "boolean" and inputs["apply"]["default"] is False
    assert "issue" in inputs
    assert on["schedule"][0]["cron"].count(" ") == 4
    assert workflow["permissions"] == {}                                    # nothing at the top
    assert workflow["jobs"]["runbook"]["permissions"]["issues"] == "write"  # per job


def test_workflow_steps_install_run_upload_attach_and_fail_last():
    workflow = load()
    uses = [step.get("uses", "") for step in steps(workflow)]
    pinned = [u for u in uses if u]
    assert pinned and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in pinned), pinned  # by SHA
    assert any(u.startswith("actions/checkout@") for u in uses) and any(u.startswith("actions/upload-artifact@") for u in uses)
    checkout = next(step for step in steps(workflow) if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["persist-credentials"] is False
    setup = next(step for step in steps(workflow) if step.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == "3.11"
    assert any(step.get("run", "").strip() == "make install" for step in steps(workflow))
    upload = step_named(workflow, "Upload the report")
    assert "reports/" in upload["with"]["path"] and upload["if"].startswith("always()")
    attach = step_named(workflow, "Post the summary on the tracking issue")
    assert attach["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    last = steps(workflow)[-1]
    assert last["if"] == "always()" and "exit" in last["run"]
    # No ${{ }} expression is spliced into shell text (script injection): inputs arrive as env.
    assert all("${{" not in step.get("run", "") for step in steps(workflow))


def test_every_runbook_command_exists_in_the_cli():
    from runbook_lib.cli import build_parser

    parser = build_parser()
    commands = runbook_commands(load())
    assert sorted({argv[0] for argv in commands}) == ["attach", "fleet", "run"]
    subs = subparsers(parser)
    for argv in commands:
        sub = subs.get(argv[0])
        assert sub is not None, f"`runbook {argv[0]}` is not a CLI subcommand ({', '.join(subs)})"
        if argv[0] == "fleet":  # `runbook fleet ACTION ...`: the options belong to the action
            sub = subparsers(sub).get(argv[1])
            assert sub is not None, f"`runbook fleet {argv[1]}` is not a fleet action"
        known = set(sub._option_string_actions)
        # Exact names only: argparse would also accept an abbreviation such as --rep.
        flags = [token.split("=", 1)[0] for token in argv[1:] if token.startswith("-")]
        unknown = [flag for flag in flags if flag not in known]
        assert not unknown, f"`runbook {argv[0]}` has no option {', '.join(unknown)}"
        sample = [SHELL_VARIABLE.sub(lambda m: SAMPLE_VALUES.get(m[1], "sample"), token) for token in argv]
        try:
            parser.parse_args(sample)
        except SystemExit as exc:
            pytest.fail(f"`runbook {shlex.join(argv)}` does not parse (exit {exc.code})")


def test_run_and_attach_command_lines_carry_the_needed_flags():
    commands = {argv[0]: argv for argv in runbook_commands(load())}
    run, attach = commands["run"], commands["attach"]
    assert run[run.index("--params") + 1] == "$PARAMS" and run[run.index("--out") + 1] == "reports"
    for flag in ("--run", "--repo", "--issue", "--report-url"):
        assert flag in attach
    assert attach[attach.index("--repo") + 1] == "$GITHUB_REPOSITORY"


# --- the shell steps, run by bash as GitHub runs them, with a stand-in runbook ----------------

STUB = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$RUNBOOK_ARGS"
if [ "$1" = run ]; then
  mkdir -p reports/20250101T000000Z-sandbox
  echo "# Staging: UNHEALTHY" > reports/20250101T000000Z-sandbox/summary.md
  echo "Overall Status: UNHEALTHY, Critical Failures: 2"
  echo "Report: reports/20250101T000000Z-sandbox"
fi
exit "${RUNBOOK_STUB_EXIT:-0}"
"""


@pytest.fixture
def workspace(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash is needed to run the workflow's shell steps")
    stub = tmp_path / ".venv" / "bin" / "runbook"
    stub.parent.mkdir(parents=True)
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def run_step(workspace: Path, step: dict, **env: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    outputs = workspace / "github_output"
    outputs.write_text("")
    full_env = {
        "PATH": os.environ["PATH"], "HOME": str(workspace), "RUNNER_TEMP": str(workspace),
        "GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(workspace / "step_summary.md"),
        "RUNBOOK_ARGS": str(workspace / "args"), "PARAMS": "parameters/sandbox.yaml",
        "APPLY": "false", "CONFIRM": "", **env,
    }
    script = workspace / "step.sh"
    script.write_text(step["run"])
    # GitHub's default shell for run steps: bash --noprofile --norc -eo pipefail {0}
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=workspace,
                          env=full_env, capture_output=True, text=True, timeout=30)
    parsed = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
    return done, parsed


def test_an_unhealthy_run_still_yields_its_report_folder_and_exit_code(workspace):
    workflow = load()
    done, outputs = run_step(workspace, step_named(workflow, "Run the runbook"), RUNBOOK_STUB_EXIT="1")

    assert done.returncode == 0, done.stderr
    assert outputs == {"exit_code": "1", "run_dir": "reports/20250101T000000Z-sandbox"}
    assert (workspace / "args").read_text().splitlines() == [
        "run", "--params", "parameters/sandbox.yaml", "--out", "reports",
        "-p", "remediation.apply=false", "-p", "remediation.confirm=''",
    ]

    done, _ = run_step(workspace, step_named(workflow, "Add the summary to the job page"),
                       RUN_DIR=outputs["run_dir"])
    assert (workspace / "step_summary.md").read_text() == "# Staging: UNHEALTHY\n"

    done, _ = run_step(workspace, step_named(workflow, "Post the summary on the tracking issue"),
                       RUN_DIR=outputs["run_dir"], GITHUB_REPOSITORY="acme/app", ISSUE="1278",
                       REPORT_URL="https://github.com/acme/app/actions/runs/1", NOTIFY="on-change",
                       PREVIOUS="prev/runbook-report-1-1/20241231T000000Z-sandbox-abcdef/results.json")
    assert done.returncode == 0, done.stderr
    assert (workspace / "args").read_text().splitlines() == [
        "attach", "--run", "reports/20250101T000000Z-sandbox", "--repo", "acme/app", "--issue", "1278",
        "--report-url", "https://github.com/acme/app/actions/runs/1", "--notify", "on-change",
        "--previous", "prev/runbook-report-1-1/20241231T000000Z-sandbox-abcdef/results.json",
    ]

    done, _ = run_step(workspace, steps(workflow)[-1], RUNBOOK_EXIT=outputs["exit_code"])
    assert done.returncode == 1


def test_apply_passes_the_confirmation_and_a_bad_one_is_refused(workspace):
    step = step_named(load(), "Run the runbook")
    done, outputs = run_step(workspace, step, APPLY="true", CONFIRM="a1b2c3d4e5f6")
    assert outputs["exit_code"] == "0"
    assert (workspace / "args").read_text().splitlines()[-3:] == [
        "remediation.apply=true", "-p", "remediation.confirm='a1b2c3d4e5f6'",
    ]

    (workspace / "args").unlink()
    done, outputs = run_step(workspace, step, APPLY="true", CONFIRM="x'; rm -rf /")
    assert outputs == {"exit_code": "2", "run_dir": ""}
    assert not (workspace / "args").exists()  # the runbook was never started
    assert "confirm must be the plan id" in done.stdout
