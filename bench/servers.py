"""The bench's targets, in a child process: ``with bench_servers(spec) as ports: ...``.

Servers run in their own process so their Python work (the fault proxy's queues, TLS on the
server side) does not share the probe's interpreter and GIL: a timing taken by the probe then
contains the network path, not the server's bookkeeping. Everything binds 127.0.0.1, port 0.

The child prints one JSON line (the ports) on stdout when ready and stops when its stdin closes,
which also happens when the parent dies: nothing outlives the bench. PostgreSQL is started and
stopped from the child's main thread, as ``PostgresServer`` requires.

    spec = Spec(https=True, postgres=True, delays_ms=[0, 50], http_proxies=100, http_proxy_delay_ms=100)
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import ssl
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

HOSTNAME = "api.bench.test"       # the HTTPS server's certificate names it (and 127.0.0.1)
PG_USER = PG_DATABASE = "bench"
PASSWORD_ENV = "RUNBOOK_BENCH_PG_PASSWORD"  # the child's only way to learn the role's password
READY_TIMEOUT_S = 90.0
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


@dataclass
class Spec:
    https: bool = False                 # HTTPS server (HTTP/1.1, certificate from the bench CA)
    http: bool = False                  # plain HTTP server
    postgres: bool = False              # PostgreSQL + the sandbox's TLS front (sslmode=require)
    pg_max_connections: int = 64
    delays_ms: list[float] = field(default_factory=list)   # one delay proxy per value, per server
    http_proxies: int = 0               # N distinct endpoints in front of the HTTP server
    http_proxy_delay_ms: float = 0.0
    https_proxies: int = 0              # N distinct endpoints in front of the HTTPS server
    https_proxy_delay_ms: float = 0.0


@contextlib.contextmanager
def bench_servers(spec: Spec, *, pg_password: str | None = None) -> Iterator[dict[str, Any]]:
    """Start the servers the spec asks for; yields the ports (and the CA path); stops them."""
    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as nobody when we are root: it must reach its dir
        env = {**os.environ}
        if pg_password is not None:
            env[PASSWORD_ENV] = pg_password
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        with open(Path(tmp) / "servers.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.servers", json.dumps(asdict(spec)), tmp],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, cwd=package_root,
            )
        try:
            ports = _read_ready_line(proc, Path(tmp) / "servers.log")
            yield ports
        finally:
            _stop(proc)


def _read_ready_line(proc: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT_S)
    line = proc.stdout.readline() if ready else b""
    if not line:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"bench servers did not start within {READY_TIMEOUT_S:g} s:\n{tail}")
    return json.loads(line)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        assert proc.stdin is not None
        proc.stdin.close()  # the child's signal to stop
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# The child


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One request, one fixed answer, close: the smallest HTTP/1.1 server a probe can time."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(RESPONSE)
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 2)


def _delay_policy(delay_ms: float):
    from runbook_lib.sandbox.dataplane_view import ProxyPolicy

    policy = ProxyPolicy(mode="delay", delay_s=delay_ms / 1000.0) if delay_ms > 0 else ProxyPolicy(mode="pass")
    return lambda: policy


async def _serve(spec: Spec, workdir: Path, pg: Any) -> None:
    from runbook_lib.sandbox.faultproxy import FaultProxy
    from runbook_lib.sandbox.pg_tls import PgTlsFront
    from runbook_lib.sandbox.pki import LocalCA

    ca = LocalCA(workdir / "pki", name="runbook bench CA")
    cert, key = ca.issue("server", [HOSTNAME, "localhost", "127.0.0.1"])
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    out: dict[str, Any] = {"pid": os.getpid(), "ca": str(ca.ca_cert_path), "proxies": {"https": {}, "pg": {}},
                           "http_proxies": [], "https_proxies": []}
    servers: list[asyncio.base_events.Server] = []
    stoppable: list[Any] = []

    async def proxy(upstream_port: int, delay_ms: float) -> int:
        p = FaultProxy(("127.0.0.1", upstream_port), _delay_policy(delay_ms))
        stoppable.append(p)
        return await p.start()

    if spec.https or spec.https_proxies:
        s = await asyncio.start_server(_answer, "127.0.0.1", 0, ssl=server_tls, backlog=1024)
        servers.append(s)
        out["https"] = s.sockets[0].getsockname()[1]
        for d in spec.delays_ms:
            out["proxies"]["https"][str(d)] = await proxy(out["https"], d)
        for _ in range(spec.https_proxies):
            out["https_proxies"].append(await proxy(out["https"], spec.https_proxy_delay_ms))
    if spec.http or spec.http_proxies:
        s = await asyncio.start_server(_answer, "127.0.0.1", 0, backlog=1024)
        servers.append(s)
        out["http"] = s.sockets[0].getsockname()[1]
        for _ in range(spec.http_proxies):
            out["http_proxies"].append(await proxy(out["http"], spec.http_proxy_delay_ms))
    if pg is not None:
        front = PgTlsFront(("127.0.0.1", pg.port), server_tls, lambda: True)
        stoppable.append(front)
        out["pg_front"] = await front.start()
        out["pg_direct"] = pg.port
        out["pg_version"] = pg.binaries.version if pg.binaries else ""
        for d in spec.delays_ms:
            out["proxies"]["pg"][str(d)] = await proxy(out["pg_front"], d)

    print(json.dumps(out), flush=True)
    # Serve until the parent closes our stdin (or dies, which closes it too).
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    for thing in stoppable:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(thing.stop(), 10)
    for s in servers:
        s.close()


def main(argv: list[str]) -> int:
    spec, workdir = Spec(**json.loads(argv[0])), Path(argv[1])
    pg = None
    if spec.postgres:
        from runbook_lib.sandbox.postgres import PostgresServer

        password = os.environ.pop(PASSWORD_ENV, "")
        if not password:
            print(f"bench servers: {PASSWORD_ENV} is not set", file=sys.stderr)
            return 2
        pg = PostgresServer(workdir / "pg", max_connections=spec.pg_max_connections)
        pg.start()  # main thread: see PostgresServer's docstring
    try:
        if pg is not None:
            pg.create_role(PG_USER, password)
            pg.create_database(PG_DATABASE, owner=PG_USER)
        asyncio.run(_serve(spec, workdir, pg))
    finally:
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
