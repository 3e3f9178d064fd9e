"""The contract between the sandbox's control plane (API emulator state) and its data plane.

The data plane (fault proxy, HTTPS/WebSocket services) never looks at scenario files or API
resources directly: it asks a ``DataPlaneView`` how to behave *now*. The control plane implements
the view from its live resource state, so a PATCH through the API changes what the wire does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

ProxyMode = Literal["pass", "delay", "blackhole", "reset"]
CertKind = Literal["valid", "mismatch", "expired", "blackhole"]


@dataclass(frozen=True)
class ProxyPolicy:
    """How the connector's data path treats a new connection to the database."""

    mode: ProxyMode = "pass"
    delay_s: float = 0.0            # added each way (already time-scaled) when mode == "delay"
    max_connections: int | None = None  # concurrent connections admitted; others wait, then time out
    reason: str = ""                # why, for logs ("connector max_instances 3 < demand 6")


class DataPlaneView(Protocol):
    time_scale: float

    def proxy_policy(self) -> ProxyPolicy: ...

    def certificate_for(self, domain: str) -> CertKind:
        """Which certificate the load balancer presents for ``domain`` (SNI)."""

    def ws_lifetime_s(self) -> float | None:
        """Backend service timeout (time-scaled): WebSocket connections are cut after it."""

    def startup_remaining_s(self) -> float:
        """Seconds until services answer /health with 200 (503 until then)."""

    def secret_problems(self) -> list[str]:
        """Required secrets that are missing or have no enabled version (names only)."""

    def secret_value(self, name: str) -> str | None:
        """Latest enabled version's payload, for the services' own use (never exposed by the API)."""

    def blackout(self) -> bool:
        """Nothing answers: every listener accepts and stays silent."""
