"""Phase 3's golden path: a user logs in, chats over a WebSocket, and the history is saved.

Each step is recorded as a ``ProbeResult`` under a ``golden.*`` evidence key (so replay and the
waterfall plot see the same thing); the judging happens in ``checks/golden_path.py``. The login
token is registered with the redactor the moment it exists and is never archived.
"""
from __future__ import annotations

import asyncio
import secrets as _random
import statistics
import time
from typing import Any

from runbook_lib import redact
from runbook_lib.params import Params
from runbook_lib.probes import websocket
from runbook_lib.probes.base import NetContext, ProbeResult, Reason, classify_chain
from runbook_lib.probes.http import make_async_client
from runbook_lib.secret_input import read_value


def _step(name: str, target: str, t0: float, started: float, *, ok: bool, reason: Reason | None = None,
          detail: str = "", **info: Any) -> ProbeResult:
    now = time.perf_counter()
    return ProbeResult(protocol="golden", target=target, ok=ok, reason=reason, detail=redact.text(detail),
                       total_s=now - started, started_s=started - t0, info=info)


async def run_golden_path(params: Params, net: NetContext) -> dict[str, list[ProbeResult]]:
    api = f"https://{params.domains.api}"
    deadline = params.deadlines.probe_s
    gp = params.golden_path
    out: dict[str, list[ProbeResult]] = {}
    t0 = time.perf_counter()
    nonce = _random.token_hex(4)
    message = f"{gp.message} [{nonce}]"
    async with make_async_client(net, deadline) as client:
        # 1. login
        started = time.perf_counter()
        token = None
        try:
            password = read_value(env=gp.password_env, file=gp.password_file, what="golden path user password")
            resp = await client.post(f"{api}/auth/login", json={"email": gp.user, "password": password or ""})
            body = _json(resp)
            token = body.get("token") if resp.status_code == 200 else None
            redact.register(token)
            detail = "" if token else f"HTTP {resp.status_code}: {body.get('detail') or body.get('error') or resp.text[:200]}"
            out["golden.login"] = [_step("login", f"{api}/auth/login", t0, started, ok=bool(token),
                                         reason=None if token else Reason.http_status, detail=detail,
                                         status=resp.status_code)]
        except Exception as exc:  # network/TLS failures become a reasoned step, not a crash
            reason, detail = classify_chain(exc)
            out["golden.login"] = [_step("login", f"{api}/auth/login", t0, started, ok=False, reason=reason, detail=detail)]
        if token is None:
            return out
        # 2-3. WebSocket: connect, send a chat message, collect the agent events and the answer
        started = time.perf_counter()
        ws = await websocket.probe(
            f"wss://{params.domains.api}/ws?token={token}", net, deadline,
            send=[{"type": "chat", "message": message}], until_type="agent_response",
        )
        ws.started_s = started - t0
        ws.target = f"wss://{params.domains.api}/ws"
        out["golden.chat"] = [ws]
        # 4. history read back from the database
        started = time.perf_counter()
        try:
            resp = await client.get(f"{api}/api/chat/history", headers={"Authorization": f"Bearer {token}"})
            body = _json(resp)
            messages = body.get("messages", body if isinstance(body, list) else [])
            found = any(message in str(m.get("content", "")) for m in messages if isinstance(m, dict))
            out["golden.history"] = [_step(
                "history", f"{api}/api/chat/history", t0, started, ok=resp.status_code == 200 and found,
                reason=None if found else Reason.http_status if resp.status_code != 200 else Reason.protocol,
                detail="" if found else (f"HTTP {resp.status_code}" if resp.status_code != 200
                                         else "the chat message was not in the saved history"),
                status=resp.status_code, messages=len(messages))]
        except Exception as exc:
            reason, detail = classify_chain(exc)
            out["golden.history"] = [_step("history", f"{api}/api/chat/history", t0, started, ok=False,
                                           reason=reason, detail=detail)]
        # 5. API responses and error rate over N requests
        out["golden.requests"] = await _request_burst(client, f"{api}/health", gp.requests, t0)
    return out


async def _request_burst(client, url: str, n: int, t0: float) -> list[ProbeResult]:
    gate = asyncio.Semaphore(5)

    async def one() -> ProbeResult:
        async with gate:
            started = time.perf_counter()
            try:
                resp = await client.get(url)
                ok = resp.status_code == 200
                return _step("request", url, t0, started, ok=ok, reason=None if ok else Reason.http_status,
                             detail="" if ok else f"HTTP {resp.status_code}", status=resp.status_code)
            except Exception as exc:
                reason, detail = classify_chain(exc)
                return _step("request", url, t0, started, ok=False, reason=reason, detail=detail)

    return list(await asyncio.gather(*(one() for _ in range(n))))


def _json(resp) -> dict:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"messages": body} if isinstance(body, list) else {}


def waterfall_steps(ev) -> list[dict]:
    """Steps for the waterfall plot, in order, from the golden.* evidence."""
    steps = []
    for key, name in (("golden.login", "login"), ("golden.chat", "WebSocket chat"), ("golden.history", "history")):
        for r in ev.probes.get(key, []):
            if key == "golden.chat":
                steps.extend(_chat_steps(r))
            else:
                steps.append({"name": name, "start_s": r.started_s, "duration_s": r.total_s, "ok": r.ok,
                              "reason": r.detail})
    reqs = ev.probes.get("golden.requests", [])
    if reqs:
        start = min(r.started_s for r in reqs)
        end = max(r.started_s + r.total_s for r in reqs)
        bad = sum(not r.ok for r in reqs)
        steps.append({"name": f"{len(reqs)} API requests (p50 {statistics.median(r.total_s for r in reqs) * 1000:.0f} ms)",
                      "start_s": start, "duration_s": end - start, "ok": bad == 0,
                      "reason": f"{bad} failed" if bad else ""})
    return steps


def _chat_steps(r: ProbeResult) -> list[dict]:
    connect = sum(r.phases.get(p, 0.0) for p in ("resolve", "connect", "tls", "upgrade"))
    steps = [{"name": "WebSocket connect", "start_s": r.started_s, "duration_s": connect,
              "ok": r.info.get("status") == 101, "reason": r.detail}]
    prev = r.started_s + connect
    for m in r.info.get("messages", []):
        data = m.get("data") if isinstance(m, dict) else None
        kind = data.get("type") if isinstance(data, dict) else "message"
        at = r.started_s + connect + float(m.get("t", 0.0))
        steps.append({"name": f"  {kind}", "start_s": prev, "duration_s": max(at - prev, 0.0), "ok": True, "reason": ""})
        prev = at
    if not r.ok:
        steps.append({"name": "  (cut)", "start_s": prev, "duration_s": 0.0, "ok": False, "reason": r.detail})
    return steps
