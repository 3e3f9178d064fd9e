"""Apply a confirmed plan: idempotent, audited before/after, stopped at the first failure.

Dry run is the default. Applying needs ``remediation.apply: true`` and ``remediation.confirm``
equal to the plan id; anything else is refused before a single request. For each action the
current state is read first and only the calls still needed are sent, so applying a plan twice
changes nothing the second time. Every action's before/after resource JSON (redacted) goes to the
audit log. On a failure the run stops, and the rollback commands of what was applied are listed.
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr

from .. import redact
from ..errors import ApiError, RemediationError
from ..evidence import ApiRecord, atomic_write_json
from ..gcp import sqladmin, vpcaccess
from ..gcp.api import ApiCall, ApiClient, last_segment
from ..params import Params
from ..secret_input import read_env_file
from .plan import Action, Plan


class AuditEntry(BaseModel):
    action: str
    at: str
    outcome: str                    # applied | unchanged | failed | manual | skipped | pending
    requests: list[str] = Field(default_factory=list)   # "METHOD url" only: bodies may hold values
    before: list[Any] = Field(default_factory=list)
    after: list[Any] = Field(default_factory=list)
    error: str = ""
    rollback: str = ""


class ApplyReport(BaseModel):
    plan_id: str
    mode: str                       # dry-run | applied | refused | failed
    message: str
    audit: list[AuditEntry] = Field(default_factory=list)
    rollback: list[str] = Field(default_factory=list)

    @property
    def changed(self) -> list[str]:
        return [e.action for e in self.audit if e.outcome == "applied"]


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
    values = _secret_values(params)
    report = ApplyReport(plan_id=plan.id, mode="applied", message="")
    for action in plan.actions:
        if action.manual:
            report.audit.append(AuditEntry(action=action.id, at=_now(), outcome="manual", rollback=action.rollback))
            continue
        entry = AuditEntry(action=action.id, at=_now(), outcome="unchanged", rollback=action.rollback)
        report.audit.append(entry)
        try:
            before = [await _read(api, r.api, r.path) for r in action.reads]
            entry.before = [_snapshot(b) for b in before]
            calls = pending(action, before, params)
            if calls and action.kind == "cert.detach-legacy":  # waits for its condition (certificate_wait)
                from .certificate_wait import detach_ready_hook

                ready, why = await detach_ready_hook(api, params, action, before)
                if not ready:
                    entry.outcome, entry.error = "pending", why
                    entry.after = entry.before
                    _write(audit_file, report)
                    continue
            for call in calls:
                if call.secret_name:
                    call = _with_value(call, values)
                entry.requests.append(f"{call.method} {api._url(call.api, call.path)}")
                answer = await api.execute(call)
                if _is_operation(answer):
                    await api.wait_operation(call.api, answer, deadline_s=params.deadlines.operation_s)
            if calls:
                entry.outcome = "applied"
                entry.after = [_snapshot(await _read(api, r.api, r.path)) for r in action.reads]
            else:
                entry.after = entry.before
        except (ApiError, RemediationError) as exc:
            entry.outcome, entry.error = "failed", redact.text(str(exc))
            report.mode = "failed"
            report.message = f"stopped at {action.id}: {entry.error}"
            report.rollback = [e.rollback for e in report.audit if e.outcome == "applied" and e.rollback]
            _write(audit_file, report)
            return report
        _write(audit_file, report)  # the audit log grows as we go: a crash leaves what happened
    if any(a.kind == "cert.attach" or a.kind == "cert.create" for a in plan.automatic):
        await wait_certificate_active(api, params)
    n = len(report.changed)
    report.message = (f"applied {n} action{'s' if n != 1 else ''}" if n else "nothing to change: every action was already in effect")
    waiting = [e for e in report.audit if e.outcome == "pending"]
    if waiting:
        report.message += "; pending: " + "; ".join(f"{e.action} ({e.error})" for e in waiting)
    _write(audit_file, report)
    return report


async def wait_certificate_active(api: ApiClient, params: Params) -> str:
    """Managed certificates take minutes (sandbox: seconds) to become ACTIVE; wait, bounded."""
    from ..gcp import compute

    give_up = time.monotonic() + params.remediation.wait_s
    status = "unknown"
    path = compute.global_path(params, f"sslCertificates/{params.load_balancer.certificate_name}")
    while time.monotonic() < give_up:
        rec = await api.read("wait", "compute", path)
        status = (rec.body or {}).get("managed", {}).get("status", "unknown") if rec.ok else "unknown"
        if status == "ACTIVE":
            return status
        await asyncio.sleep(min(1.0, max(0.05, params.remediation.wait_s / 20)))
    return status


# -- idempotency: what still needs doing, given the state read just now ---------------------------

def pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    state = before[0].body if before and before[0].ok and isinstance(before[0].body, dict) else None
    kind = action.kind
    if kind == "connector.resize":
        c = vpcaccess.Connector.from_json(state or {})
        ok = (c.min_instances or 0) >= params.connector.min_instances and (c.max_instances or 0) >= params.connector.max_instances
        return [] if ok else action.calls
    if kind == "sql.start":
        inst = sqladmin.Instance.from_json(state or {})
        return [] if inst.state == "RUNNABLE" and inst.activation_policy == "ALWAYS" else action.calls
    if kind == "sql.private-network":
        inst = sqladmin.Instance.from_json(state or {})
        return [] if last_segment(inst.private_network) == params.cloudsql.network else action.calls
    if kind == "sql.require-ssl":
        return [] if sqladmin.Instance.from_json(state or {}).require_ssl else action.calls
    if kind == "sql.flags":
        flags = sqladmin.Instance.from_json(state or {}).flags
        wanted = {f["name"]: f["value"] for f in action.calls[0].body["settings"]["databaseFlags"]}
        return [] if all(flags.get(k) == v for k, v in wanted.items()) else action.calls
    if kind == "cert.create":
        return [] if state is not None else action.calls
    if kind == "cert.attach":
        names = [last_segment(u) for u in (state or {}).get("sslCertificates", [])]
        return [] if params.load_balancer.certificate_name in names else action.calls
    if kind == "cert.detach-legacy":  # done when nothing on the proxy is outside the list it sets
        from .certificate_wait import detach_pending

        return detach_pending(action, before, params)
    if kind == "lb.timeout":
        return [] if (state or {}).get("timeoutSec", 0) >= params.load_balancer.backend_timeout_s else action.calls
    if kind == "lb.health-check":
        body = action.calls[0].body or {}
        same = all((state or {}).get(k) == v for k, v in body.items() if not isinstance(v, dict))
        nested = all(((state or {}).get(k) or {}).get("requestPath") == v.get("requestPath")
                     for k, v in body.items() if isinstance(v, dict))
        return [] if same and nested else action.calls
    if kind == "secret.value":
        exists = state is not None
        versions = before[1].body.get("versions", []) if len(before) > 1 and before[1].ok and isinstance(before[1].body, dict) else []
        enabled = any(v.get("state") == "ENABLED" for v in versions)
        needed = [c for c in action.calls if c.method == "POST" and c.path.endswith(":addVersion")] if not enabled else []
        return ([c for c in action.calls if not c.path.endswith(":addVersion")] if not exists else []) + needed
    raise RemediationError(f"no idempotency rule for action kind {kind!r} ({action.id})")


async def _read(api: ApiClient, name: str, path: str) -> ApiRecord:
    rec = await api.read("audit", name, path)
    if not rec.ok and rec.error and rec.error.kind != "not_found":
        raise RemediationError(f"cannot read {path} before changing it: {rec.error.message}")
    return rec


def _snapshot(rec: ApiRecord) -> Any:
    return redact.data(rec.body) if rec.ok else {"absent": True, "status": rec.status}


def _is_operation(answer: dict) -> bool:
    kind = str(answer.get("kind", ""))
    return kind.endswith("#operation") or ("done" in answer and "name" in answer and "/operations/" in str(answer.get("name")))


def _secret_values(params: Params) -> dict[str, str]:
    import os

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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
