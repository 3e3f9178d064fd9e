"""What the figures were measured on: CPU, memory, kernel, Python, key package versions."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = ("papermill", "nbconvert", "ipykernel", "jupyter_client", "httpx", "httpcore", "psycopg", "aiohttp",
            "pandas", "matplotlib", "pyinstrument", "psutil")


def _cpuinfo() -> tuple[str, int]:
    model, count = "", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("processor"):
                count += 1
    except OSError:
        pass
    return model or platform.processor() or "unknown", count or (os.cpu_count() or 0)


def _mem_total_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unavailable"


SOURCES = ("runbook_lib", "notebooks", "parameters")


def code_state(repo: Path) -> dict[str, Any]:
    """Which code was measured: the commit, uncommitted changes, the newest source file's mtime
    (compared at the end of a run: another session may edit the code while the bench runs)."""
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
            return out.stdout.rstrip() if out.returncode == 0 else ""  # porcelain lines start with a space
        except (OSError, subprocess.SubprocessError):
            return ""

    newest = max((p.stat().st_mtime for d in SOURCES for p in (repo / d).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts), default=0.0)
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "source_trees": git("rev-parse", *(f"HEAD:{d}" for d in SOURCES)).split(),
            "uncommitted": [ln[3:] for ln in git("status", "--porcelain", "--", *SOURCES).splitlines() if ln.strip()],
            "newest_source_mtime": newest}


def same_code(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same measured code: the source trees, uncommitted files and newest mtime (not the commit:
    a commit that only adds bench results changes nothing measured)."""
    keys = ("source_trees", "uncommitted", "newest_source_mtime")
    return all(a.get(k) == b.get(k) for k in keys)


def describe() -> dict[str, Any]:
    model, count = _cpuinfo()
    try:
        from runbook_lib.sandbox.postgres import find_binaries

        postgres = find_binaries(run_as_nobody=os.geteuid() == 0).version
    except Exception as exc:  # noqa: BLE001 - a description, not a measurement: say why it is missing
        postgres = f"unavailable ({type(exc).__name__})"
    return {
        "cpu_model": model,
        "cpus": count,
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_total_mb": round(_mem_total_bytes() / 1e6),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "kernel": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "postgres": postgres,
        "curl": _tool_version(["/usr/bin/curl", "--version"]),
        "packages": {name: _version(name) for name in PACKAGES},
    }


def one_line(m: dict[str, Any]) -> str:
    return (f"{m['cpu_model']}, {m['cpus']} CPUs ({m['cpus_usable']} usable), {m['memory_total_mb'] / 1000:.1f} GB RAM, "
            f"{m['kernel']}, Python {m['python']}, load average at start {m['load_average_at_start']}")
