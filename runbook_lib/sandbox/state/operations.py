"""Asynchronous operations in each API's own shape, done after a scaled while (or failed on purpose).

Three shapes, from the discovery documents:

- compute ``Operation``: ``status`` PENDING -> RUNNING -> DONE, ``progress``, ``error.errors[]``
  plus ``httpErrorStatusCode`` / ``httpErrorMessage`` when it failed;
- sqladmin ``Operation``: ``status`` PENDING -> RUNNING -> DONE, ``error.errors[]`` (``sql#operationError``);
- ``google.longrunning.Operation`` (vpcaccess, run v2, networkmanagement): ``done`` absent until
  finished, then ``done: true`` with ``response`` or ``error`` (``google.rpc.Status``).

A mutation validates at once (a 400 is synchronous, as Google's is) and hands ``start()`` the
change to make; the change happens when the operation completes, so a reader sees the old
resource (in its transitional state) while the operation runs. The scenario's ``operations``
section sets the duration (real-world seconds, scaled) and which operations fail with which
Google error; a failed operation changes nothing.

Time advances on read (``tick()``): no background task, no busy loop.
"""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from runbook_lib.sandbox.scenario import OperationFailure
from runbook_lib.sandbox.state.common import ApiFault

GRPC_CODES = {"INVALID_ARGUMENT": 3, "FAILED_PRECONDITION": 9, "RESOURCE_EXHAUSTED": 8, "INTERNAL": 13,
              "PERMISSION_DENIED": 7, "UNAVAILABLE": 14, "DEADLINE_EXCEEDED": 4, "ABORTED": 10}
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "RESOURCE_EXHAUSTED": 429, "INTERNAL": 500,
               "PERMISSION_DENIED": 403, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "ABORTED": 409}


@dataclass
class Pending:
    api: str
    kind: str                       # compute operationType / sql operationType / LRO method name
    resource: dict[str, Any]        # the operation JSON, updated in place
    started: float
    duration: float
    apply: Callable[[], dict[str, Any] | None] | None
    failure: OperationFailure | None
    done: bool = False
    on_done: Callable[[], None] | None = None


