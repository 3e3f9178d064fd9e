"""The local sandbox: a twin of staging (API emulator, data plane, PostgreSQL), installed as the
``runbook[sandbox]`` extra. Importing it without the extra fails with one line saying so."""
from __future__ import annotations

import importlib.util

from runbook_lib.errors import EnvironmentError_

# import name -> the distribution the [sandbox] extra installs
SANDBOX_MODULES = {"aiohttp": "aiohttp", "psycopg": "psycopg", "googleapiclient": "google-api-python-client",
                   "grpc": "grpcio"}

_missing = [dist for module, dist in SANDBOX_MODULES.items() if importlib.util.find_spec(module) is None]
if _missing:
    raise EnvironmentError_(f"the sandbox needs {', '.join(_missing)}: install runbook[sandbox] "
                            "(pip install 'runbook[sandbox]', or make demo / make test)")
