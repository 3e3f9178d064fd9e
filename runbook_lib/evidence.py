"""Evidence: everything a phase gathered, archived as files, replayable as-is.

Gather produces an ``Evidence`` bundle; checks are pure functions of it. The bundle is written
under ``evidence/<phase>/`` of a report (redacted) and read back by the replay target, so
replaying a folder reproduces the same results exactly: the collection time (``meta.now``) is
part of the bundle and checks take ``now`` from it, never from the clock.

    evidence/<phase>/manifest.json      meta + index of every record + sha256 of every record file
    evidence/<phase>/api/<key>.json     one control-plane record (request, status, body or error)
    evidence/<phase>/probes/<key>.json  probe samples
    evidence/<phase>/metrics/<key>.json Cloud Monitoring series

The manifest's ``files`` map (record path -> ``sha256:<hex>`` of the bytes on disk) makes the
bundle tamper-evident: ``load`` verifies every listed file and refuses, with one line naming the
file, when one was edited, is missing or is not valid JSON. Saving is the only way to produce a
manifest, so every bundle written by the runbook carries the hashes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from runbook_lib import redact
from runbook_lib.errors import EnvironmentError_
from runbook_lib.probes.base import ProbeResult
from runbook_lib.util import safeio

EVIDENCE_VERSION = 2          # 2: the manifest records a sha256 per record file
RECORD_LIMIT = 64 * safeio.MiB
MANIFEST_LIMIT = 8 * safeio.MiB


class EvidenceError(EnvironmentError_):
    """Recorded evidence that cannot be used as it is (missing, not JSON, edited since it was saved)."""


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
    date: str | None = None               # the answer's Date header, verbatim (the server's clock)
    received_at: datetime | None = None   # the local clock when that answer arrived (checks/clock.py)


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
        files: dict[str, str] = {}
        for kind, items in (("api", self.api), ("probes", self.probes), ("metrics", self.metrics)):
            for key, item in items.items():
                payload = [p.model_dump(mode="json") for p in item] if kind == "probes" else item.model_dump(mode="json")
                rel = f"{kind}/{file_key(key)}.json"
                written = atomic_write_json(folder / rel, {"key": key, "record": redact.data(payload)})
                files[rel] = _digest(written)
                index[kind].append(key)
        meta = self.meta.model_dump(mode="json") | {"version": EVIDENCE_VERSION}
        atomic_write_json(folder / "manifest.json", {"meta": meta, "index": index, "files": files})
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, verify: bool = True) -> "Evidence":
        """Read a bundle back, verifying every record against the manifest's hashes
        (``verify=False`` only for ``reseal``: a deliberate edit of recorded fixtures)."""
        folder = Path(folder)
        manifest = _read_json(folder / "manifest.json", MANIFEST_LIMIT)
        try:
            if not isinstance(manifest, dict):
                raise TypeError("expected a JSON object")
            index, files = manifest["index"], (manifest["files"] if verify else manifest.get("files", {}))
            ev = cls(meta=Meta.model_validate(manifest["meta"]))
            if not isinstance(index, dict) or not isinstance(files, dict):
                raise TypeError
        except KeyError as exc:
            hint = " (recorded before hashes were kept: record it again)" if exc.args[0] == "files" else ""
            raise EvidenceError(f"{folder / 'manifest.json'}: no {exc.args[0]!r} section{hint}") from None
        except (TypeError, ValueError) as exc:
            raise EvidenceError(f"{folder / 'manifest.json'}: not an evidence manifest "
                                f"({' '.join(str(exc).split())[:200]})") from None
        parsers = {"api": ApiRecord.model_validate, "metrics": MetricRecord.model_validate,
                   "probes": lambda rows: [ProbeResult.model_validate(p) for p in rows]}
        for kind, parse in parsers.items():
            for key in index.get(kind, []):
                rel = f"{kind}/{file_key(str(key))}.json"
                record = _read_record(folder, rel, files.get(rel), verify=verify)
                try:
                    getattr(ev, kind)[key] = parse(record)
                except (TypeError, ValueError) as exc:
                    raise EvidenceError(f"{folder / rel}: not a {kind} record "
                                        f"({' '.join(str(exc).split())[:200]})") from None
        return ev


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path, limit: int, missing: str) -> bytes:
    """The file's bytes, bounded by ``limit``; any refusal is one ``EvidenceError`` line naming it."""
    try:
        return safeio.read_bytes(path, limit)
    except FileNotFoundError:
        raise EvidenceError(f"{path}: {missing}") from None
    except ValueError as exc:
        raise EvidenceError(f"{path}: {exc}") from None


def _read_json(path: Path, limit: int) -> Any:
    return _parse(path, _read_bytes(path, limit, "missing from the recorded evidence"))


def _parse(path: Path, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise EvidenceError(f"{path}: expected UTF-8 JSON, byte 0x{data[exc.start]:02x} at offset {exc.start} is not") from None
    except ValueError as exc:
        raise EvidenceError(f"{path}: not valid JSON ({exc})") from None


def _read_record(folder: Path, rel: str, expected: Any, *, verify: bool = True) -> Any:
    path = folder / rel
    data = _read_bytes(path, RECORD_LIMIT, "listed in the manifest but missing")
    if verify and expected is None:
        raise EvidenceError(f"{path}: the manifest records no hash for it; the evidence is incomplete or was edited")
    if verify and _digest(data) != expected:
        raise EvidenceError(f"{path}: changed since it was recorded (sha256 differs from the manifest); "
                            "the evidence was edited: restore it or record it again")
    doc = _parse(path, data)
    if not isinstance(doc, dict) or "record" not in doc:
        raise EvidenceError(f"{path}: not an evidence record (no 'record' field)")
    return doc["record"]


def verify(folder: str | Path) -> None:
    """Raise ``EvidenceError`` unless the bundle in ``folder`` loads and every hash matches."""
    Evidence.load(folder)


def reseal(folder: str | Path) -> Path:
    """Re-save a bundle through ``save`` (fresh hashes) after a deliberate edit of recorded
    fixtures: ``python -m runbook_lib.evidence reseal examples/evidence/issue-1278/diagnose``."""
    return Evidence.load(folder, verify=False).save(folder)


def file_key(key: str) -> str:
    """Evidence keys are stable ids like ``compute.backendHealth.staging-backend-service``."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", key)


def atomic_write_json(path: Path, obj: Any) -> bytes:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


REPORT_FILE_MODE = 0o644


def atomic_write_text(path: Path, content: str) -> bytes:
    """Write-then-rename, redacted: a reader never sees half a file, even if we are killed
    mid-write or the disk fills up (the old file stays). Returns the bytes written."""
    data = redact.text(content).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes 0600 files; reports hold no secrets (by design) and a web server running as
        # another user must be able to serve them, like the notebooks papermill writes (0644)
        os.fchmod(fd, REPORT_FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return data


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 3 or sys.argv[1] != "reseal":
        sys.exit("usage: python -m runbook_lib.evidence reseal FOLDER...")
    for arg in sys.argv[2:]:
        print(f"resealed {reseal(arg)}")
