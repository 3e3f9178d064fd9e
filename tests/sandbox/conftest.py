"""Fixtures for the sandbox data-plane tests: one real PostgreSQL per session, a local CA, and a
fake ``DataPlaneView`` whose answers a test sets directly."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from runbook_lib.sandbox.dataplane_view import CertKind, ProxyPolicy
from runbook_lib.sandbox.pki import LocalCA
from runbook_lib.sandbox.postgres import PostgresServer

PG_APP_USER = "app"
PG_APP_DB = "app"
PG_APP_PASSWORD = "sandbox-app-password"  # a test credential for a throwaway server


@dataclass
class FakeView:
    """A ``DataPlaneView`` with settable answers (the real one reads the API emulator's state)."""

    time_scale: float = 0.02
    policy: ProxyPolicy = field(default_factory=ProxyPolicy)
    certificates: dict[str, CertKind] = field(default_factory=dict)
    default_certificate: CertKind = "valid"
    ws_lifetime: float | None = None
    startup_remaining: float = 0.0
    secrets: dict[str, str] = field(default_factory=dict)
    required: list[str] = field(default_factory=list)
    dark: bool = False

    def proxy_policy(self) -> ProxyPolicy:
        return self.policy

    def certificate_for(self, domain: str) -> CertKind:
        return self.certificates.get(domain, self.default_certificate)

    def ws_lifetime_s(self) -> float | None:
        return self.ws_lifetime

    def startup_remaining_s(self) -> float:
        return self.startup_remaining

    def secret_problems(self) -> list[str]:
        return [name for name in self.required if name not in self.secrets]

    def secret_value(self, name: str) -> str | None:
        return self.secrets.get(name)

    def blackout(self) -> bool:
        return self.dark


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
