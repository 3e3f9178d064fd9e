"""Timestamps as Google APIs write them (RFC 3339, up to nanoseconds, ``Z`` or an offset)."""
from __future__ import annotations

import re
from datetime import datetime, timezone

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(value: str | datetime | None) -> datetime | None:
    """An aware datetime, or None when absent or unreadable (callers say "unknown", not "now")."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = _FRACTION.sub(r"\1", str(value).strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
