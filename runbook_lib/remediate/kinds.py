"""Action kinds: what "already done?" and "apply" mean for each kind, registered by the module of the
rule that creates the actions (issue 13: described once, beside the rule), so ``apply.py`` is generic.

A rule module registers its kinds at import time::

    kinds.register("run.service", pending=_run_pending, settle=_run_settle, snapshot=_run_snapshot)

    pending(action, before, params) -> list[ApiCall]
        Given the resources in ``action.reads`` read right now (``before``), the calls still needed;
        ``[]`` means the action is already in effect (idempotency). It may build the request from
        that fresh state (a read-modify-write such as Cloud Run ``services.patch``).
    ready(api, params, action, before) -> awaitable (bool, why)   (optional)
        Asked only when ``pending`` returned calls: may they be sent now? ``(False, why)`` leaves the
        action ``pending`` with ``why`` (e.g. detach the legacy certificate only once the managed one
        is ACTIVE and served), nothing is sent, and the plan goes on.
    settle(step, action, answers) -> awaitable            (optional)
        Runs after every call's operation is done, before the "after" snapshot: wait for what the
        operation does not cover (a Cloud Run revision Ready and serving 100 %). Raise
        ``RemediationError`` / ``ApiError`` to fail the action.
    snapshot(record) -> JSON                              (optional)
        The audit's view of a read (default: the redacted body). Cloud Run keeps shapes only.
    finish(api, params) -> awaitable                      (optional)
        Runs once after the whole plan went through, when the plan has an automatic action of this
        kind (kinds that share one ``finish`` run it once): e.g. wait for the managed certificate to
        become ACTIVE so that the validation phase sees it served.

``pending`` may raise ``Deferred(reason)``: the action is not due yet (a condition it depends on does
not hold, e.g. a certificate not ACTIVE); the applier records it as ``pending`` with the reason,
sends nothing for it, and goes on with the rest of the plan.

A kind without a registration cannot be applied: the applier refuses the action (after reading
its resources, before sending anything) and stops the plan.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from runbook_lib.evidence import ApiRecord
from runbook_lib.gcp.api import ApiCall
from runbook_lib.params import Params

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.remediate.apply import Step
    from runbook_lib.remediate.plan import Action

Pending = Callable[["Action", list[ApiRecord], Params], list[ApiCall]]
Settle = Callable[["Step", "Action", list[dict]], Awaitable[None]]
Ready = Callable[[Any, Params, "Action", list[ApiRecord]], Awaitable[tuple[bool, str]]]
Snapshot = Callable[[ApiRecord], Any]
Finish = Callable[[Any, Params], Awaitable[Any]]


class Deferred(Exception):
    """Raised by ``pending``: not due yet; ``str(exc)`` says what it waits for."""


@dataclass(frozen=True)
class Kind:
    name: str
    pending: Pending
    settle: Settle | None = None
    snapshot: Snapshot | None = None
    ready: Ready | None = None
    finish: Finish | None = None


_KINDS: dict[str, Kind] = {}


def register(name: str, *, pending: Pending, settle: Settle | None = None, snapshot: Snapshot | None = None,
             ready: Ready | None = None, finish: Finish | None = None) -> Kind:
    """Register (or re-register, on module reload) the behaviour of one action kind."""
    kind = Kind(name=name, pending=pending, settle=settle, snapshot=snapshot, ready=ready, finish=finish)
    _KINDS[name] = kind
    return kind


def lookup(name: str) -> Kind | None:
    return _KINDS.get(name)


def registered() -> list[str]:
    return sorted(_KINDS)


def current(before: list[ApiRecord]) -> dict | None:
    """The first resource of ``action.reads`` as read right now, or None when it is absent or unreadable."""
    rec = before[0] if before else None
    return rec.body if rec is not None and rec.ok and isinstance(rec.body, dict) else None
