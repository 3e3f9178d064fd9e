"""Evidence: everything a phase gathered, archived as files, replayable as-is.

Gather produces an ``Evidence`` bundle; checks are pure functions of it. The bundle is written
under ``evidence/<phase>/`` of a report (redacted) and read back by the replay target, so
replaying a folder reproduces the same results exactly: the collection time (``meta.now``) is
part of the bundle and checks take ``now`` from it, never from the clock.

    evidence/<phase>/manifest.json      meta + index of every record
    evidence/<phase>/api/<key>.json     one control-plane record (request, status, body or error)
    evidence/<phase>/probes/<key>.json  probe samples
    evidence/<phase>/metrics/<key>.json Cloud Monitoring series
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from . import redact
from .probes.base import ProbeResult

EVIDENCE_VERSION = 1


class ErrorInfo(BaseModel):
    kind: str           # see errors.ApiError kinds, or a probe Reason
    message: str        # actionable, already redacted
    status: int | None = None


class ApiRecord(BaseModel):
    """One logical control-plane read (a list is all its pages merged into ``body``)."""

    key: str
    method: str = "GET"
    url: str = ""
    ok: bool
    status: int | None = None
    body: Any = None
    error: ErrorInfo | None = None
    elapsed_s: float = 0.0
    pages: int = 1


class Point(BaseModel):
    t: datetime
    v: float


class Series(BaseModel):
    metric_type: str
    labels: dict[str, str] = Field(default_factory=dict)
    unit: str = ""
    points: list[Point] = Field(default_factory=list)


class MetricRecord(BaseModel):
    key: str
    metric_type: str
    ok: bool
    series: list[Series] = Field(default_factory=list)
    error: ErrorInfo | None = None


class Meta(BaseModel):
    version: int = EVIDENCE_VERSION
    phase: str
    target: str
    mode: str
    now: datetime
    time_scale: float = 1.0
    scenario: str | None = None
    elapsed_s: float = 0.0


class Evidence(BaseModel):
    meta: Meta
    api: dict[str, ApiRecord] = Field(default_factory=dict)
    probes: dict[str, list[ProbeResult]] = Field(default_factory=dict)
    metrics: dict[str, MetricRecord] = Field(default_factory=dict)

    @property
    def now(self) -> datetime:
        return self.meta.now

    # -- archive ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        index: dict[str, list[str]] = {"api": [], "probes": [], "metrics": []}
        for kind, items in (("api", self.api), ("probes", self.probes), ("metrics", self.metrics)):
            for key, item in items.items():
                payload = [p.model_dump(mode="json") for p in item] if kind == "probes" else item.model_dump(mode="json")
                atomic_write_json(folder / kind / f"{file_key(key)}.json", {"key": key, "record": redact.data(payload)})
                index[kind].append(key)
        atomic_write_json(folder / "manifest.json", {"meta": self.meta.model_dump(mode="json"), "index": index})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Evidence":
        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        ev = cls(meta=Meta.model_validate(manifest["meta"]))
        for key in manifest["index"].get("api", []):
            ev.api[key] = ApiRecord.model_validate(_read(folder / "api", key))
        for key in manifest["index"].get("probes", []):
            ev.probes[key] = [ProbeResult.model_validate(p) for p in _read(folder / "probes", key)]
        for key in manifest["index"].get("metrics", []):
            ev.metrics[key] = MetricRecord.model_validate(_read(folder / "metrics", key))
        return ev


def _read(folder: Path, key: str) -> Any:
    return json.loads((folder / f"{file_key(key)}.json").read_text())["record"]


def file_key(key: str) -> str:
    """Evidence keys are stable ids like ``compute.backendHealth.staging-backend-service``."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", key)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


REPORT_FILE_MODE = 0o644


def atomic_write_text(path: Path, content: str) -> None:
    """Write-then-rename: a reader never sees half a file, even if we are killed mid-write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes 0600 files; reports hold no secrets (by design) and a web server running as
        # another user must be able to serve them, like the notebooks papermill writes (0644)
        os.fchmod(fd, REPORT_FILE_MODE)
        with os.fdopen(fd, "w") as fh:
            fh.write(redact.text(content))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
