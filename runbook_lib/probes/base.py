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
from typing import Any

from pydantic import BaseModel, Field

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


@dataclass
class NetContext:
    """How probes reach targets: ``connect_to`` overrides (like ``curl --connect-to``) and trust."""

    connect_to: dict[str, str] = field(default_factory=dict)
    ca_bundle: str | None = None
    t0: float = field(default_factory=time.perf_counter)

    def route(self, host: str, port: int) -> tuple[str, int] | None:
        """The overridden ``(addr, port)`` for ``host:port``, or None to use DNS."""
        target = self.connect_to.get(f"{host}:{port}")
        if target is None:
            return None
        addr, _, p = target.rpartition(":")
        return addr.strip("[]"), int(p)

    def ssl_context(self, *, verify: bool = True) -> ssl.SSLContext:
        if not verify:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        if self.ca_bundle:
            return ssl.create_default_context(cafile=self.ca_bundle)
        import certifi

        return ssl.create_default_context(cafile=certifi.where())

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
