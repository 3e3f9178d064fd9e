"""The run catalog: built from the folders, incremental, rebuilt the same, corrupt runs skipped with a note."""
from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from runbook_lib.history import Catalog
from runbook_lib.history.catalog import FILENAME
from runbook_lib.history.synthetic import write_run

BROKEN = {"connector.saturation", "sql.connect", "tls.api-staging.hostname"}


def reports(tmp_path: Path, n: int = 4) -> Path:
    for i in range(n):
        write_run(tmp_path, i, failing=BROKEN if i < 2 else set())
    return tmp_path


def test_sync_catalogs_every_run_with_checks_and_numbers(tmp_path):
    root = reports(tmp_path)
    with Catalog(root) as cat:
        first = cat.sync()
        assert (first.added, first.updated, first.removed, first.notes) == (4, 0, 0, [])
        runs = cat.runs("sandbox")
        assert [r.verdict for r in runs] == ["HEALTHY", "HEALTHY", "UNHEALTHY", "UNHEALTHY"]  # newest first
        oldest = cat.run(runs[-1].dir)
        assert oldest.failing == BROKEN and oldest.checks["sql.connect"].severity == "critical"
        assert oldest.checks["sql.connect"].measurements == {"p50_s": 30.0, "p95_s": 41.0}
        again = cat.sync()
    assert (again.added, again.updated, again.removed) == (0, 0, 0)


def test_a_changed_folder_is_re_read_and_a_deleted_one_forgotten(tmp_path):
    root = reports(tmp_path)
    with Catalog(root) as cat:
        cat.sync()
        newest = cat.runs()[0]
        doc = json.loads((root / newest.dir / "results.json").read_text())
        doc["phases"]["diagnose"]["results"][0]["status"] = "ERROR"
        doc["phases"]["diagnose"]["results"][0]["reason"] = "read failed"
        (root / newest.dir / "results.json").write_text(json.dumps(doc) + " ")   # size changes too
        oldest = cat.runs()[-1].dir
        for f in (root / oldest).iterdir():
            f.unlink()
        (root / oldest).rmdir()
        report = cat.sync()      # a finished run does not change: trusted without a stat
        assert (report.added, report.updated, report.removed) == (0, 0, 1)
        assert cat.run(oldest) is None and cat.run(newest.dir).failing == set()
        report = cat.sync(verify=True)   # a folder edited by hand: every signature checked
        assert (report.added, report.updated, report.removed) == (0, 1, 0)
        assert cat.run(newest.dir).failing == {"connector.state"}


def test_a_run_in_progress_is_re_read_as_it_changes(tmp_path):
    d = write_run(tmp_path, 0, state="INCOMPLETE")
    status = json.loads((d / "status.json").read_text())
    status.pop("finished_at")
    (d / "status.json").write_text(json.dumps(status))
    with Catalog(tmp_path) as cat:
        cat.sync()
        assert cat.run(d.name).state == "INCOMPLETE"
        status.update(state="COMPLETE", finished_at="2026-01-01T04:30:00+00:00")
        (d / "status.json").write_text(json.dumps(status, indent=1))
        assert cat.sync().updated == 1 and cat.run(d.name).state == "COMPLETE"


def test_deleting_the_catalog_rebuilds_the_same_content(tmp_path):
    root = reports(tmp_path)
    with Catalog(root) as cat:
        cat.sync()
        before = cat.dump()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{root / FILENAME}{suffix}").unlink(missing_ok=True)
    with Catalog(root) as cat:
        assert cat.sync().added == 4
        assert cat.dump() == before
    assert sum(len(rows) for rows in before.values()) > 4 * 25


def test_a_corrupt_or_half_written_run_is_skipped_with_a_note(tmp_path):
    root = reports(tmp_path)
    old = write_run(root, 99, failing={"sql.connect"})
    (old / "results.json").write_text('{"schema_version": 1, "phases": {"diagnose": {"resu')   # cut mid-write
    half = write_run(root, 98)
    (half / "results.json").unlink()                       # COMPLETE, yet no results
    running = write_run(root, 97, state="INCOMPLETE")
    (running / "results.json").unlink()                    # still running: a normal INCOMPLETE run
    with Catalog(root) as cat:
        report = cat.sync()
        assert sorted(report.notes) == sorted([
            f"{old.name}: skipped: results.json is not valid JSON "
            "(Unterminated string starting at: line 1 column 47 (char 46))",
            f"{half.name}: skipped: status.json says COMPLETE but there is no results.json",
        ])
        assert cat.notes() == sorted(report.notes)
        assert {r.dir for r in cat.runs()} == {d.name for d in root.iterdir() if d.is_dir()} - {old.name, half.name}
        assert cat.run(running.name).state == "INCOMPLETE"
        assert cat.sync().notes == []          # not re-read until it changes
        write_run(root, 96)                    # the rest of the catalog still updates
        assert cat.sync().added == 1


def test_a_garbage_catalog_file_is_replaced(tmp_path):
    root = reports(tmp_path)
    (root / FILENAME).write_bytes(b"this is not a database" * 100)
    with Catalog(root) as cat:
        assert cat.sync().added == 4


def _writer(root: str, start: int, q) -> None:
    try:
        for i in range(start, start + 15):
            d = write_run(Path(root), i, target="sandbox" if i % 2 else "staging")
            with Catalog(root) as cat:
                cat.update(d)
                cat.sync()
        q.put("ok")
    except BaseException as exc:  # reported to the test, which fails with it
        q.put(repr(exc))


def test_concurrent_runs_update_the_catalog_safely(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), k * 100, q)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [q.get(timeout=5) for _ in procs] == ["ok"] * 3
    with Catalog(tmp_path) as cat:
        cat.sync()
        assert len(cat.runs()) == 45
        assert cat.db.execute("SELECT COUNT(*) FROM checks").fetchone()[0] == 45 * 25
        assert cat.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cat.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
