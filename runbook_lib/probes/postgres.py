"""PostgreSQL prober: the wire protocol by hand, so every phase is timed on ONE connection.

    connect  TCP to the server (or the ``connect_to`` override)
    tls      SSLRequest, the server's S/N answer and the TLS handshake (0 with sslmode=disable)
    auth     StartupMessage through AuthenticationOk and ReadyForQuery (trust, cleartext, md5,
             SCRAM-SHA-256 with the server's signature verified)
    query    one simple Query until ReadyForQuery

A driver would hide where the time goes; the incident's "connections take more than 35 s" needs
to know whether it is TCP (connector), TLS or the server's authentication. ``sample`` runs N of
these with bounded concurrency for a latency distribution. The password never reaches a detail,
an info field or a log: it is registered with ``redact`` and only ever written to the socket.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import stringprep
import struct
import unicodedata
from typing import Any

from runbook_lib import redact
from runbook_lib.probes.base import Attempt, NetContext, ProbeFailure, ProbeResult, Reason, split_host_port
from runbook_lib.probes.tls import certificate_info

PROTOCOL_V3 = 196608
SSL_REQUEST = struct.pack("!II", 8, 80877103)
SSLMODES = ("disable", "require", "verify-ca", "verify-full")
MAX_MESSAGE = 16 * 1024 * 1024
AUTH_SQLSTATES = {"28P01": "wrong password", "28000": "not allowed to connect"}


class _Wire:
    """Length-prefixed PostgreSQL messages on an asyncio stream."""

    def __init__(self, run: Attempt, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.run, self.reader, self.writer = run, reader, writer

    def send(self, kind: bytes, payload: bytes) -> None:
        self.writer.write(kind + struct.pack("!I", len(payload) + 4) + payload)

    async def receive(self) -> tuple[bytes, bytes]:
        try:
            header = await self.reader.readexactly(5)
            kind, length = header[:1], struct.unpack("!I", header[1:])[0]
            if not 4 <= length <= MAX_MESSAGE:
                raise ProbeFailure(Reason.protocol, f"not a PostgreSQL server (message length {length})")
            return kind, await self.reader.readexactly(length - 4)
        except asyncio.IncompleteReadError as exc:
            raise ProbeFailure(
                Reason.reset, f"server closed the connection during {self.run.waiting_for}"
            ) from exc


def _fields(payload: bytes) -> dict[str, str]:
    """ErrorResponse/NoticeResponse fields: one-letter code -> text."""
    out: dict[str, str] = {}
    for part in payload.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out


def _server_error(payload: bytes, during: str) -> ProbeFailure:
    fields = _fields(payload)
    code, message = fields.get("C", "?????"), redact.text(fields.get("M", "no message"))
    if code in AUTH_SQLSTATES:
        return ProbeFailure(Reason.auth, f"authentication refused ({code}, {AUTH_SQLSTATES[code]}): {message}")
    if code == "57014":
        return ProbeFailure(Reason.timeout, f"{during} cancelled by the server ({code}): {message}")
    if code.startswith("08"):
        return ProbeFailure(Reason.protocol, f"{during} failed ({code}): {message}")
    return ProbeFailure(Reason.error, f"{during} failed ({code}): {message}")


def saslprep(password: str) -> str:
    """RFC 4013 as PostgreSQL applies it: the prepared form when valid, else the raw password."""
    mapped = "".join(" " if stringprep.in_table_c12(ch) else ch
                     for ch in password if not stringprep.in_table_b1(ch))
    prepared = unicodedata.normalize("NFKC", mapped)
    prohibited = (stringprep.in_table_c21, stringprep.in_table_c22, stringprep.in_table_c3,
                  stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6,
                  stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
                  stringprep.in_table_a1)
    if any(table(ch) for ch in prepared for table in prohibited):
        return password
    if any(stringprep.in_table_d1(ch) for ch in prepared):  # right-to-left text: RFC 3454 §6
        if any(stringprep.in_table_d2(ch) for ch in prepared) or not (
                stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            return password
    return prepared


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


class ScramClient:
    """SCRAM-SHA-256 (RFC 5802/7677) without channel binding, as PostgreSQL speaks it."""

    mechanism = b"SCRAM-SHA-256"

    def __init__(self, password: str, *, username: str = "", nonce: str | None = None):
        # PostgreSQL takes the user from the startup packet, so ``username`` stays empty there.
        self._password = saslprep(password).encode()
        self._nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
        self._first_bare = f"n={username},r={self._nonce}"
        self._auth_message = b""
        self._server_key = b""

    def first_message(self) -> bytes:
        return f"n,,{self._first_bare}".encode()

    def final_message(self, server_first: bytes) -> bytes:
        text = server_first.decode()
        attrs = dict(item.split("=", 1) for item in text.split(","))
        nonce, salt, iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not nonce.startswith(self._nonce) or nonce == self._nonce:
            raise ProbeFailure(Reason.protocol, "SCRAM: the server's nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac("sha256", self._password, salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        without_proof = f"c=biws,r={nonce}"  # biws = base64("n,,"): no channel binding
        self._auth_message = f"{self._first_bare},{text},{without_proof}".encode()
        signature = _hmac(hashlib.sha256(client_key).digest(), self._auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_key = _hmac(salted, b"Server Key")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify_server(self, server_final: bytes) -> None:
        """The server proves it knows the verifier; a mismatch means we talk to an impostor."""
        attrs = dict(item.split("=", 1) for item in server_final.decode().split(","))
        if "e" in attrs:
            raise ProbeFailure(Reason.auth, f"SCRAM refused by the server: {attrs['e']}")
        expected = _hmac(self._server_key, self._auth_message)
        if not hmac.compare_digest(base64.b64decode(attrs.get("v", "")), expected):
            raise ProbeFailure(Reason.auth, "the server's SCRAM signature does not verify "
                                            "(it does not hold this role's password: wrong server?)")


def _md5_response(user: str, password: str, salt: bytes) -> bytes:
    inner = hashlib.md5((password + user).encode()).hexdigest().encode()
    return b"md5" + hashlib.md5(inner + salt).hexdigest().encode() + b"\0"


def _startup_message(params: dict[str, str]) -> bytes:
    body = struct.pack("!I", PROTOCOL_V3) + b"".join(
        k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


async def _negotiate_tls(run: Attempt, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         net: NetContext, sslmode: str, server_name: str) -> None:
    run.begin("tls")
    writer.write(SSL_REQUEST)
    try:
        answer = await reader.readexactly(1)
    except asyncio.IncompleteReadError as exc:
        raise ProbeFailure(Reason.reset, "server closed the connection on SSLRequest") from exc
    if answer == b"N":
        raise ProbeFailure(Reason.protocol, f"server does not support SSL (sslmode={sslmode} requires it)")
    if answer != b"S":
        raise ProbeFailure(Reason.protocol, f"not a PostgreSQL server (answered {answer!r} to SSLRequest)")
    # verify-ca checks the chain only (libpq's meaning); verify-full checks the name too.
    context = net.ssl_context(verify=sslmode != "require", check_hostname=sslmode == "verify-full")
    ssl_object = await run.start_tls(writer, context, server_name, begin=False)
    run.info["ssl"] = True
    run.info["cert"] = certificate_info(ssl_object.getpeercert(binary_form=True),
                                        verified=sslmode != "require")


async def _authenticate(wire: _Wire, run: Attempt, user: str, password: str | None) -> None:
    """From AuthenticationRequest to ReadyForQuery: the auth phase."""
    scram: ScramClient | None = None

    def need_password(method: str) -> str:
        if password is None:
            raise ProbeFailure(Reason.auth, f"the server asks for a password ({method}) and none was given")
        return password

    while True:
        kind, payload = await wire.receive()
        if kind == b"R":
            code = struct.unpack("!I", payload[:4])[0]
            if code == 0:
                run.info.setdefault("auth_method", "trust")
            elif code == 3:
                run.info["auth_method"] = "cleartext"
                wire.send(b"p", need_password("cleartext").encode() + b"\0")
            elif code == 5:
                run.info["auth_method"] = "md5"
                wire.send(b"p", _md5_response(user, need_password("md5"), payload[4:8]))
            elif code == 10:
                mechanisms = [m for m in payload[4:].split(b"\0") if m]
                if ScramClient.mechanism not in mechanisms:
                    raise ProbeFailure(Reason.protocol, f"no SASL mechanism in common (server offers {mechanisms})")
                run.info["auth_method"] = "scram-sha-256"
                scram = ScramClient(need_password("scram-sha-256"))
                first = scram.first_message()
                wire.send(b"p", ScramClient.mechanism + b"\0" + struct.pack("!I", len(first)) + first)
            elif code == 11 and scram is not None:
                wire.send(b"p", scram.final_message(payload[4:]))
            elif code == 12 and scram is not None:
                scram.verify_server(payload[4:])
            else:
                raise ProbeFailure(Reason.protocol, f"authentication method {code} is not supported by the probe")
            await wire.writer.drain()
        elif kind == b"S":
            name, value, *_ = payload.split(b"\0")
            if name == b"server_version":
                run.info["server_version"] = value.decode()
        elif kind == b"K":
            run.info["backend_pid"] = struct.unpack("!I", payload[:4])[0]
        elif kind == b"E":
            raise _server_error(payload, "connection")
        elif kind == b"Z":
            return
        elif kind not in (b"N", b"v"):  # notices and protocol-version negotiation are fine
            raise ProbeFailure(Reason.protocol, f"unexpected message {kind!r} during authentication")


async def _query(wire: _Wire, run: Attempt, query: str) -> None:
    wire.send(b"Q", query.encode() + b"\0")
    await wire.writer.drain()
    rows, failure = 0, None
    while True:
        kind, payload = await wire.receive()
        if kind == b"D":
            rows += 1
        elif kind == b"C":
            run.info["command"] = payload.rstrip(b"\0").decode()
        elif kind == b"E":
            failure = _server_error(payload, "query")
        elif kind == b"Z":
            break
    run.info["rows"] = rows
    if failure is not None:
        raise failure


async def probe(
    target: str, net: NetContext, deadline_s: float, *, user: str = "postgres", password: str | None = None,
    database: str | None = None, sslmode: str = "require", server_name: str | None = None,
    query: str = "SELECT 1", application_name: str = "runbook-probe", **_options: object,
) -> ProbeResult:
    """Connect, (TLS), authenticate and run ``query`` on ``host:port``; ok when all four worked."""
    if sslmode not in SSLMODES:
        raise ValueError(f"sslmode must be one of {', '.join(SSLMODES)}, not {sslmode!r}")
    redact.register(password)
    host, port = split_host_port(target)
    run = Attempt("postgres", target, net)
    run.info.update(ssl=False, user=user, database=database or user, sslmode=sslmode)

    async def steps() -> None:
        reader, writer = await run.connect(await run.resolve(host, port))
        if sslmode != "disable":
            await _negotiate_tls(run, reader, writer, net, sslmode, server_name or host)
        wire = _Wire(run, reader, writer)
        run.begin("auth")
        writer.write(_startup_message(
            {"user": user, "database": database or user, "application_name": application_name,
             "client_encoding": "UTF8"}))
        try:
            await _authenticate(wire, run, user, password)
            run.end("auth")
            run.begin("query")
            await _query(wire, run, query)
            run.end("query")
        except (struct.error, ValueError, KeyError, IndexError) as exc:  # garbled server messages
            raise ProbeFailure(Reason.protocol, f"malformed message from the server during "
                                                f"{run.waiting_for} ({type(exc).__name__})") from exc
        wire.send(b"X", b"")  # Terminate: the server logs a clean disconnect
        await writer.drain()

    return await run.run(steps(), deadline_s)


async def sample(
    target: str, net: NetContext, deadline_s: float, samples: int, concurrency: int, **options: Any,
) -> list[ProbeResult]:
    """``samples`` probes in waves of ``concurrency``, each with its own deadline and start.

    A dead path must cost one deadline, not one per wave: when every sample of a wave timed out,
    the samples not yet started are recorded as timeouts that were not attempted.
    """
    width = max(1, concurrency)
    results: list[ProbeResult] = []
    while len(results) < samples:
        wave = min(width, samples - len(results))
        done = await asyncio.gather(*(probe(target, net, deadline_s, **options) for _ in range(wave)))
        results.extend(done)
        if all(r.reason is Reason.timeout for r in done) and len(results) < samples:
            skipped = samples - len(results)
            results.extend(
                ProbeResult(protocol="postgres", target=target, ok=False, reason=Reason.timeout,
                            started_s=net.since_start(), info={"attempted": False},
                            detail=f"not attempted: the previous {wave} samples all timed out (deadline {deadline_s:g} s)")
                for _ in range(skipped))
    return results
