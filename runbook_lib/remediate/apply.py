"""Apply a confirmed plan: one apply per target at a time, idempotent, audited as it goes, waiting
for every operation, stopped at the first failure.

Dry run is the default. Applying needs ``remediation.apply: true`` and ``remediation.confirm``
equal to the plan id; anything else is refused before a single request.

- **One at a time.** A per-target file lock (``filelock``) is held for the whole apply; a second
  apply is refused with the holder named (pid, host, plan id, since).
- **Idempotent.** Each action re-reads its resources right before writing and sends only the calls
  still needed (the action kind's ``pending``, registered in ``kinds`` by the rule's module), so
  applying a plan twice changes nothing the second time.
- **Audited as it goes.** The audit records ``sending`` before each mutating request and its
  outcome after, every poll of its operation with the status, and the before/after state (after
  only once the operation is done). It is written to the report and to the target's state folder,
  so an apply killed mid-request is visible, and the next apply reads it back and reports the
  interrupted action (``reconciled``) before re-reading the resource.
- **Operations waited for.** Every answer that is an operation (compute, sqladmin,
  google.longrunning) is polled with backoff until done or ``deadlines.operation_s``; a failed
  operation is a failed action with Google's error. On a failure the run stops, and the rollback
  commands of what was applied are listed.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from runbook_lib import redact
from runbook_lib.errors import ApiError, RemediationError
from runbook_lib.evidence import ApiRecord, atomic_write_json
from runbook_lib.gcp.api import ApiCall, is_operation, operation_status
from runbook_lib.gcp.client import ApiClient
from runbook_lib.params import Params
from runbook_lib.remediate import kinds
from runbook_lib.remediate.plan import Action, Plan
from runbook_lib.secret_input import read_env_file
from runbook_lib.util import clock


class AuditEvent(BaseModel):
    at: str
    event: str                      # sending | sent | poll | done | failed | settle | deferred
    request: str = ""               # "METHOD url" (bodies may hold values)
    status: str = ""                # operation status, or what settle observed
    detail: str = ""


class AuditEntry(BaseModel):
    action: str
    at: str
    outcome: str                    # applied | unchanged | failed | manual | skipped | pending (not due: why
                                    # in error) | sending (in flight)
    requests: list[str] = Field(default_factory=list)   # "METHOD url" only: bodies may hold values
    events: list[AuditEvent] = Field(default_factory=list)
    before: list[Any] = Field(default_factory=list)
    after: list[Any] = Field(default_factory=list)
    error: str = ""
    rollback: str = ""


class ApplyReport(BaseModel):
    plan_id: str
    mode: str                       # dry-run | applying (in progress) | applied | refused | failed
    message: str
    audit: list[AuditEntry] = Field(default_factory=list)
    rollback: list[str] = Field(default_factory=list)
    holder: dict = Field(default_factory=dict)           # pid, host, plan, since
    reconciled: list[str] = Field(default_factory=list)  # what a previous, interrupted apply left

    @property
    def changed(self) -> list[str]:
        return [e.action for e in self.audit if e.outcome == "applied"]


class ApplyLocked(RemediationError):
    """Another apply of the same target holds the lock."""


def check_confirmation(plan: Plan, params: Params) -> None:
    r = params.remediation
    if not r.apply:
        return
    if r.confirm != plan.id:
        raise RemediationError(
            f"refused: remediation.confirm is {r.confirm!r} but this plan's id is {plan.id!r}. The environment or "
            "the plan changed since the dry run (or the id is mistyped): review this dry run's plan, then confirm its id"
        )


async def apply_plan(api: ApiClient, plan: Plan, params: Params, *, audit_file: Path | None = None) -> ApplyReport:
    if not params.remediation.apply:
        return ApplyReport(plan_id=plan.id, mode="dry-run",
                           message=f"dry run: nothing was changed. To apply, set remediation.apply=true and "
                                   f"remediation.confirm={plan.id}")
    check_confirmation(plan, params)
    from runbook_lib.remediate import playbook  # noqa: F401  (the rule modules register their action kinds on import)

    values = _secret_values(params)
    with TargetLock(params, plan) as lock:
        report = ApplyReport(plan_id=plan.id, mode="applying", message="", holder=lock.holder,
                             reconciled=reconcile(lock.previous))

        def save() -> None:
            _write(audit_file, report)
            _write(lock.audit_path, report)

        save()
        for action in plan.actions:
            if action.manual:
                report.audit.append(AuditEntry(action=action.id, at=clock.iso_now("milliseconds"), outcome="manual",
                                               rollback=action.rollback))
                continue
            entry = AuditEntry(action=action.id, at=clock.iso_now("milliseconds"), outcome="unchanged",
                               rollback=action.rollback)
            report.audit.append(entry)
            try:
                await _apply_action(Step(api, params, entry, save), action, values)
            except kinds.Deferred as exc:
                entry.outcome, entry.error = "pending", redact.text(str(exc))
                entry.after = entry.before
                entry.events.append(AuditEvent(at=clock.iso_now("milliseconds"), event="deferred", detail=entry.error))
            except (ApiError, RemediationError) as exc:
                entry.outcome, entry.error = "failed", redact.text(str(exc))
                entry.events.append(AuditEvent(at=clock.iso_now("milliseconds"), event="failed", detail=entry.error))
                report.mode = "failed"
                report.message = f"stopped at {action.id}: {entry.error}"
                report.rollback = [e.rollback for e in report.audit if e.outcome == "applied" and e.rollback]
                save()
                return report
            save()  # the audit grows as we go: a crash leaves what happened
        await _finish(api, params, plan)
        n = len(report.changed)
        report.mode = "applied"
        report.message = (f"applied {n} action{'s' if n != 1 else ''}" if n
                          else "nothing to change: every action was already in effect")
        waiting = [e for e in report.audit if e.outcome == "pending"]
        if waiting:
            report.message += "; pending: " + "; ".join(f"{e.action} ({e.error})" for e in waiting)
        if report.reconciled:
            report.message += f" (after reconciling an interrupted apply: {len(report.reconciled)} note(s))"
        save()
        return report


class Step:
    """What an action kind's ``settle`` may use: the client, the parameters, and its audit entry."""

    def __init__(self, api: ApiClient, params: Params, entry: AuditEntry, save):
        self.api, self.params, self.entry, self._save = api, params, entry, save
        # Poll the first time after 1 s of real time (sandbox: scaled), growing x1.5 up to 10 s.
        self.first_poll_s = max(0.02, min(1.0, params.target.time_scale))

    def event(self, event: str, *, request: str = "", status: str = "", detail: str = "") -> None:
        self.entry.events.append(AuditEvent(at=clock.iso_now("milliseconds"), event=event, request=request,
                                            status=status, detail=redact.text(detail)))
        self._save()

    async def send(self, call: ApiCall) -> dict:
        """One mutating request: "sending" is on disk before it leaves, its outcome right after, then
        every poll of its operation until done. Returns the finished operation (or the answer)."""
        line = f"{call.method} {self.api.url(call.api, call.path)}"
        self.entry.requests.append(line)
        self.entry.outcome = "sending"
        self.event("sending", request=line, detail=call.description)
        try:
            answer = await self.api.execute(call)
        except ApiError as exc:
            self.event("failed", request=line, status=exc.kind, detail=str(exc))
            raise
        if not is_operation(call.api, answer):
            self.event("sent", request=line, status="done")
            return answer
        name = str(answer.get("name", ""))
        self.event("sent", request=line, status=operation_status(answer), detail=f"operation {name}")
        op = await self.api.wait_operation(
            call.api, answer, deadline_s=self.params.deadlines.operation_s, first_poll_s=self.first_poll_s,
            on_poll=lambda o: self.event("poll", request=line, status=operation_status(o), detail=f"operation {name}"))
        self.event("done", request=line, status="DONE", detail=f"operation {name}")
        return op

    async def read(self, api: str, path: str) -> ApiRecord:
        return await _read(self.api, api, path)


