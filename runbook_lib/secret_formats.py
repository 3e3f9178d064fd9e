"""Format verdicts for secret values (opt-in: ``secrets.inspect_values: true``).

Pure and value-blind in its output: it sees a value in memory and returns only a *shape*
("postgresql URL, host set, 41 chars") and a reason; never any part of the value.
"""
from __future__ import annotations

from fnmatch import fnmatch
from urllib.parse import urlsplit

MIN_JWT_LENGTH = 32


def verdict(name: str, value: str, *, deprecated_patterns: list[str] = ()) -> tuple[bool, str, str]:
    """``(ok, shape, reason)`` for the secret ``name`` holding ``value``."""
    length = len(value)
    if not value.strip():
        return False, "empty", "the value is empty"
    if "url" in name:
        parts = urlsplit(value.strip())
        wanted = ("postgresql", "postgres") if "database" in name else ("redis", "rediss") if "redis" in name else None
        shape = f"{parts.scheme or 'no'} URL, host {'set' if parts.hostname else 'missing'}, {length} chars"
        if wanted and parts.scheme not in wanted:
            return False, shape, f"expected a {'/'.join(wanted)}:// URL"
        if not parts.hostname:
            return False, shape, "the URL has no host"
        return True, shape, ""
    if "jwt" in name:
        shape = f"{length} chars"
        ok = length >= MIN_JWT_LENGTH
        return ok, shape, "" if ok else f"shorter than {MIN_JWT_LENGTH} characters: too weak to sign tokens"
    if "cors" in name:
        origins = [o.strip() for o in value.split(",") if o.strip()]
        hosts = [urlsplit(o).hostname or "" for o in origins]
        shape = f"{len(origins)} origins"
        bad = [h for h in hosts if any(fnmatch(h, p) for p in deprecated_patterns)]
        if not origins or not all(o.startswith(("https://", "http://localhost")) for o in origins):
            return False, shape, "expected a comma-separated list of https:// origins"
        if bad:
            return False, shape, f"{len(bad)} origins on deprecated domains"
        return True, shape, ""
    if length < 8:
        return False, f"{length} chars", "suspiciously short for a credential"
    return True, f"{length} chars", ""
