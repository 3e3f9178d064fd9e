"""Redaction applied to everything the runbook writes (evidence, logs, reports, errors).

Two layers: patterns that catch credentials by shape (DSN passwords, bearer tokens, secret
payloads, password-like JSON keys), and values registered at run time (a database password or
a secret value read for remediation) that are masked wherever they appear.
"""
from __future__ import annotations

import re
from typing import Any

MASK = "***REDACTED***"

_PATTERNS = [
    # scheme://user:password@host  -> scheme://user:***@host
    (re.compile(r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/\s@]*:)(?P<secret>[^@\s/]+)(?=@)"), r"\g<pre>" + MASK),
    # Authorization: Bearer xxx / token xxx
    (re.compile(r"(?i)\b(bearer|token)\s+[A-Za-z0-9._~+/\-]{8,}=*"), r"\1 " + MASK),
    # password=xxx in libpq key/value strings and query strings
    (re.compile(r"(?i)\b(password|passwd|pwd)=([^\s&;]+)"), r"\1=" + MASK),
    # GitHub tokens, Google OAuth access tokens
    (re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b"), MASK),
    (re.compile(r"\bya29\.[A-Za-z0-9._\-]{10,}"), MASK),
]

_SECRET_KEYS = re.compile(r"(?i)^(password|passwd|token|access_token|refresh_token|private_key|client_secret|data)$")
# {"name": "SMTP_PASSWORD", "value": "..."} (Cloud Run env, flags): the value is secret by its name.
_SECRET_NAMES = re.compile(r"(?i)(password|passwd|secret|token|api_?key|private_?key|credential)")

_registered: set[str] = set()


def register(value: str | None) -> None:
    """Mask this exact value from now on, wherever it appears (min 4 chars to stay meaningful)."""
    if value and len(value) >= 4:
        _registered.add(value)


def text(s: str) -> str:
    for value in sorted(_registered, key=len, reverse=True):
        s = s.replace(value, MASK)
    for pattern, repl in _PATTERNS:
        s = pattern.sub(repl, s)
    return s


def data(obj: Any, _key: str = "") -> Any:
    """Redact a JSON-like structure: secret-named keys are masked, strings are scrubbed."""
    if isinstance(obj, dict):
        named_secret = isinstance(obj.get("name"), str) and bool(_SECRET_NAMES.search(obj["name"]))
        out = {}
        for k, v in obj.items():
            if _SECRET_KEYS.match(str(k)) and isinstance(v, (str, bytes)) and v:
                out[k] = MASK
            elif named_secret and k == "value" and isinstance(v, str) and v:
                out[k] = MASK
            else:
                out[k] = data(v, str(k))
        return out
    if isinstance(obj, list):
        return [data(v, _key) for v in obj]
    if isinstance(obj, str):
        return text(obj)
    return obj
