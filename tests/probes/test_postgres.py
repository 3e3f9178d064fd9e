"""PostgreSQL prober: the wire protocol against a REAL PostgreSQL (runbook_lib.sandbox.postgres).

The sandbox server speaks SCRAM over TCP (TLS with the local CA's ``db.example.test``
certificate); this module adds roles for md5, cleartext and trust by prepending pg_hba lines.
psycopg connects to the same server as a cross-check of the hand-written authentication.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from runbook_lib.probes import postgres
from runbook_lib.probes.base import PHASES, NetContext, ProbeFailure, Reason
from runbook_lib.probes.postgres import ScramClient, saslprep

sandbox = pytest.importorskip(
    "runbook_lib.sandbox.postgres", reason="runbook_lib/sandbox/postgres.py (PostgresServer) is not available")

DB = "db.example.test"
APP_PASSWORD = "app-Secret-4242"
MD5_PASSWORD = "md5-Secret-4242"
CLEAR_PASSWORD = "clear-Secret-4242"
UNICODE_PASSWORD = "päss-\u2168-wörd"  # Roman numeral nine: SASLprep turns it into "IX"
EXTRA_HBA = (
    "host all md5user 127.0.0.1/32 md5\n"
    "host all clearuser 127.0.0.1/32 password\n"
    "host all trustuser 127.0.0.1/32 trust\n"
)


def _wait_for_trust(pg) -> None:
    """pg_reload_conf() is asynchronous: wait until the new pg_hba.conf is in force."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with psycopg.connect(host=pg.host, port=pg.port, user="trustuser", dbname="postgres",
                                 sslmode="disable", connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory, certs) -> Iterator:
    chain, key = certs.db
    with sandbox.PostgresServer(tmp_path_factory.mktemp("pg"), ssl_cert=chain, ssl_key=key) as server:
        server.create_role("app", APP_PASSWORD)
        server.create_database("app", owner="app")
        md5 = "md5" + hashlib.md5((MD5_PASSWORD + "md5user").encode()).hexdigest()
        server.execute(f"CREATE ROLE md5user LOGIN PASSWORD '{md5}'")  # stored as md5, not SCRAM
        server.create_role("clearuser", CLEAR_PASSWORD)
        server.execute("CREATE ROLE trustuser LOGIN")
        # the server computes this verifier itself, SASLprep included
        server.execute(f"CREATE ROLE unicode LOGIN PASSWORD '{UNICODE_PASSWORD}'")
        hba = Path(server.data_dir) / "pg_hba.conf"
        hba.write_text(EXTRA_HBA + hba.read_text())
        server.execute("SELECT pg_reload_conf()")
        _wait_for_trust(server)
        yield server


def target(pg) -> str:
    return f"{pg.host}:{pg.port}"


def app_options(**extra) -> dict:
    return {"user": "app", "password": APP_PASSWORD, "database": "app", **extra}


def test_scram_over_tls_times_every_phase(pg, net) -> None:
    result = asyncio.run(postgres.probe(target(pg), net, 5, **app_options(sslmode="require")))
    assert result.ok, result.detail
    assert list(result.phases) == list(PHASES["postgres"])
    for phase in ("resolve", "connect", "tls", "auth", "query"):
        assert result.phases[phase] > 0, phase
    info = result.info
    assert info["ssl"] is True and info["tls_version"].startswith("TLS")
    assert info["auth_method"] == "scram-sha-256"
    assert info["server_version"].split(".")[0].isdigit()
    assert isinstance(info["backend_pid"], int) and info["backend_pid"] > 0
    assert info["command"] == "SELECT 1" and info["rows"] == 1
    assert APP_PASSWORD not in result.model_dump_json()


