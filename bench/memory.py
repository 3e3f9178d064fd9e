"""Where the demo's memory goes: what each of its Python processes has imported before working.

Each role is imported in a fresh interpreter (as the process starts it) and measured: RSS after
the imports, import time, module count, and which heavy libraries came in and through which
``runbook_lib`` module (the first importer on the stack). A baseline interpreter and pandas +
matplotlib alone give the scale.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "matplotlib", "numpy", "grpc", "nbconvert", "papermill", "jupyter_client", "IPython", "psycopg",
         "aiohttp", "httpx", "pydantic", "cryptography", "google.cloud.monitoring_v3")
ROLES = {
    "runner (runbook run)": ["runbook_lib.cli", "runbook_lib.run.runner", "papermill", "nbconvert"],
    "sandbox (python -m runbook_lib.sandbox)": ["runbook_lib.sandbox.__main__"],
    "kernel (ipykernel + import runbook_lib)": ["ipykernel.kernelapp", "runbook_lib"],
    "pandas + matplotlib alone": ["pandas", "matplotlib", "matplotlib.figure"],
    "bare interpreter": [],
}

_CHILD = r"""
import importlib, json, sys, time, traceback
heavy, mods = json.loads(sys.argv[1]), json.loads(sys.argv[2])
first = {}
class Hook:
    def find_spec(self, name, path=None, target=None):
        if name in heavy and name not in first:
            stack = [f"{f.filename.rsplit('/runbook_lib/', 1)[-1]}:{f.lineno}" for f in traceback.extract_stack()
                     if "/runbook_lib/" in f.filename]
            first[name] = "runbook_lib/" + stack[0] if stack else "(not through runbook_lib)"
        return None
sys.meta_path.insert(0, Hook())
t = time.perf_counter()
for m in mods:
    importlib.import_module(m)
took = time.perf_counter() - t
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) * 1024
print(json.dumps({"rss_bytes": rss, "import_s": took, "modules": len(sys.modules),
                  "heavy": {h: first.get(h, "") for h in heavy if h in sys.modules}}))
"""


def import_footprint() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role, modules in ROLES.items():
        proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(HEAVY), json.dumps(modules)], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            out[role] = {"error": proc.stderr[-500:]}
            continue
        out[role] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out
