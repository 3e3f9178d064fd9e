"""The shape every prober shares (blackbox_exporter style).

A prober is ``async def probe(target: str, net: NetContext, deadline_s: float, **options)
-> ProbeResult``. It never raises for a network outcome: refusal, timeout, reset or a bad
certificate become ``ok=False`` with a ``reason`` from the fixed set below and a ``detail`` a
person can read. Every phase of the protocol is present in ``phases`` (seconds), zero when the
probe never got there, so plots and tables line up across samples.
"""
from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Awaitable

from pydantic import BaseModel, Field

from runbook_lib import redact

PHASES: dict[str, tuple[str, ...]] = {
    "dns": ("resolve",),
    "tcp": ("resolve", "connect"),
    "tls": ("resolve", "connect", "tls"),
    "http": ("resolve", "connect", "tls", "processing", "transfer"),
    "postgres": ("resolve", "connect", "tls", "auth", "query"),
    "websocket": ("resolve", "connect", "tls", "upgrade", "first_message"),
}


class Reason(str, Enum):
    dns = "dns"                              # name does not resolve
    refused = "refused"                      # TCP RST on connect / nothing listening
    timeout = "timeout"                      # the deadline passed (blackhole, overload)
    reset = "reset"                          # connection reset / closed mid-protocol
    tls_verify = "tls_verify"                # chain does not verify (unknown CA, self-signed…)
    hostname_mismatch = "hostname_mismatch"  # certificate does not name the host
    expired = "expired"                      # certificate not valid now
    http_status = "http_status"              # unexpected HTTP status
    protocol = "protocol"                    # peer spoke something unexpected
    auth = "auth"                            # authentication refused (database, login)
    unreachable = "unreachable"              # network/host unreachable
    error = "error"                          # anything else, detail says what


class ProbeResult(BaseModel):
    protocol: str
    target: str
    ok: bool
    reason: Reason | None = None
    detail: str = ""
    phases: dict[str, float] = Field(default_factory=dict)
    total_s: float = 0.0
    started_s: float = 0.0
    info: dict[str, Any] = Field(default_factory=dict)

    def model_post_init(self, _ctx: Any) -> None:
        for name in PHASES.get(self.protocol, ()):
            self.phases.setdefault(name, 0.0)

    @property
    def wire_s(self) -> float:
        """Time spent in the protocol's phases: ``total_s`` less the gaps in which the probe waited
        for its own (busy) event loop. Checks judge this for a sample that succeeded (the latency
        rule in ``checks/_util.py``), not our scheduling."""
        return sum(self.phases.values()) if any(self.phases.values()) else self.total_s


@dataclass
class NetContext:
    """How probes reach targets: ``connect_to`` overrides (like ``curl --connect-to``) and trust."""

    connect_to: dict[str, str] = field(default_factory=dict)
    ca_bundle: str | None = None
    t0: float = field(default_factory=time.perf_counter)
    _verifying: dict[bool, ssl.SSLContext] = field(default_factory=dict, init=False, repr=False, compare=False)

    def route(self, host: str, port: int) -> tuple[str, int] | None:
        """The overridden ``(addr, port)`` for ``host:port``, or None to use DNS."""
        target = self.connect_to.get(f"{host}:{port}")
        if target is None:
            return None
        addr, _, p = target.rpartition(":")
        return addr.strip("[]"), int(p)

    def ssl_context(self, *, verify: bool = True, check_hostname: bool = True) -> ssl.SSLContext:
        if not verify:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        # Loading a trust store costs ~15 ms of CPU: one verifying context per NetContext, shared
        # by all its probes (SSLContext is safe to share; each connection gets its own SSLObject).
        # Callers must not modify the context they get: ask for check_hostname=False instead.
        if check_hostname not in self._verifying:
            if self.ca_bundle:
                ctx = ssl.create_default_context(cafile=self.ca_bundle)
            else:
                import certifi

                ctx = ssl.create_default_context(cafile=certifi.where())
            ctx.check_hostname = check_hostname  # False: chain only (libpq's verify-ca)
            self._verifying[check_hostname] = ctx
        return self._verifying[check_hostname]

    def since_start(self) -> float:
        return time.perf_counter() - self.t0


