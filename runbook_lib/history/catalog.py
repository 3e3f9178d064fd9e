"""The run catalog: an SQLite index of the report folders, rebuilt from them whenever needed.

``reports/.catalog.sqlite`` (stdlib ``sqlite3``) holds, per run, target, time, phases, state and
verdict, and per check its status, severity and typed measurements. The folders stay the source
of truth: ``sync()`` lists the folders, forgets the ones that are gone, and re-reads a folder when
its signature (status.json and results.json modification time and size) differs from the one
stored. A *finished* run (``finished_at`` in status.json: the runner wrote its end) does not change
any more, so a routine sync trusts its entry without a ``stat``: one new run among 10,000 costs a
directory listing, not 20,000 stats or 10,000 JSON parses. ``sync(verify=True)`` (``runbook
history --verify``) checks every signature, for folders edited by hand. A missing, corrupt or older-schema catalog is
deleted and rebuilt; deleting it by hand is always safe.

Concurrent runs (two CI jobs, a hand run during the nightly) share it safely: WAL journal, a busy
timeout, and every write in one ``BEGIN IMMEDIATE`` transaction (idempotent INSERT OR REPLACE).
A run folder that cannot be read is recorded in ``skipped`` with the reason and reported as a
note; it never stops the catalog.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from runbook_lib.history.runs import FAILING, Check, RunRecord, UnreadableRun, read_run, signature

FILENAME = ".catalog.sqlite"
SCHEMA = 2  # 2: runs.status (the run status the results model recorded)
BUSY_TIMEOUT_S = 30.0
log = logging.getLogger("runbook.history")

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  dir TEXT PRIMARY KEY, target TEXT NOT NULL, started TEXT NOT NULL, finished TEXT NOT NULL,
  state TEXT NOT NULL, final_phase TEXT, phases TEXT NOT NULL, verdict TEXT, line TEXT NOT NULL,
  critical INTEGER, time_scale REAL NOT NULL, pages TEXT NOT NULL, sig TEXT NOT NULL, status TEXT);
CREATE INDEX IF NOT EXISTS runs_by_target ON runs (target, dir);
CREATE TABLE IF NOT EXISTS checks (
  dir TEXT NOT NULL, id TEXT NOT NULL, component TEXT NOT NULL, status TEXT NOT NULL, severity TEXT NOT NULL,
  PRIMARY KEY (dir, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS measures (
  dir TEXT NOT NULL, check_id TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
  PRIMARY KEY (dir, check_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS skipped (dir TEXT PRIMARY KEY, sig TEXT NOT NULL, note TEXT NOT NULL);
"""
TABLES = ("runs", "checks", "measures", "skipped")


@dataclass
class SyncReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    notes: list[str] = field(default_factory=list)   # one per folder skipped in this sync