def test_psycopg_agrees(pg) -> None:
    kwargs = pg.connect_kwargs(user="app", dbname="app")
    with psycopg.connect(**kwargs, password=APP_PASSWORD, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with psycopg.connect(host=pg.host, port=pg.port, user="md5user", dbname="postgres",
                         password=MD5_PASSWORD, sslmode="disable", connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with psycopg.connect(host=pg.host, port=pg.port, user="unicode", dbname="postgres",
                         password=UNICODE_PASSWORD, sslmode="require", connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("user,password,method", [
    ("md5user", MD5_PASSWORD, "md5"),
    ("clearuser", CLEAR_PASSWORD, "cleartext"),
    ("trustuser", None, "trust"),
    ("unicode", UNICODE_PASSWORD, "scram-sha-256"),
])
def test_other_authentication_methods(pg, net, user, password, method) -> None:
    result = asyncio.run(postgres.probe(target(pg), net, 5, user=user, password=password,
                                        database="postgres", sslmode="disable"))
    assert result.ok, result.detail
    assert result.info["auth_method"] == method
    assert result.info["ssl"] is False and result.phases["tls"] == 0.0


def test_verify_full_through_an_override(pg, certs) -> None:
    net = NetContext(connect_to={f"{DB}:5432": target(pg)}, ca_bundle=certs.ca_bundle)
    result = asyncio.run(postgres.probe(f"{DB}:5432", net, 5, **app_options(sslmode="verify-full")))
    assert result.ok, result.detail
    assert result.info["override"] is True and result.phases["resolve"] == 0.0
    assert result.info["cert"]["verified"] is True and DB in result.info["cert"]["sans"]


def test_verify_full_with_the_wrong_name(pg, net) -> None:
    result = asyncio.run(postgres.probe(target(pg), net, 5, **app_options(
        sslmode="verify-full", server_name="other.example.test")))
    assert result.reason is Reason.hostname_mismatch, result.detail
    assert result.phases["tls"] > 0 and result.phases["auth"] == 0.0


def test_verify_ca_needs_the_ca(pg, certs) -> None:
    trusted = asyncio.run(postgres.probe(target(pg), NetContext(ca_bundle=certs.ca_bundle), 5,
                                         **app_options(sslmode="verify-ca")))
    assert trusted.ok, trusted.detail  # 127.0.0.1 is not in the certificate: verify-ca ignores names
    untrusted = asyncio.run(postgres.probe(target(pg), NetContext(), 5, **app_options(sslmode="verify-ca")))
    assert untrusted.reason is Reason.tls_verify, untrusted.detail


def test_wrong_password_is_auth_and_never_shown(pg, net) -> None:
    wrong = "not-the-Password-77"
    result = asyncio.run(postgres.probe(target(pg), net, 5, **app_options(password=wrong)))
    assert result.reason is Reason.auth
    assert "28P01" in result.detail
    dumped = result.model_dump_json()
    assert wrong not in dumped and APP_PASSWORD not in dumped
    assert result.phases["tls"] > 0 and result.phases["auth"] == 0.0


def test_missing_password_and_unknown_database(pg, net) -> None:
    no_password = asyncio.run(postgres.probe(target(pg), net, 5, user="app", database="app"))
    assert no_password.reason is Reason.auth and "none was given" in no_password.detail
    no_db = asyncio.run(postgres.probe(target(pg), net, 5, **app_options(database="nope")))
    assert no_db.reason is Reason.error and "3D000" in no_db.detail


def test_failing_query(pg, net) -> None:
    result = asyncio.run(postgres.probe(target(pg), net, 5, **app_options(query="SELECT 1/0")))
    assert result.reason is Reason.error and "22012" in result.detail
    assert result.phases["auth"] > 0 and result.phases["query"] == 0.0
    slow = asyncio.run(postgres.probe(target(pg), net, 5, **app_options(
        query="SET statement_timeout = 50; SELECT pg_sleep(5)")))
    assert slow.reason is Reason.timeout and "57014" in slow.detail


def test_samples_with_bounded_concurrency(pg, net) -> None:
    results = asyncio.run(postgres.sample(target(pg), net, 5, samples=4, concurrency=2, **app_options()))
    assert len(results) == 4 and all(r.ok for r in results), [r.detail for r in results]
    assert len({r.info["backend_pid"] for r in results}) == 4
    assert len({r.started_s for r in results}) == 4


def test_refused_timeout_and_reset(closed_port: int, blackhole: int, resetter: int, net) -> None:
    refused = asyncio.run(postgres.probe(f"127.0.0.1:{closed_port}", net, 2, **app_options()))
    assert refused.reason is Reason.refused
    silent = asyncio.run(postgres.probe(f"127.0.0.1:{blackhole}", net, 0.3, **app_options()))
    assert silent.reason is Reason.timeout and "no answer during tls" in silent.detail
    silent_plain = asyncio.run(postgres.probe(f"127.0.0.1:{blackhole}", net, 0.3,
                                              **app_options(sslmode="disable")))
    assert silent_plain.reason is Reason.timeout and "no answer during auth" in silent_plain.detail
    reset = asyncio.run(postgres.probe(f"127.0.0.1:{resetter}", net, 2, **app_options()))
    assert reset.reason is Reason.reset, reset.detail


def test_server_without_ssl(tmp_path: Path, net) -> None:
    with sandbox.PostgresServer(tmp_path) as plain:
        plain.create_role("app", APP_PASSWORD)
        options = app_options(database="postgres")
        refused = asyncio.run(postgres.probe(target(plain), net, 5, **options, sslmode="require"))
        assert refused.reason is Reason.protocol
        assert "server does not support SSL" in refused.detail
        allowed = asyncio.run(postgres.probe(target(plain), net, 5, **options, sslmode="disable"))
        assert allowed.ok, allowed.detail


# -- SCRAM and SASLprep, checked against the RFCs ---------------------------------------------

def test_scram_matches_rfc7677_example() -> None:
    client = ScramClient("pencil", username="user", nonce="rOprNGfwEbeRWgbNEkqO")
    assert client.first_message() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    final = client.final_message(
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert final == (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client.verify_server(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def test_scram_rejects_an_impostor_and_a_foreign_nonce() -> None:
    client = ScramClient("pencil", username="user", nonce="rOprNGfwEbeRWgbNEkqO")
    client.final_message(b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    with pytest.raises(ProbeFailure) as impostor:
        client.verify_server(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    assert impostor.value.reason is Reason.auth
    with pytest.raises(ProbeFailure) as foreign:
        ScramClient("pencil", nonce="abc").final_message(b"r=zzz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
    assert foreign.value.reason is Reason.protocol


def test_saslprep_rfc4013_examples() -> None:
    assert saslprep("I\u00adX") == "IX"          # soft hyphen mapped to nothing
    assert saslprep("user") == "user"
    assert saslprep("\u00aa") == "a"             # NFKC
    assert saslprep("\u2168") == "IX"
    assert saslprep("a\u00a0b") == "a b"         # non-ASCII space mapped to space
    assert saslprep("\u0007") == "\u0007"        # prohibited: PostgreSQL then uses it as is


def test_a_dead_path_costs_one_deadline_not_one_per_wave(blackhole: int, net) -> None:
    """After a whole wave times out, the remaining samples are recorded, not waited for."""
    results = asyncio.run(postgres.sample(f"127.0.0.1:{blackhole}", net, 0.3, samples=10, concurrency=2,
                                          **app_options()))
    assert len(results) == 10 and all(r.reason is Reason.timeout for r in results)
    attempted = [r for r in results if r.info.get("attempted", True)]
    assert len(attempted) == 2
    assert all("not attempted" in r.detail for r in results if r not in attempted)