class Operations:
    """All operations of the sandbox, keyed by (api, name)."""

    def __init__(self, clock: Callable[[], float], now_text: Callable[[int], str], compute_time: Callable[[], str],
                 duration_s: float, failures: list[OperationFailure]):
        self._clock, self._now_text, self._compute_time = clock, now_text, compute_time
        self.duration_s = duration_s
        self._failures = [copy.copy(f) for f in failures]
        self._ops: dict[tuple[str, str], Pending] = {}

    # --- start ---------------------------------------------------------------------------------

    def _failure(self, api: str, kind: str) -> OperationFailure | None:
        for f in self._failures:
            if f.count > 0 and f.api in (None, api) and f.kind in (None, kind):
                f.count -= 1
                return f
        return None

    def _register(self, api: str, kind: str, name: str, resource: dict[str, Any],
                  apply: Callable[[], dict[str, Any] | None] | None, on_done: Callable[[], None] | None = None
                  ) -> dict[str, Any]:
        pending = Pending(api, kind, resource, self._clock(), self.duration_s, apply, self._failure(api, kind),
                          on_done=on_done)
        self._ops[(api, name)] = pending
        self._advance(pending)
        return copy.deepcopy(resource)

    def compute(self, kind: str, target_link: str, target_id: str, self_link_base: str, user: str,
                apply: Callable[[], dict[str, Any] | None] | None, *, region: str | None = None,
                on_done: Callable[[], None] | None = None) -> dict[str, Any]:
        name = f"operation-{int(self._clock() * 1000)}-{uuid.uuid4().hex[:13]}-{uuid.uuid4().hex[:8]}"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(uuid.uuid4().int % 10 ** 19),
            "name": name,
            "operationType": kind,
            "targetLink": target_link,
            "targetId": target_id,
            "status": "PENDING",
            "user": user,
            "progress": 0,
            "insertTime": self._compute_time(),
            "selfLink": f"{self_link_base}/{name}",
        }
        if region:
            op["region"] = region
        return self._register("compute", kind, name, op, apply, on_done)

    def sql(self, kind: str, project: str, instance: str, base: str, user: str,
            apply: Callable[[], dict[str, Any] | None] | None) -> dict[str, Any]:
        name = str(uuid.uuid4())
        op = {
            "kind": "sql#operation",
            "targetLink": f"{base}/projects/{project}/instances/{instance}",
            "status": "PENDING",
            "user": user,
            "insertTime": self._now_text(3),
            "operationType": kind,
            "name": name,
            "targetId": instance,
            "selfLink": f"{base}/projects/{project}/operations/{name}",
            "targetProject": project,
        }
        return self._register("sqladmin", kind, name, op, apply)

    def longrunning(self, api: str, method: str, parent: str, target: str, metadata_type: str,
                    response_type: str, apply: Callable[[], dict[str, Any] | None] | None,
                    *, metadata: dict[str, Any] | None = None, op_id: str | None = None,
                    on_done: Callable[[], None] | None = None) -> dict[str, Any]:
        name = f"{parent}/operations/{op_id or uuid.uuid4()}"
        op: dict[str, Any] = {
            "name": name,
            "metadata": {"@type": metadata_type, **(metadata or {})},
        }
        op["_response_type"] = response_type
        self._register(api, method, name, op, apply, on_done)
        return self.public(self._ops[(api, name)])

    # --- progress ------------------------------------------------------------------------------

    def tick(self) -> None:
        for pending in list(self._ops.values()):
            if not pending.done:
                self._advance(pending)

    def _advance(self, p: Pending) -> None:
        elapsed = self._clock() - p.started
        r = p.resource
        if elapsed < p.duration:
            if "status" in r:
                if elapsed >= p.duration / 4 and r["status"] == "PENDING":
                    r["status"] = "RUNNING"
                    r["startTime"] = self._compute_time() if p.api == "compute" else self._now_text(3)
                if p.api == "compute":
                    r["progress"] = min(99, int(100 * elapsed / p.duration)) if p.duration else 0
            return
        p.done = True
        result: dict[str, Any] | None = None
        if p.failure is None and p.apply is not None:
            try:
                result = p.apply()
            except ApiFault as fault:  # the change itself failed (e.g. a revision that never got Ready)
                p.failure = OperationFailure(status=fault.status if fault.status in HTTP_STATUS else "INTERNAL",
                                             reason=fault.reason, message=fault.message)
        if p.on_done is not None:
            p.on_done()
        f = p.failure
        if p.api == "compute":
            r.setdefault("startTime", self._compute_time())
            r.update(status="DONE", progress=100, endTime=self._compute_time())
            if f is not None:
                r["error"] = {"errors": [{"code": f.reason or f.status, "message": f.message}]}
                r["httpErrorStatusCode"] = HTTP_STATUS.get(f.status, 400)
                r["httpErrorMessage"] = f.status.replace("_", " ")
        elif p.api == "sqladmin":
            r.setdefault("startTime", self._now_text(3))
            r.update(status="DONE", endTime=self._now_text(3))
            if f is not None:
                r["error"] = {"kind": "sql#operationErrors",
                              "errors": [{"kind": "sql#operationError", "code": f.reason or f.status,
                                          "message": f.message}]}
        else:
            r["done"] = True
            md = r.get("metadata", {})
            if md.get("@type", "").endswith("OperationMetadata"):  # run v2's metadata is the Service itself
                md["endTime"] = self._now_text(9)
            if f is not None:
                r["error"] = {"code": GRPC_CODES.get(f.status, 2), "message": f.message}
            else:
                r["response"] = {"@type": r["_response_type"], **(result or {})}

    # --- reads ---------------------------------------------------------------------------------

    @staticmethod
    def public(p: Pending) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in p.resource.items() if not k.startswith("_")}

    def get(self, api: str, name: str) -> dict[str, Any] | None:
        p = self._ops.get((api, name))
        if p is None:
            return None
        if not p.done:
            self._advance(p)
        return self.public(p)

    def remaining_s(self, api: str, name: str) -> float:
        p = self._ops.get((api, name))
        if p is None or p.done:
            return 0.0
        return max(0.0, p.duration - (self._clock() - p.started))

    def listing(self, api: str, prefix: str = "") -> list[dict[str, Any]]:
        return [self.public(p) for (a, n), p in self._ops.items() if a == api and n.startswith(prefix)]

    def running(self, api: str | None = None) -> list[Pending]:
        return [p for p in self._ops.values() if not p.done and api in (None, p.api)]