async def _apply_action(step: Step, action: Action, values: dict[str, str]) -> None:
    kind = kinds.lookup(action.kind)
    snap = kind.snapshot if kind and kind.snapshot else _snapshot
    # read right before writing: what another apply (or a person) did since the plan counts
    before = [await step.read(r.api, r.path) for r in action.reads]
    step.entry.before = [snap(b) for b in before]
    if kind is None:
        raise RemediationError(f"no idempotency rule for action kind {action.kind!r} ({action.id}): register it in "
                               "its rule's module with remediate.kinds.register")
    calls = kind.pending(action, before, step.params)
    if calls and kind.ready:
        due, why = await kind.ready(step.api, step.params, action, before)
        if not due:
            raise kinds.Deferred(why)
    answers = []
    for call in calls:
        if call.secret_name:
            call = _with_value(call, values)
        answers.append(await step.send(call))
    if not calls:
        step.entry.outcome = "unchanged"
        step.entry.after = step.entry.before
        return
    if kind.settle:
        await kind.settle(step, action, answers)
    step.entry.outcome = "applied"
    step.entry.after = [snap(await step.read(r.api, r.path)) for r in action.reads]


async def _finish(api: ApiClient, params: Params, plan: Plan) -> None:
    """Each distinct ``finish`` of the kinds among the plan's automatic actions, once, in plan order."""
    done = []
    for action in plan.automatic:
        kind = kinds.lookup(action.kind)
        if kind is not None and kind.finish is not None and kind.finish not in done:
            done.append(kind.finish)
            await kind.finish(api, params)


# -- one apply per target --------------------------------------------------------------------------

def state_dir(params: Params) -> Path:
    base = params.remediation.state_dir
    return Path(base) if base else Path.home() / ".cache" / "runbook"


