"""The connector's data path: every proxy mode against a real echo server or PostgreSQL."""
from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Awaitable, Callable

import psycopg
import pytest

from runbook_lib.sandbox.dataplane_view import ProxyPolicy
from runbook_lib.sandbox.faultproxy import FaultProxy
from runbook_lib.sandbox.postgres import PostgresServer

DEADLINE_S = 20


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(coro_fn(), DEADLINE_S))


class Echo:
    """A loopback echo server that counts the connections it saw."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> tuple[str, int]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(echo, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[:2]

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def open_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)


async def roundtrip(port: int, payload: bytes = b"ping") -> float:
    started = time.monotonic()
    reader, writer = await open_client(port)
    writer.write(payload)
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload
    writer.close()
    return time.monotonic() - started


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_pass_mode_carries_a_tls_postgres_session(pg_server: PostgresServer, pg_app_kwargs: dict) -> None:
    async def scenario() -> None:
        proxy = FaultProxy((pg_server.host, pg_server.port), ProxyPolicy)
        port = await proxy.start()
        try:
            kwargs = {**pg_app_kwargs, "port": port}
            async with await psycopg.AsyncConnection.connect(**kwargs) as conn:
                cur = await conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                assert await cur.fetchone() == (True,)
                assert proxy.active == 1
            await eventually(lambda: proxy.records[0].outcome is not None)
        finally:
            await proxy.stop()
        [record] = proxy.records
        assert (record.mode, record.outcome) == ("pass", "ok")
        assert record.bytes_up > 0 and record.bytes_down > 0
        assert record.accepted_at <= record.admitted_at <= record.upstream_connected_at <= record.closed_at
        assert proxy.stats()["ok"] == 1 and proxy.active == 0

    run(scenario)


def test_delay_mode_delays_each_way_without_adding_up() -> None:
    async def scenario() -> None:
        async with Echo() as upstream:
            proxy = FaultProxy(upstream, lambda: ProxyPolicy(mode="delay", delay_s=0.3))
            port = await proxy.start()
            try:
                direct = await roundtrip(upstream[1])
                delayed = await roundtrip(port)
                # five chunks sent back to back: released ~0.3 s after each was read, not 5 x 0.3 s
                reader, writer = await open_client(port)
                started = time.monotonic()
                for i in range(5):
                    writer.write(b"chunk%d;" % i)
                    await writer.drain()
                    await asyncio.sleep(0.01)
                echoed = await asyncio.wait_for(reader.readexactly(35), 10)
                burst = time.monotonic() - started
                writer.close()
            finally:
                await proxy.stop()
        assert echoed == b"".join(b"chunk%d;" % i for i in range(5))  # order preserved
        assert delayed >= 0.6 > direct  # 0.3 s up + 0.3 s down
        assert burst < 2.0  # serial per-chunk sleeping would take 5 x 0.6 = 3 s
        assert proxy.records[0].delay_s == 0.3

    run(scenario)


def test_blackhole_mode_times_a_client_out_and_never_dials_upstream() -> None:
    async def scenario() -> None:
        echo = Echo()
        async with echo as upstream:
            proxy = FaultProxy(upstream, lambda: ProxyPolicy(mode="blackhole", reason="connector has no route"))
            port = await proxy.start()
            try:
                reader, writer = await open_client(port)
                writer.write(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # a PostgreSQL SSLRequest
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(reader.read(1), 0.5)
                writer.close()
                await eventually(lambda: proxy.records[0].outcome is not None)
            finally:
                await proxy.stop()
        assert echo.connections == 0
        assert proxy.records[0].outcome == "blackholed"
        assert proxy.records[0].reason == "connector has no route"
        assert proxy.records[0].upstream_connected_at is None

    run(scenario)


def test_reset_mode_gives_psycopg_a_connection_error(pg_server: PostgresServer, pg_app_kwargs: dict) -> None:
    async def scenario() -> None:
        proxy = FaultProxy((pg_server.host, pg_server.port), lambda: ProxyPolicy(mode="reset"))
        port = await proxy.start()
        try:
            with pytest.raises(psycopg.OperationalError):
                await psycopg.AsyncConnection.connect(**{**pg_app_kwargs, "port": port})
            # a raw client sees the RST itself, not an orderly close
            reader, writer = await open_client(port)
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(1), 5)
            writer.close()
        finally:
            await proxy.stop()
        assert {r.outcome for r in proxy.records} == {"reset"}

    run(scenario)


def test_max_connections_queues_the_next_client_until_a_slot_frees() -> None:
    async def scenario() -> None:
        async with Echo() as upstream:
            proxy = FaultProxy(upstream, lambda: ProxyPolicy(max_connections=1))
            port = await proxy.start()
            try:
                r1, w1 = await open_client(port)
                w1.write(b"one")
                assert await asyncio.wait_for(r1.readexactly(3), 5) == b"one"

                r2, w2 = await open_client(port)
                w2.write(b"two")  # sent while waiting: must not be lost
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(r2.readexactly(3), 0.3)
                _, w3 = await open_client(port)
                await eventually(lambda: proxy.stats()["waiting"] == 2)
                w3.close()  # gives up while queued
                await eventually(lambda: proxy.stats()["client_gave_up"] == 1)
                assert proxy.active == 1

                w1.close()  # frees the slot: the first waiter goes through
                assert await asyncio.wait_for(r2.readexactly(3), 5) == b"two"
                assert proxy.stats()["waiting"] == 0 and proxy.active == 1
                w2.close()
                await eventually(lambda: proxy.active == 0)
            finally:
                await proxy.stop()
        first, second, third = proxy.records
        assert second.admitted_at > first.closed_at - 0.5  # admitted only after the first left
        assert (first.outcome, second.outcome, third.outcome) == ("ok", "ok", "client_gave_up")
        assert third.admitted_at is None

    run(scenario)


def test_policy_is_read_per_new_connection() -> None:
    async def scenario() -> None:
        policy = ProxyPolicy()

        async with Echo() as upstream:
            proxy = FaultProxy(upstream, lambda: policy)
            port = await proxy.start()
            try:
                r1, w1 = await open_client(port)
                policy = ProxyPolicy(mode="blackhole")  # a control-plane change
                w1.write(b"old")
                assert await asyncio.wait_for(r1.readexactly(3), 5) == b"old"  # existing one unaffected
                r2, w2 = await open_client(port)
                w2.write(b"new")
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(r2.read(1), 0.3)
                policy = ProxyPolicy()  # healed
                assert await roundtrip(port) > 0
            finally:
                await proxy.stop()
        assert [r.mode for r in proxy.records] == ["pass", "blackhole", "pass"]

    run(scenario)


def test_unreachable_upstream_and_prompt_stop() -> None:
    async def scenario() -> None:
        with socket.socket() as placeholder:
            placeholder.bind(("127.0.0.1", 0))
            closed_port = placeholder.getsockname()[1]  # nothing listens here
        proxy = FaultProxy(("127.0.0.1", closed_port), ProxyPolicy)
        port = await proxy.start()
        reader, writer = await open_client(port)
        assert await asyncio.wait_for(reader.read(1), 5) == b""
        await eventually(lambda: proxy.records[0].outcome is not None)
        assert proxy.records[0].outcome == "upstream_refused"

        hole = FaultProxy(("127.0.0.1", closed_port), lambda: ProxyPolicy(mode="blackhole"))
        hole_port = await hole.start()
        readers = [(await open_client(hole_port))[0] for _ in range(3)]
        await eventually(lambda: len(hole.records) == 3)
        started = time.monotonic()
        await hole.stop()
        await proxy.stop()
        assert time.monotonic() - started < 5
        for r in readers:  # every held connection is closed by stop()
            try:
                assert await asyncio.wait_for(r.read(1), 5) == b""
            except ConnectionResetError:
                pass
        assert {r.outcome for r in hole.records} == {"blackholed"}
        writer.close()

    run(scenario)
