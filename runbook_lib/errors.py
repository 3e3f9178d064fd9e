"""Every error the runbook raises derives from ``RunbookError``.

    RunbookError
    ├── ParameterError        bad parameters file or override (exit 2, before any kernel starts)
    ├── ScenarioError         bad sandbox scenario file
    ├── EnvironmentError_     the target cannot be reached at all (sandbox not running, no ADC)
    ├── ApiError              a control-plane call failed; ``kind`` says how
    │   (kinds: permission, not_found, api_disabled, unauthenticated, rate_limited, server,
    │    timeout, network, malformed, bad_request, conflict (409/412: changed or already
    │    exists), operation (a long-running operation finished with an error))
    ├── RemediationError      a plan could not be applied (wrong confirmation, failed action)
    ├── GitHubError           ``runbook attach`` failed (401/403/404/rate limit)
    ├── RunError              a papermill run failed (dead kernel, failing cell)
    └── HistoryError          ``runbook diff`` / ``history``: no such run folder, target or earlier run

Foreign exceptions (httpx, grpc, ssl, socket) are translated at the edge that calls them, with a
message that says what to do next.
"""
from __future__ import annotations


class RunbookError(Exception):
    """Root of every runbook error. ``str(err)`` is a message a person on call can act on."""

    exit_code = 2


class ParameterError(RunbookError):
    """A parameters file or ``-p`` override is invalid. One line: file, key path, expectation."""

    def __init__(self, source: str, key: str, expected: str):
        self.source, self.key, self.expected = source, key, expected
        # One line, always: a value echoed from a file or a flag may hold line breaks.
        super().__init__(" ".join(f"{source}: {key}: {expected}".split()))


class ScenarioError(RunbookError):
    """A sandbox scenario file is invalid or unknown."""


class EnvironmentError_(RunbookError):
    """The target environment cannot be used (sandbox not up, no credentials, no evidence)."""


class ApiError(RunbookError):
    """A control-plane call failed. ``kind`` is machine-readable, the message is for people."""

    def __init__(self, kind: str, message: str, *, status: int | None = None, url: str = ""):
        self.kind, self.status, self.url = kind, status, url
        super().__init__(message)


class RemediationError(RunbookError):
    """A remediation plan was refused or failed part-way."""


class GitHubError(RunbookError):
    """Posting the report to the tracking issue failed."""


class RunError(RunbookError):
    """Executing a phase notebook failed."""


class HistoryError(RunbookError):
    """Comparing runs or showing a target's history failed (unknown folder, target, too few runs)."""