class Catalog:
    """Open with ``Catalog(reports_root)``; use as a context manager or call ``close()``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / FILENAME
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:  # not a database, or one from another schema
            log.warning("catalog %s unusable (%s): rebuilding it from the run folders", self.path, exc)
            self._discard()
            self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            with self._write(db):
                for stmt in filter(str.strip, DDL.split(";")):
                    db.execute(stmt)
                row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
                elif row[0] != str(SCHEMA):
                    raise sqlite3.DatabaseError(f"catalog schema {row[0]}, this runbook writes {SCHEMA}")
        except BaseException:
            db.close()
            raise
        return db

    def _discard(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    @staticmethod
    @contextlib.contextmanager
    def _write(db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- keeping it in step with the folders ----------------------------------------------

    def sync(self, *, verify: bool = False) -> SyncReport:
        """Re-read every folder that is new or changed, forget the ones that are gone."""
        rows = self.db.execute("SELECT dir, sig, finished FROM runs UNION ALL SELECT dir, sig, '' FROM skipped").fetchall()
        known = {d: sig for d, sig, _ in rows}
        settled = set() if verify else {d for d, _, finished in rows if finished}
        with os.scandir(self.root) as it:
            names = [e.name for e in it if not e.name.startswith(".")]
        seen: dict[str, str] = {}
        for name in names:
            if name in settled:
                seen[name] = known[name]
                continue
            path = os.path.join(self.root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                sig = signature(path)
                if sig is not None:
                    seen[name] = sig
        changed = [d for d, s in seen.items() if known.get(d) != s]
        gone = [d for d in known if d not in seen]
        report = SyncReport(removed=len(gone))
        records = self._read(changed, report)
        if records or gone:
            with self._write(self.db):
                for d in gone:
                    self._forget(d)
                for d, rec in records:
                    self._store(d, seen[d], rec)
        report.added = sum(1 for d, _ in records if d not in known)
        report.updated = len(records) - report.added
        return report

    def update(self, run_dir: Path) -> list[str]:
        """Catalog one folder now (the run that just finished); returns its note if skipped."""
        run_dir = Path(run_dir)
        sig = signature(run_dir)
        if sig is None:
            return []
        report = SyncReport()
        records = self._read([run_dir.name], report)
        with self._write(self.db):
            for d, rec in records:
                self._store(d, sig, rec)
        return report.notes

    def _read(self, names: list[str], report: SyncReport) -> list[tuple[str, RunRecord | str]]:
        out: list[tuple[str, RunRecord | str]] = []
        for d in names:
            try:
                rec = read_run(self.root / d)
            except UnreadableRun as exc:
                note = f"{d}: skipped: {exc}"
                report.notes.append(note)
                log.info("catalog: %s", note)
                out.append((d, note))
                continue
            if rec is not None:
                out.append((d, rec))
        return out

    def _forget(self, d: str) -> None:
        for table in TABLES:
            self.db.execute(f"DELETE FROM {table} WHERE dir = ?", (d,))

    def _store(self, d: str, sig: str, rec: RunRecord | str) -> None:
        self._forget(d)
        if isinstance(rec, str):
            self.db.execute("INSERT INTO skipped VALUES (?, ?, ?)", (d, sig, rec))
            return
        self.db.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (d, rec.target, rec.started, rec.finished, rec.state, rec.final_phase, json.dumps(rec.phases),
             rec.verdict, rec.line, rec.critical, rec.time_scale, json.dumps(rec.pages), sig, rec.status))
        self.db.executemany("INSERT INTO checks VALUES (?,?,?,?,?)",
                            [(d, c.id, c.component, c.status, c.severity) for c in rec.checks.values()])
        self.db.executemany("INSERT INTO measures VALUES (?,?,?,?)",
                            [(d, c.id, k, v) for c in rec.checks.values() for k, v in c.measurements.items()])

    # --- reading ---------------------------------------------------------------------------

    def notes(self) -> list[str]:
        return [n for (n,) in self.db.execute("SELECT note FROM skipped ORDER BY dir")]

    def targets(self) -> list[str]:
        return [t for (t,) in self.db.execute("SELECT DISTINCT target FROM runs ORDER BY target")]

    def runs(self, target: str | None = None, *, limit: int | None = None, completed: bool = False,
             before: str | None = None) -> list[RunRecord]:
        """Runs newest first, without their checks. Folder names start with the UTC start time, so
        the order is the folder name's (and the (target, dir) index serves it without a sort)."""
        where, args = [], []
        if target is not None:
            where.append("target = ?")
            args.append(target)
        if completed:
            where.append("state = 'COMPLETE' AND verdict IS NOT NULL")
        if before is not None:
            where.append("dir < ?")
            args.append(before)
        sql = (f"SELECT {COLUMNS} FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY dir DESC" + (" LIMIT ?" if limit else ""))
        if limit:
            args.append(limit)
        return [_record(r) for r in self.db.execute(sql, args)]

    def with_checks(self, runs: list[RunRecord]) -> list[RunRecord]:
        """Fill in each run's checks and measurements (one query per table for all the runs)."""
        if not runs:
            return runs
        by_dir = {r.dir: r for r in runs}
        marks = ",".join("?" * len(by_dir))
        numbers: dict[tuple[str, str], dict[str, float]] = {}
        for d, cid, name, value in self.db.execute(
                f"SELECT dir, check_id, name, value FROM measures WHERE dir IN ({marks})", list(by_dir)):
            numbers.setdefault((d, cid), {})[name] = value
        for d, cid, comp, status, sev in self.db.execute(
                f"SELECT dir, id, component, status, severity FROM checks WHERE dir IN ({marks})", list(by_dir)):
            by_dir[d].checks[cid] = Check(cid, comp, status, sev, numbers.get((d, cid), {}))
        return runs

    def run(self, d: str) -> RunRecord | None:
        rows = self.db.execute(f"SELECT {COLUMNS} FROM runs WHERE dir = ?", (d,)).fetchall()
        return next(iter(self.with_checks([_record(r) for r in rows])), None)

    def previous_completed(self, target: str, before: str) -> RunRecord | None:
        """The latest COMPLETE run with a verdict of ``target`` whose folder sorts before ``before``."""
        found = self.runs(target, limit=1, completed=True, before=before)
        return self.with_checks(found)[0] if found else None

    def failing_since(self, target: str, check_id: str, upto: str) -> tuple[str, str, int] | None:
        """The first run of the current failing streak of ``check_id`` up to run ``upto`` (inclusive):
        (dir, started, number of runs in the streak); None if it is not failing in ``upto``."""
        rows = self.db.execute(
            "SELECT r.dir, r.started, c.status FROM runs r LEFT JOIN checks c ON c.dir = r.dir AND c.id = ? "
            "WHERE r.target = ? AND r.dir <= ? AND r.state = 'COMPLETE' AND r.verdict IS NOT NULL "
            "ORDER BY r.dir DESC LIMIT 1000", (check_id, target, upto))
        first, n = None, 0
        for d, started, status in rows:
            if status not in FAILING:
                break
            first, n = (d, started), n + 1
        return (first[0], first[1], n) if first else None

    def dump(self) -> dict[str, list[tuple]]:
        """Every row of every table, sorted: what "the same content" means for a rebuild."""
        return {t: sorted(self.db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


COLUMNS = "dir, target, started, state, phases, final_phase, verdict, line, critical, time_scale, finished, pages, status"


def _record(r: tuple) -> RunRecord:
    return RunRecord(dir=r[0], target=r[1], started=r[2], state=r[3], phases=json.loads(r[4]), final_phase=r[5],
                     verdict=r[6], line=r[7], critical=r[8], time_scale=r[9], finished=r[10], pages=json.loads(r[11]),
                     status=r[12])


def open_synced(root: str | Path) -> tuple[Catalog, SyncReport]:
    cat = Catalog(root)
    try:
        return cat, cat.sync()
    except BaseException:
        cat.close()
        raise
