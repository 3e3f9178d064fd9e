"""runbook: diagnose, remediate and hand back the GCP staging environment of incident #1278.

The public surface for notebooks and scripts is re-exported here; everything else is internal.
"""
from .errors import RunbookError, ParameterError, ApiError, RemediationError, GitHubError, RunError
from .params import Params, load_params
from .results import CheckResult, ResultSet, Severity, Status, Verdict, root_causes
from .phase import Phase
from .render import plots, tables
from .render.tables import show
from .golden_path import waterfall_steps as golden_steps


def summary_markdown(phase: "Phase"):
    """The success declaration as it will be posted on the issue, rendered."""
    from IPython.display import Markdown

    return Markdown((phase.report_dir / "summary.md").read_text())

__all__ = [
    "ApiError", "CheckResult", "GitHubError", "ParameterError", "Params", "Phase", "RemediationError",
    "ResultSet", "RunError", "golden_steps", "summary_markdown", "RunbookError", "Severity", "Status", "Verdict", "load_params", "plots",
    "root_causes", "show", "tables",
]
__version__ = "0.1.0"
