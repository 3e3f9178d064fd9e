"""Fixtures for the sandbox tests. Data plane: one real PostgreSQL per session, a local CA, a fake
``DataPlaneView`` whose answers a test sets directly. Control plane: an asyncio loop in a thread,
and ``sandbox``: a real sandbox process (``manager.running``), issue-1278 unless parametrized
indirectly with another scenario; yields ``RunningSandbox`` (info, effective Params, workdir).
Their helpers (``FakeView``, ``sandbox_params``, ...) are in ``kit.py``."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from runbook_lib.params import dump_params
from runbook_lib.sandbox.manager import RunningSandbox, running
from runbook_lib.sandbox.pki import LocalCA
from runbook_lib.sandbox.postgres import PostgresServer

from .kit import PG_APP_DB, PG_APP_PASSWORD, PG_APP_USER, FakeView, LoopThread, sandbox_params


@pytest.fixture
def fake_view() -> FakeView:
    return FakeView()


@pytest.fixture(scope="session")
def dp_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA(tmp_path_factory.mktemp("dataplane-ca"))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory, dp_ca: LocalCA) -> Iterator[PostgresServer]:
    """A TLS-enabled PostgreSQL with an ``app`` role (SCRAM password) owning database ``app``."""
    cert, key = dp_ca.issue("pg-server", ["127.0.0.1", "localhost"])
    server = PostgresServer(Path(tmp_path_factory.mktemp("pg")), ssl_cert=cert, ssl_key=key)
    server.start()
    try:
        server.create_role(PG_APP_USER, PG_APP_PASSWORD)
        server.create_database(PG_APP_DB, owner=PG_APP_USER)
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_app_kwargs(pg_server: PostgresServer) -> dict[str, object]:
    """psycopg keyword arguments for the ``app`` role over TCP+TLS, straight to the server."""
    return {**pg_server.connect_kwargs(user=PG_APP_USER, dbname=PG_APP_DB),
            "password": PG_APP_PASSWORD, "connect_timeout": 5}


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


@pytest.fixture
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningSandbox]:
    scenario = getattr(request, "param", "issue-1278")
    params_file = tmp_path / "sandbox.yaml"
    params_file.write_text(dump_params(sandbox_params(scenario)))
    with running(params_file, scenario, tmp_path / "sandbox") as sb:
        yield sb
