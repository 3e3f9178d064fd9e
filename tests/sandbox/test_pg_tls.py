"""The PostgreSQL TLS front: real TLS negotiated the PostgreSQL way, in front of a real server."""
from __future__ import annotations

import asyncio
import ssl

import psycopg
import pytest

from runbook_lib.sandbox.pg_tls import PgTlsFront


@pytest.fixture
def front_factory(pg_server, dp_ca):
    cert, key = dp_ca.issue("pg-front", ["127.0.0.1", "netra-staging-db"])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)

    def make(require_ssl: bool):
        return PgTlsFront((pg_server.host, pg_server.port), ctx, lambda: require_ssl)

    return make


def run(coro):
    return asyncio.run(coro)


def connect(port, pg_app_kwargs, sslmode, **kw):
    args = {**pg_app_kwargs, "host": "127.0.0.1", "port": port, "sslmode": sslmode, "connect_timeout": 5, **kw}
    return psycopg.connect(**args)


def test_tls_is_negotiated_and_verified(front_factory, pg_app_kwargs, dp_ca):
    async def go():
        front = front_factory(True)
        port = await front.start()
        try:
            def client():
                with connect(port, pg_app_kwargs, "verify-ca", sslrootcert=str(dp_ca.ca_cert_path)) as conn:
                    return conn.info.pgconn.ssl_in_use, conn.execute("select 1").fetchone()[0]
            return await asyncio.to_thread(client)
        finally:
            await front.stop()

    assert run(go()) == (True, 1)


def test_plaintext_is_refused_when_ssl_is_required(front_factory, pg_app_kwargs):
    async def go():
        front = front_factory(True)
        port = await front.start()
        try:
            with pytest.raises(psycopg.OperationalError, match="requires SSL"):
                await asyncio.to_thread(lambda: connect(port, pg_app_kwargs, "disable"))
        finally:
            await front.stop()

    run(go())


def test_plaintext_passes_when_ssl_is_optional(front_factory, pg_app_kwargs):
    async def go():
        front = front_factory(False)
        port = await front.start()
        try:
            def client():
                with connect(port, pg_app_kwargs, "disable") as conn:
                    return conn.info.pgconn.ssl_in_use
            return await asyncio.to_thread(client)
        finally:
            await front.stop()

    assert run(go()) is False
