"""runbook: diagnose, remediate and hand back the GCP staging environment of incident #1278.

The public surface for notebooks and scripts is re-exported here; everything else is internal.
"""
from .errors import RunbookError, ParameterError, ApiError, RemediationError, GitHubError, RunError
from .params import Params, load_params
from .results import CheckResult, ResultSet, Severity, Status, Verdict, root_causes
from .phase import Phase
from .render import plots, tables
from .render.tables import show

__all__ = [
    "ApiError", "CheckResult", "GitHubError", "ParameterError", "Params", "Phase", "RemediationError",
    "ResultSet", "RunError", "RunbookError", "Severity", "Status", "Verdict", "load_params", "plots",
    "root_causes", "show", "tables",
]
__version__ = "0.1.0"
