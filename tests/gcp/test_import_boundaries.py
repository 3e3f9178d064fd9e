"""What `make lint-imports` proves statically, observed at run time: importing the checks (and
through them every product module's typed views and ``probes.base``) loads no API client, no network
library and no Google client library. This also covers what the contracts cannot see: a package's
``__init__`` importing its modules (``runbook_lib.probes`` imports no protocol module).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_checks_loads_no_api_client_and_no_google_client_library() -> None:
    code = ("import sys\nimport runbook_lib.checks\n"
            "bad = sorted(m for m in sys.modules if m in ('runbook_lib.gcp.client', 'runbook_lib.gcp.monitoring',"
            " 'runbook_lib.gcp.products') or m.split('.')[0] in ('grpc', 'aiohttp', 'httpx', 'httpcore', 'websockets', 'psycopg')"
            " or m.startswith(('google.cloud', 'google.auth', 'google.api_core', 'runbook_lib.sandbox',"
            " 'runbook_lib.gather', 'runbook_lib.run.', 'runbook_lib.probes.tls',"
            " 'runbook_lib.probes.http', 'runbook_lib.probes.websocket')))\n"
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