class Stopwatch:
    """Times consecutive phases; ``phases`` keeps the ones that completed."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self._mark = self.start
        self.phases: dict[str, float] = {}

    def lap(self, phase: str) -> float:
        now = time.perf_counter()
        self.phases[phase] = now - self._mark
        self._mark = now
        return self.phases[phase]

    def restart_lap(self) -> None:
        self._mark = time.perf_counter()

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


def classify_exception(exc: BaseException) -> tuple[Reason, str]:
    """Translate socket/TLS/asyncio errors into a reason and a readable detail."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Reason.timeout, "no answer before the deadline"
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = getattr(exc, "verify_code", None)
        msg = getattr(exc, "verify_message", "") or str(exc)
        if code == 62 or "hostname mismatch" in msg.lower() or "doesn't match" in msg.lower():
            return Reason.hostname_mismatch, f"certificate does not name the host ({msg})"
        if code in (9, 10) or "expired" in msg.lower() or "not yet valid" in msg.lower():
            return Reason.expired, f"certificate is not valid now ({msg})"
        return Reason.tls_verify, f"certificate chain does not verify ({msg})"
    if isinstance(exc, ssl.SSLError):
        return Reason.reset if "EOF" in str(exc) else Reason.protocol, f"TLS failed ({exc.reason or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return Reason.refused, "connection refused (nothing listening)"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError)):
        return Reason.reset, "connection reset by peer"
    if isinstance(exc, ConnectionAbortedError):
        return Reason.reset, "connection aborted"
    if isinstance(exc, OSError):
        import errno

        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return Reason.unreachable, f"network unreachable ({exc.strerror})"
        if exc.errno == errno.ECONNREFUSED:
            return Reason.refused, "connection refused (nothing listening)"
        if exc.errno in (errno.ECONNRESET, errno.EPIPE):
            return Reason.reset, "connection reset by peer"
        if isinstance(exc, __import__("socket").gaierror):
            return Reason.dns, f"name does not resolve ({exc.strerror})"
        return Reason.error, f"{type(exc).__name__}: {exc}"
    return Reason.error, f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------------
# Helpers the probers share. Everything above this line is the contract other modules build on;
# what follows is how the probers implement it.
# ---------------------------------------------------------------------------------------------

