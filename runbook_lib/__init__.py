"""runbook: diagnose, remediate and hand back the GCP staging environment of incident #1278.

The public surface for notebooks and scripts is re-exported here, lazily: the CLI runner and the
sandbox process import ``runbook_lib.<module>`` without paying for pandas and matplotlib, which
only notebooks (tables and plots) need.
"""
from importlib import import_module
from typing import TYPE_CHECKING, Any

from runbook_lib.errors import ApiError, GitHubError, ParameterError, RemediationError, RunbookError, RunError

_LAZY = {
    "Params": ("params", "Params"), "load_params": ("params", "load_params"),
    "CheckResult": ("results", "CheckResult"), "ResultSet": ("results", "ResultSet"),
    "Severity": ("results", "Severity"), "Status": ("results", "Status"), "Verdict": ("results", "Verdict"),
    "root_causes": ("results", "root_causes"),
    "Phase": ("run.phase", "Phase"),
    "plots": ("render.plots", None), "tables": ("render.tables", None),
    "show": ("render.tables", "show"),
    "golden_steps": ("gather.golden_path", "waterfall_steps"),
    "since_last_run": ("history", "since_last_run_view"),
}

if TYPE_CHECKING:  # for readers and type checkers; at run time these load on first use
    from runbook_lib.gather.golden_path import waterfall_steps as golden_steps
    from runbook_lib.params import Params, load_params
    from runbook_lib.render import plots, tables
    from runbook_lib.render.tables import show
    from runbook_lib.results import CheckResult, ResultSet, Severity, Status, Verdict, root_causes
    from runbook_lib.run.phase import Phase


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'runbook_lib' has no attribute {name!r}") from None
    mod = import_module(f".{module}", __name__)
    return mod if attr is None else getattr(mod, attr)


def summary_markdown(phase: "Phase"):
    """The success declaration as it will be posted on the issue, rendered."""
    from IPython.display import Markdown

    return Markdown((phase.report_dir / "summary.md").read_text())


__all__ = [
    "ApiError", "CheckResult", "GitHubError", "ParameterError", "Params", "Phase", "RemediationError",
    "ResultSet", "RunError", "RunbookError", "Severity", "Status", "Verdict", "golden_steps", "load_params",
    "plots", "root_causes", "show", "summary_markdown", "tables",
]
__version__ = "0.1.0"