class TargetLock:
    """``filelock`` on ``<state_dir>/apply/<project>--<endpoints hash>.lock`` for the whole apply; the holder's
    pid, host, plan and start time sit beside it so a refused apply can name them."""

    def __init__(self, params: Params, plan: Plan):
        import re

        # The target is where the mutations go: the project on these API endpoints (two sandboxes on
        # one machine are two targets; every live apply of one project is the same target).
        ep = params.endpoints
        where = hashlib.sha256(json.dumps([ep.vpcaccess, ep.sqladmin, ep.compute, ep.secretmanager, ep.run]).encode())
        key = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{params.project}--{where.hexdigest()[:8]}")
        folder = state_dir(params) / "apply"
        self.lock_path = folder / f"{key}.lock"
        self.holder_path = folder / f"{key}.holder.json"
        self.audit_path = folder / f"{key}.audit.json"
        self.target = f"{params.target.name} (project {params.project})"
        self.holder = {"pid": os.getpid(), "host": socket.gethostname(), "plan": plan.id,
                       "since": clock.iso_now("milliseconds")}
        self.previous: dict | None = None
        self._lock = None

    def __enter__(self) -> "TargetLock":
        import filelock

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = filelock.FileLock(str(self.lock_path), timeout=0)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            h = self._holder_details()
            who = (f"pid {h.get('pid', '?')} on {h.get('host', '?')}, plan {h.get('plan', '?')}, "
                   f"since {h.get('since', '?')}") if h else "a process that has not written its details yet"
            raise ApplyLocked(
                f"refused: another apply of target {self.target} is running ({who}). Nothing was sent. Wait for "
                f"it to finish (its audit: {self.audit_path}), then run the dry run again and confirm the new plan id"
            ) from None
        self.previous = _read_json(self.audit_path)
        atomic_write_json(self.holder_path, self.holder)
        return self

    def _holder_details(self) -> dict:
        """The holder writes its details just after it takes the lock: give it a moment (bounded)."""
        import time

        give_up, delay = time.monotonic() + 2.0, 0.02
        while True:
            h = _read_json(self.holder_path) or {}
            if h and _alive(h.get("pid"), h.get("host")):
                return h
            if time.monotonic() >= give_up:
                return {}
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def __exit__(self, *exc: object) -> None:
        self.holder_path.unlink(missing_ok=True)
        if self._lock is not None:
            self._lock.release()


def reconcile(previous: dict | None) -> list[str]:
    """What the previous apply of this target left unfinished, read from its audit."""
    if not previous or previous.get("mode") != "applying":
        return []
    h = previous.get("holder") or {}
    who = (f"the previous apply (plan {previous.get('plan_id', '?')}, pid {h.get('pid', '?')} on {h.get('host', '?')}, "
           f"started {h.get('since', '?')})")
    notes = []
    for e in previous.get("audit") or []:
        if e.get("outcome") == "sending":
            sent = [ev for ev in e.get("events") or [] if ev.get("event") == "sending"]
            last = sent[-1]["request"] if sent else (e.get("requests") or ["?"])[-1]
            notes.append(f"{e.get('action')}: {who} was interrupted after sending {last}; its outcome is unknown. "
                         "This apply re-reads the resource and sends only what is still needed")
    if not notes:
        done = [e.get("action") for e in previous.get("audit") or [] if e.get("outcome") == "applied"]
        notes.append(f"{who} stopped between actions" + (f" after applying {', '.join(done)}" if done else "")
                     + "; this apply re-reads every resource")
    return notes


def _alive(pid: Any, host: Any) -> bool:
    """A holder file left by a killed apply names a dead pid (on this host); another host: trust it."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def _read(api: ApiClient, name: str, path: str) -> ApiRecord:
    rec = await api.read("audit", name, path)
    if not rec.ok and rec.error and rec.error.kind != "not_found":
        raise RemediationError(f"cannot read {path} before changing it: {rec.error.message}")
    return rec


def _snapshot(rec: ApiRecord) -> Any:
    return redact.data(rec.body) if rec.ok else {"absent": True, "status": rec.status}


def _secret_values(params: Params) -> dict[str, str]:
    sv = params.remediation.secret_values
    values = read_env_file(sv.file) if sv.file else {}
    for name, var in sv.env.items():
        if var in os.environ:
            values[name] = os.environ[var]
            redact.register(os.environ[var])
    return values


def _with_value(call: ApiCall, values: dict[str, str]) -> ApiCall:
    value = values.get(call.secret_name or "")
    if value is None:
        raise RemediationError(
            f"no value for secret {call.secret_name}: a person must supply it through "
            f"remediation.secret_values.env.{call.secret_name} (an environment variable's name) or "
            "remediation.secret_values.file (a KEY=VALUE file kept outside the repository)"
        )
    return call.model_copy(update={"secret": SecretStr(value)})


def _write(path: Path | None, report: ApplyReport) -> None:
    if path is not None:
        atomic_write_json(path, report.model_dump(mode="json"))


