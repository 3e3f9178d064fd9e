"""The environment a child process gets: notebook kernels, the sandbox, PostgreSQL.

Only what Python, Jupyter and the system libraries need, plus the variables the parameters name
(database and golden-path passwords, secret values for remediation). Nothing else of ours is
passed on: no ``GITHUB_TOKEN``, no cloud keys the parameters do not name.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from runbook_lib.params import Params


_BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TEMP", "TMP",
             "PYTHONPATH", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONWARNINGS",
             "VIRTUAL_ENV", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
             "JUPYTER_PLATFORM_DIRS", "IPYTHONDIR", "MPLBACKEND", "MPLCONFIGDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
             "REQUESTS_CA_BUNDLE", "RUNBOOK_PG_BIN", "COVERAGE_PROCESS_START",
             # Google credentials for live targets (ADC): where to find them, never a key itself
             "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GOOGLE_CLOUD_PROJECT")


def names_from_params(params: Params) -> set[str]:
    """Every environment variable the parameters name (passwords, secret values)."""
    names = {params.cloudsql.password_env, params.golden_path.password_env,
             *params.remediation.secret_values.env.values()}
    return {n for n in names if n}


def minimal_env(names: set[str] | frozenset[str] = frozenset(), source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: the base variables plus ``names``, taken from ``source``."""
    source = os.environ if source is None else source
    return {k: source[k] for k in (*_BASE_ENV, *sorted(names)) if k in source}
