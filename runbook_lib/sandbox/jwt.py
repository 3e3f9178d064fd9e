"""Minimal HS256 JSON Web Tokens for the sandbox services (RFC 7519 subset, no dependency).

Only what the sandbox's auth service needs: sign claims with a shared secret, verify the
signature and the expiry. ``now`` is passed in so tests control time.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from runbook_lib.errors import RunbookError

_HEADER = {"alg": "HS256", "typ": "JWT"}


class TokenError(RunbookError):
    """A token is malformed, badly signed or expired (the message never contains the token)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(signing_input: str, key: str) -> str:
    return _b64(hmac.new(key.encode(), signing_input.encode("ascii"), hashlib.sha256).digest())


def encode(claims: dict[str, Any], key: str) -> str:
    header = _b64(json.dumps(_HEADER, separators=(",", ":")).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{_sign(signing_input, key)}"


def decode(token: str, key: str, *, now: float) -> dict[str, Any]:
    """The verified claims; raises ``TokenError`` saying what is wrong."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("token is not a JWT (expected three dot-separated parts)")
    header_b64, payload_b64, signature = parts
    try:
        header = json.loads(_unb64(header_b64))
        claims = json.loads(_unb64(payload_b64))
    except (ValueError, TypeError):
        raise TokenError("token header or payload is not base64url JSON") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenError("token algorithm is not HS256")
    if not hmac.compare_digest(signature, _sign(f"{header_b64}.{payload_b64}", key)):
        raise TokenError("token signature does not verify")
    if not isinstance(claims, dict):
        raise TokenError("token payload is not an object")
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and now >= exp:
        raise TokenError("token expired")
    return claims
