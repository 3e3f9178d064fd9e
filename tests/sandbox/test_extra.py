"""The sandbox is the ``runbook[sandbox]`` extra: without it, one line says what to install."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_without_the_extra_the_sandbox_says_install_runbook_sandbox() -> None:
    code = ("import sys; sys.modules['aiohttp'] = None; from runbook_lib.cli import main; "
            "sys.exit(main(['sandbox', 'scenarios']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    assert len(lines) == 1 and "install runbook[sandbox]" in lines[0] and "aiohttp" in lines[0]


def test_the_live_path_imports_without_the_sandbox() -> None:
    code = ("import sys\nfor m in ('aiohttp', 'psycopg', 'googleapiclient'): sys.modules[m] = None\n"
            "import runbook_lib.cli, runbook_lib.gather.collect, runbook_lib.gcp.client\n"
            "assert not any(k.startswith('runbook_lib.sandbox') for k in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