class ProbeFailure(Exception):
    """Raised inside a prober's steps to end it with a reason; never escapes ``Attempt.run``."""

    def __init__(self, reason: Reason, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


# Outcomes of talking to a peer (socket, TLS, truncated stream). Anything else is a bug and raises.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError)


def split_host_port(target: str, default_port: int | None = None) -> tuple[str, int]:
    """``"host:443"``, ``"[::1]:443"`` or (with a default) ``"host"`` -> ``(host, port)``."""
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif target.count(":") == 1:
        host, _, port = target.partition(":")
    else:  # a bare name, or a bare IPv6 address
        host, port = target, ""
    if not port:
        if default_port is None:
            raise ValueError(f"target {target!r} needs a port (host:port)")
        return host, default_port
    return host, int(port)


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (groups contribute their first member)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        if isinstance(current, BaseExceptionGroup) and current.exceptions:
            current = current.exceptions[0]
        else:
            current = current.__cause__ or current.__context__
    return chain


def classify_chain(exc: BaseException) -> tuple[Reason, str]:
    """Like ``classify_exception`` but looks through wrappers (httpcore, anyio) to the root cause."""
    for inner in reversed(exception_chain(exc)):
        if isinstance(inner, (ssl.SSLWantReadError, ssl.SSLZeroReturnError)):
            # asyncio surfaces a peer that hung up mid-handshake this way at times
            return Reason.reset, "connection closed during the TLS handshake"
        reason, detail = classify_exception(inner)
        if reason is not Reason.error:
            return reason, detail
    return classify_exception(exc)


def _peer_label(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class Attempt:
    """One run of a prober: times phases, remembers what it waits for, builds the ``ProbeResult``.

    A prober writes its steps as a coroutine using ``begin``/``end`` around each phase and hands
    it to ``run``, which applies the deadline, turns network outcomes into a reason and closes
    every connection the steps opened.
    """

    def __init__(self, protocol: str, target: str, net: NetContext):
        self.protocol, self.target, self.net = protocol, target, net
        self.started_s = net.since_start()
        self.watch = Stopwatch()
        self.phases: dict[str, float] = {}
        self.info: dict[str, Any] = {}
        self.waiting_for = PHASES[protocol][0]
        self.waiting_note = ""
        self.addresses: list[tuple[str, int]] = []  # where the connect phase dials
        self.verify_error = ""  # OpenSSL's words when the peer certificate was refused
        self._writers: list[asyncio.StreamWriter] = []

    # -- phases -----------------------------------------------------------------------------
    def begin(self, phase: str, note: str = "") -> None:
        self.waiting_for, self.waiting_note = phase, note
        self.watch.restart_lap()

    def end(self, phase: str) -> float:
        self.phases[phase] = self.watch.lap(phase)
        return self.phases[phase]

    def elapsed(self) -> float:
        return self.watch.total

    # -- network steps shared by the socket-level probers --------------------------------------
    async def resolve(self, host: str, port: int) -> list[tuple[str, int]]:
        """Addresses to connect to: the ``connect_to`` override, else DNS (the resolve phase)."""
        routed = self.net.route(host, port)
        self.begin("resolve")
        if routed is not None:
            self.phases["resolve"] = 0.0
            self.info.update(addresses=[routed[0]], override=True, connect_to=_peer_label(*routed))
            self.addresses = [routed]
        else:
            self.addresses = await resolve_addresses(host, port)
            self.end("resolve")
            self.info.update(addresses=[a for a, _ in self.addresses], override=False)
        return self.addresses

    async def connect(self, addrs: list[tuple[str, int]]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """TCP to the first address that accepts (the connect phase)."""
        self.begin("connect")
        last: OSError | None = None
        for addr, port in addrs:
            try:
                reader, writer = await asyncio.open_connection(addr, port)
            except OSError as exc:
                last = exc
                continue
            self._writers.append(writer)
            self.end("connect")
            self.info["peer"] = _peer_label(addr, port)
            return reader, writer
        assert last is not None  # resolve never returns an empty list
        raise last

    async def start_tls(
        self, writer: asyncio.StreamWriter, context: ssl.SSLContext, server_name: str, *, begin: bool = True
    ) -> ssl.SSLObject:
        """TLS on an open connection (the tls phase); returns the SSL object for peer details.

        A refused certificate ends the probe with its reason; the handshake itself completed, so
        its time is kept, and ``verify_error`` lets the caller fetch the certificate unverified.
        ``begin=False`` when the phase already started (PostgreSQL's SSLRequest is part of it).
        """
        if begin:
            self.begin("tls")
        try:
            await writer.start_tls(context, server_hostname=server_name)
        except ssl.SSLCertVerificationError as exc:
            self.end("tls")
            self.verify_error = exc.verify_message or str(exc)
            raise ProbeFailure(*classify_exception(exc)) from exc
        self.end("tls")
        ssl_object = writer.get_extra_info("ssl_object")
        self.info.update(tls_version=ssl_object.version(), cipher=(ssl_object.cipher() or ("",))[0])
        return ssl_object

    # -- outcome ------------------------------------------------------------------------------
    async def run(self, steps: Awaitable[None], deadline_s: float) -> ProbeResult:
        """Await ``steps`` under the deadline and return the result; never raises for the network."""
        try:
            async with asyncio.timeout(deadline_s):
                await steps
        except TimeoutError:
            where = self.waiting_note or f"no answer during {self.waiting_for}"
            self.info["waiting_for"] = self.waiting_for
            return self.result(Reason.timeout, f"{where} (deadline {deadline_s:g} s)")
        except ProbeFailure as failure:
            return self.result(failure.reason, failure.detail)
        except NETWORK_ERRORS as exc:
            return self.result(*classify_chain(exc))
        finally:
            self.close_all()
        return self.result(None, "")

    def result(self, reason: Reason | None, detail: str) -> ProbeResult:
        self.info.setdefault("vantage", vantage(self.addresses[0][0] if self.addresses else None))
        # redacted: a target or detail can quote a URL or a server's message, never a secret
        return ProbeResult(
            protocol=self.protocol, target=redact.text(self.target), ok=reason is None, reason=reason,
            detail=redact.text(detail), phases=dict(self.phases), total_s=self.elapsed(),
            started_s=self.started_s, info=self.info,
        )

    def close_all(self) -> None:
        """Drop every connection at once: a probe never waits on a peer to say goodbye."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()


# -- vantage point: where a probe ran from, and can it reach the address it dialed? -----------------

# Environment variables that say where this process runs (documented by their platforms).
HOSTED_CI = ("RUNNER_ENVIRONMENT", "github-hosted")   # GitHub Actions on a GitHub-hosted runner
CLOUD_RUN = ("K_SERVICE", "CLOUD_RUN_JOB")            # a Cloud Run service / job (egress via its VPC access)


def vantage(address: str | None, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The facts about where a probe ran from, for the address it actually dialed (after a
    ``connect_to`` override): ``host``; ``address``; ``private`` (RFC 1918 / ULA, not loopback);
    ``source`` (the local address the kernel picks for it, from a UDP ``connect``: no packet is
    sent) or ``route_error``; ``routable``: ``yes``, ``no`` or ``unknown`` with ``why``.

    A private address is reachable only from inside its VPC (or over a VPN): ``no`` when the kernel
    has no route to it or this is a GitHub-hosted runner, ``yes`` inside Cloud Run, ``unknown``
    otherwise (a laptop's default route also "routes" 10.x; only a connection proves it).
    """
    import ipaddress
    import os
    import socket

    env = os.environ if environ is None else environ
    out: dict[str, Any] = {"host": socket.gethostname()}
    if not address:
        return out
    out["address"] = address
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return {**out, "private": False, "routable": "unknown", "why": "not an IP address"}
    private = ip.is_private and not (ip.is_loopback or ip.is_link_local)
    out["private"] = private
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.connect((str(ip), 9))  # a route lookup only: UDP connect sends nothing
            out["source"] = udp.getsockname()[0]
    except OSError as exc:
        out["route_error"] = exc.strerror or type(exc).__name__
        return {**out, "routable": "no", "why": f"this host has no route to {ip} ({out['route_error']})"}
    if ip.is_loopback or not private:
        return {**out, "routable": "yes", "why": "loopback" if ip.is_loopback else "a public address"}
    if env.get(HOSTED_CI[0]) == HOSTED_CI[1]:
        return {**out, "routable": "no", "why": "a GitHub-hosted runner is outside every VPC"}
    if any(env.get(v) for v in CLOUD_RUN):
        return {**out, "routable": "yes", "why": "running in Cloud Run (its VPC egress reaches private addresses)"}
    return {**out, "routable": "unknown",
            "why": f"{ip} is private and {out['host']} is not known to be inside its VPC"}


async def resolve_addresses(host: str, port: int) -> list[tuple[str, int]]:
    """DNS for ``host``: unique ``(address, port)`` pairs in the resolver's order."""
    import ipaddress
    import socket

    try:  # an IP literal needs no resolver (and no trip through the thread pool)
        return [(str(ipaddress.ip_address(host.strip("[]"))), port)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[tuple[str, int]] = []
    for *_, sockaddr in infos:
        pair = (str(sockaddr[0]), int(sockaddr[1]))
        if pair not in seen:
            seen.append(pair)
    return seen
