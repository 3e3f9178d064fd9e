"""Values a person supplies (passwords, secret payloads): read late, kept in memory, masked.

Parameters only ever name *where* a value is (an environment variable or a file); the value is
read here, registered with the redactor so it can never be written anywhere, and returned.
"""
from __future__ import annotations

import os
from pathlib import Path

from runbook_lib import redact
from runbook_lib.errors import ParameterError


def read_value(*, env: str | None, file: str | None, what: str) -> str | None:
    """The value from ``$env`` or the first line of ``file``; None if neither is configured."""
    value: str | None = None
    if env:
        value = os.environ.get(env)
        if value is None and not file:
            raise ParameterError("environment", env, f"{what}: set the environment variable {env}")
    if value is None and file:
        try:
            value = Path(file).read_text().splitlines()[0] if Path(file).stat().st_size else ""
        except (OSError, IndexError):
            raise ParameterError("parameters", file, f"{what}: expected a readable file holding the value") from None
    redact.register(value)
    return value


def read_env_file(file: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments allowed); every value is registered for redaction."""
    values: dict[str, str] = {}
    try:
        lines = Path(file).read_text().splitlines()
    except OSError:
        raise ParameterError("parameters", file, "expected a readable KEY=VALUE file of secret values") from None
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value
        redact.register(value)
    return values
