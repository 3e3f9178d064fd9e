"""The wall clock, in UTC, in the three spellings the runbook writes.

Every "now" that ends up in a file (status.json, the audit log, fleet rows, the lock holder, the
collection time of evidence) comes from here, so the spelling is decided once and a test can
freeze the clock in one place (``monkeypatch.setattr(clock, "utc_now", ...)``). Checks never call
it: they judge ``evidence.now`` so that replay gives the same verdicts.
"""
from __future__ import annotations

from datetime import datetime, timezone

STAMP = "%Y%m%dT%H%M%SZ"  # folder names: sorts by time, no characters a file system dislikes


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def iso(when: datetime, timespec: str = "seconds") -> str:
    """``when`` as ISO 8601 (``2026-12-01T17:30:00+00:00``); ``timespec`` as ``datetime.isoformat``."""
    return when.isoformat(timespec=timespec)


def iso_now(timespec: str = "seconds") -> str:
    """Now as ISO 8601; the audit log uses ``timespec="milliseconds"`` to order its events."""
    return iso(utc_now(), timespec)


def readable(iso: str) -> str:
    """An ISO 8601 time recorded earlier as a person reads it (``2026-12-01 17:30 UTC``); a value that
    does not parse is shown as it is."""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso or "time unknown"


def stamp_now() -> str:
    """Now as a compact sortable stamp for folder and fleet ids (``20261201T173000Z``)."""
    return utc_now().strftime(STAMP)
