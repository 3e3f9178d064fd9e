"""Medians, and the peak memory of a process tree while it runs.

Peak memory is sampled, not traced: a thread polls the tree (the process and every descendant,
found by parent pid) every 50 ms and sums RSS; every second it also sums PSS, which splits
shared pages (PostgreSQL's shared buffers, the interpreter's libraries) fairly between the
processes that map them. RSS sums overstate (shared pages counted once per process), PSS sums
may miss a peak shorter than a second. psutil when installed, else /proc directly.
"""
from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

PAGE = os.sysconf("SC_PAGE_SIZE")


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else float("nan")


def summary(values: Iterable[float], digits: int = 4) -> dict:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"n": 0}
    return {"median": round(statistics.median(vals), digits), "min": round(min(vals), digits),
            "max": round(max(vals), digits), "n": len(vals), "values": [round(v, digits) for v in vals]}


def mb(n_bytes: float) -> float:
    return round(n_bytes / 1e6, 1)


# --- process trees -------------------------------------------------------------------------------

def _children_by_parent_proc() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _tree_proc(root: int) -> list[int]:
    tree, out, todo = _children_by_parent_proc(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += tree.get(pid, [])
    return out


def _rss_proc(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss_proc(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def _label(pid: int) -> str:
    """A short name a person recognises: the module run with ``-m``, the kernel, postgres..."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return str(pid)
    args = [a.decode(errors="replace") for a in argv if a]
    if "-m" in args and args.index("-m") + 1 < len(args):
        return args[args.index("-m") + 1]
    if comm.startswith("postgres") or (args and args[0].startswith("postgres")):
        return "postgres: " + (args[0].split(":", 1)[1].strip() if ":" in args[0] else "server")
    if len(args) > 1 and args[1].endswith("/runbook"):
        return "runbook " + " ".join(args[2:3])
    return Path(args[0]).name if args else comm


@dataclass
class TreeMemory:
    """Peak memory of ``pid`` and its descendants while the ``with`` block runs."""

    pid: int
    interval_s: float = 0.05
    pss_every_s: float = 1.0
    peak_rss: int = 0
    peak_pss: int = 0
    peak_processes: int = 0
    peak_breakdown: list[tuple[str, int]] = field(default_factory=list)  # (process, RSS) at the RSS peak
    samples: int = 0
    method: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        try:
            import psutil  # noqa: F401

            self.method = "psutil: RSS summed over the process tree every 50 ms, PSS every 1 s"
        except ImportError:
            self.method = "/proc polling: RSS (statm) summed over the process tree every 50 ms, PSS (smaps_rollup) every 1 s"

    def __enter__(self) -> TreeMemory:
        self._thread = threading.Thread(target=self._loop, name="bench-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _pids(self) -> list[int]:
        try:
            import psutil
        except ImportError:
            return _tree_proc(self.pid)
        try:
            root = psutil.Process(self.pid)
            return [root.pid] + [c.pid for c in root.children(recursive=True)]
        except psutil.Error:
            return []

    def _loop(self) -> None:
        next_pss = 0.0
        while not self._stop.is_set():
            pids = self._pids()
            if pids:
                self.samples += 1
                self.peak_processes = max(self.peak_processes, len(pids))
                rss = {p: _rss_proc(p) for p in pids}
                if sum(rss.values()) > self.peak_rss:
                    self.peak_rss = sum(rss.values())
                    self.peak_breakdown = sorted(((_label(p), r) for p, r in rss.items() if r), key=lambda x: -x[1])
                if time.monotonic() >= next_pss:
                    self.peak_pss = max(self.peak_pss, sum(_pss_proc(p) for p in pids))
                    next_pss = time.monotonic() + self.pss_every_s
            self._stop.wait(self.interval_s)
