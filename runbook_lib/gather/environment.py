"""The target environment, injected: live GCP, the local sandbox, or recorded evidence.

Live and sandbox are the same code (``NetworkEnvironment``) pointed at different endpoints with
different credentials; both come from the parameters, so no check ever asks "am I in the
sandbox?". Replay (``ReplayEnvironment``) answers ``gather`` from an archived evidence folder and
refuses to change anything.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

from runbook_lib.errors import EnvironmentError_
from runbook_lib.evidence import Evidence
from runbook_lib.params import Params
from runbook_lib.probes.base import NetContext

log = logging.getLogger("runbook.run")  # a step of the run, logged into its run.log


class Environment(Protocol):
    params: Params

    async def gather(self, phase: str, *, golden_path: bool = False) -> Evidence: ...

    def api(self):
        """An ``ApiClient`` for mutations (remediation). Replay raises."""

    def net(self) -> NetContext: ...


class NetworkEnvironment:
    """Talks to real endpoints: Google's (live, ADC) or the sandbox emulator's (anonymous)."""

    def __init__(self, params: Params):
        self.params = params

    def credentials(self):
        if self.params.endpoints.credentials == "anonymous":
            return None
        try:
            import google.auth

            creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError and friends
            raise EnvironmentError_(
                "no Application Default Credentials: run `gcloud auth application-default login` "
                f"(or set GOOGLE_APPLICATION_CREDENTIALS) ({type(exc).__name__})"
            ) from None
        return creds

    def api(self):
        from runbook_lib.gcp.client import ApiClient

        return ApiClient(
            self.params.endpoints, self.params.deadlines, project=self.params.project, credentials=self.credentials()
        )

    def net(self) -> NetContext:
        return NetContext(connect_to=dict(self.params.network.connect_to), ca_bundle=self.params.network.ca_bundle)

    async def gather(self, phase: str, *, golden_path: bool = False) -> Evidence:
        from runbook_lib.gather.collect import gather

        return await gather(self, phase, golden_path=golden_path)

    async def probe(self, key: str, evidence: Evidence | None = None):
        """Run one probe of the phase-1 plan again, now (e.g. ``postgres.connect``)."""
        from runbook_lib.gather.collect import probe_plan

        host = self.params.cloudsql.host
        if not host and evidence is not None:
            from runbook_lib.gather.collect import database_host

            host = database_host(evidence.api.get("sqladmin.instance"))
        jobs = probe_plan(self.params, self.net(), db_host=host)
        if key not in jobs:
            raise EnvironmentError_(f"no probe {key!r}; choose one of: {', '.join(jobs)}")
        result = await jobs[key]()
        return result if isinstance(result, list) else [result]


class ReplayEnvironment:
    """Recorded evidence: ``<evidence_dir>/<phase>/`` (falling back to the diagnosis)."""

    def __init__(self, params: Params):
        self.params = params
        self.folder = Path(params.target.evidence_dir or "")
        if not (self.folder / "diagnose" / "manifest.json").exists():
            raise EnvironmentError_(
                f"{self.folder}: no recorded evidence here (expected diagnose/manifest.json); "
                "record some with `make examples` or point target.evidence_dir at a report's evidence/ folder"
            )

    def phase_folder(self, phase: str) -> Path:
        folder = self.folder / phase
        return folder if (folder / "manifest.json").exists() else self.folder / "diagnose"

    async def gather(self, phase: str, *, golden_path: bool = False) -> Evidence:
        return Evidence.load(self.phase_folder(phase))

    async def probe(self, key: str, evidence: Evidence | None = None):
        """Recorded evidence cannot be probed again: the recorded samples are the answer."""
        ev = evidence or Evidence.load(self.phase_folder("diagnose"))
        if key not in ev.probes:
            raise EnvironmentError_(f"no recorded probe {key!r}; recorded: {', '.join(ev.probes)}")
        return ev.probes[key]

    def api(self):
        raise EnvironmentError_(
            "replay targets are read-only: remediation needs a live or sandbox target "
            "(e.g. runbook run --params parameters/sandbox.yaml)"
        )

    def net(self) -> NetContext:
        return NetContext(connect_to=dict(self.params.network.connect_to), ca_bundle=self.params.network.ca_bundle)


def open_environment(params: Params) -> Environment:
    from runbook_lib import redact

    redact.warm()  # load the secret detectors before anything is measured
    kinds: dict[str, Callable[[Params], Environment]] = {
        "live": NetworkEnvironment,
        "sandbox": NetworkEnvironment,
        "replay": ReplayEnvironment,
    }
    env = kinds[params.target.mode](params)
    if params.target.mode == "sandbox" and params.endpoints.credentials != "anonymous":
        raise EnvironmentError_(
            "this sandbox target has no running sandbox behind it: use `runbook run --params "
            f"{params.target.name}` (starts one), or `runbook sandbox up` and the parameters file it writes "
            "(.sandbox/params.yaml)"
        )
    return env


@contextlib.contextmanager
def target_running(params: Params, params_file: Path, overrides: Sequence[str]) -> Iterator[Params]:
    """Live and replay targets are just there; a sandbox target is started and stopped here (the
    only place outside the CLI that knows the sandbox), yielding the parameters that reach it."""
    if params.target.mode != "sandbox" or params.endpoints.credentials == "anonymous":
        yield params
        return
    from runbook_lib.sandbox.manager import running

    log.info("starting sandbox scenario %s", params.target.scenario)
    with running(params_file, params.target.scenario, overrides=overrides) as sandbox:
        log.info("sandbox up: %s", {k: v for k, v in sandbox.endpoints.items()})
        yield sandbox.params
