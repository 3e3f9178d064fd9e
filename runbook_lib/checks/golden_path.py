"""Golden path checks (phase 3): login, WebSocket, the five agent events in order, history,
API latency and error rate. Pure: judged from the ``golden.*`` evidence and the parameters.

A broken golden path is usually a symptom of an infrastructure fault, so every result names the
infrastructure components upstream of it; on its own it is a critical fault of the product.
"""
from __future__ import annotations

import statistics

from runbook_lib.checks._util import Maker, latency_s, on_wire, percentile, real, time_scale
from runbook_lib.evidence import Evidence
from runbook_lib.params import Params
from runbook_lib.results import CheckResult, Severity, Status

COMPONENT = "golden_path"
UPSTREAM = ["connector", "cloudsql", "certificates", "load_balancer", "secrets", "cloud_run"]
make = Maker(COMPONENT, Severity.critical)


def _r(id_: str, title: str, status: Status, *, observed: str = "", expected: str = "", reason: str = "",
       remediation: str = "", evidence: list[str], measurements: dict[str, float] | None = None) -> CheckResult:
    return make(id_, title, status, observed=observed, expected=expected, reason=reason, remediation=remediation,
                evidence=evidence, upstream=UPSTREAM, measurements=measurements)


def _secs(measured: float, scale: float) -> str:
    return f"{measured:.2f} s" + (f" (= {real(measured, scale):.1f} s real)" if scale != 1 else "")


FIX = "fix the failing infrastructure checks above first, then re-run phase 3"


def evaluate(ev: Evidence, params: Params) -> list[CheckResult]:
    if not any(k.startswith("golden.") for k in ev.probes):
        return []  # phase 1 does not walk the golden path
    scale = time_scale(ev)
    out: list[CheckResult] = []
    login = (ev.probes.get("golden.login") or [None])[0]
    if login is None or not login.ok:
        why = login.detail if login else "the login step did not run"
        out.append(_r("golden.login", "A user can log in", Status.FAIL, observed=why, expected="HTTP 200 with a token",
                      reason=f"login failed: {why}", remediation=FIX, evidence=["golden.login"]))
        skip = f"skipped: login failed ({why[:120]})"
        for cid, title in (("golden.websocket", "WebSocket connects"), ("golden.events", "Agent events in order"),
                           ("golden.history", "Chat history is saved"), ("golden.requests", "API latency and error rate")):
            out.append(_r(cid, title, Status.SKIP, reason=skip, evidence=[]))
        out.append(_startup(ev, params))  # measured by Cloud Monitoring, whatever the login did
        return out
    out.append(_r("golden.login", "A user can log in", Status.PASS, observed=f"token issued in {_secs(latency_s(login), scale)}",
                  expected="HTTP 200 with a token", evidence=["golden.login"],
                  measurements={"login_s": real(latency_s(login), scale)}))
    out.extend(_chat(ev, params, scale))
    out.append(_history(ev))
    out.extend(_requests(ev, params, scale))
    out.append(_startup(ev, params))
    return out


def _startup(ev: Evidence, params: Params) -> CheckResult:
    """p95 of run.googleapis.com/container/startup_latencies over every service, vs thresholds.startup_s."""
    from runbook_lib.checks.cloud_run import STARTUP_KEY, startup_seconds

    limit = params.thresholds.startup_s
    title, expected = f"Service startup < {limit:g} s", f"p95 < {limit:g} s"
    rec = ev.metrics.get(STARTUP_KEY)
    if rec is None or not rec.ok:
        why = (rec.error.message if rec is not None and rec.error else "the metric was not gathered")
        return _r("golden.startup", title, Status.SKIP, expected=expected, evidence=[STARTUP_KEY] if rec else [],
                  reason=f"no startup latency from Cloud Monitoring ({STARTUP_KEY}): {why}")
    measured = {s: startup_seconds(ev, s) for s in params.cloud_run.services}
    known = {s: m[0] for s, m in measured.items() if m is not None}
    if not known:
        return _r("golden.startup", title, Status.SKIP, expected=expected, evidence=[STARTUP_KEY],
                  reason=f"Cloud Monitoring has no startup latency for {', '.join(params.cloud_run.services)} in the "
                         f"last {params.monitoring.lookback_minutes} minutes (no instance started in that window)")
    slow = {s: v for s, v in known.items() if v >= limit}
    observed = "; ".join(f"{s} p95 {v:.0f} s" for s, v in known.items())
    if len(known) < len(measured):
        observed += f"; no data: {', '.join(s for s in measured if s not in known)}"
    if not slow:
        return _r("golden.startup", title, Status.PASS, observed=observed, expected=expected, evidence=[STARTUP_KEY])
    return _r("golden.startup", title, Status.FAIL, observed=observed, expected=expected, evidence=[STARTUP_KEY],
              reason=f"{', '.join(slow)} start slower than {limit:g} s (p95)",
              remediation="turn on startup CPU boost and keep min instances warm (run.*.cpu_boost, "
                          "run.*.min_instances), then shorten the services' initialisation")


def _chat(ev: Evidence, params: Params, scale: float) -> list[CheckResult]:
    ws = (ev.probes.get("golden.chat") or [None])[0]
    key = ["golden.chat"]
    limit = on_wire(params.thresholds.ws_connect_s, scale)
    if ws is None:
        return [_r("golden.websocket", "WebSocket connects", Status.ERROR, reason="the WebSocket step did not run", evidence=key)]
    connect = sum(ws.phases.get(p, 0.0) for p in ("resolve", "connect", "tls", "upgrade"))  # the handshake's wire time
    upgraded = ws.info.get("status") == 101
    out = []
    if not upgraded:
        out.append(_r("golden.websocket", "WebSocket connects", Status.FAIL, observed=ws.detail or "no upgrade",
                      expected=f"HTTP 101 within {params.thresholds.ws_connect_s:g} s", reason=f"WebSocket refused: {ws.detail}",
                      remediation=FIX, evidence=key))
    elif connect >= limit:
        out.append(_r("golden.websocket", "WebSocket connects", Status.FAIL, observed=_secs(connect, scale),
                      expected=f"< {params.thresholds.ws_connect_s:g} s", reason="WebSocket connected too slowly",
                      remediation=FIX, evidence=key))
    else:
        out.append(_r("golden.websocket", "WebSocket connects", Status.PASS, observed=_secs(connect, scale),
                      expected=f"< {params.thresholds.ws_connect_s:g} s", evidence=key))
    received = [m.get("data", {}).get("type") for m in ws.info.get("messages", []) if isinstance(m.get("data"), dict)]
    wanted = list(params.golden_path.events)
    got = [t for t in received if t in wanted]
    missing = [e for e in wanted if e not in got]
    cut = f"; the connection was cut after {_secs(ws.total_s, scale)} ({ws.detail})" if not ws.ok and ws.detail else ""
    if missing:
        out.append(_r("golden.events", "Agent events arrive in order", Status.FAIL, observed=", ".join(got) or "none",
                      expected=", ".join(wanted), reason=f"missing events: {', '.join(missing)}{cut}",
                      remediation="a cut WebSocket usually means the backend service timeout is too short "
                                  "(lb.*.timeout); otherwise " + FIX, evidence=key))
    elif got != wanted:
        # every wanted event arrived; either one came early or one came again after the last
        first = next((i for i, (a, b) in enumerate(zip(got, wanted, strict=False)) if a != b), len(wanted))
        why = (f"out of order: {got[first]} arrived where {wanted[first]} was expected" if first < len(wanted)
               else f"{got[first]} arrived again after the last expected event")
        out.append(_r("golden.events", "Agent events arrive in order", Status.FAIL, observed=", ".join(got),
                      expected=", ".join(wanted), reason=why,
                      remediation="the application emits events out of order; hand back to the development team", evidence=key))
    else:
        out.append(_r("golden.events", "Agent events arrive in order", Status.PASS, observed=", ".join(got),
                      expected=", ".join(wanted), evidence=key))
    answered = "agent_response" in received
    out.append(_r("golden.response", "The chat message gets an AI response",
                  Status.PASS if answered else Status.FAIL, observed="answered" if answered else f"no answer{cut}",
                  expected="an agent_response message", reason="" if answered else f"no agent_response received{cut}",
                  remediation="" if answered else FIX, evidence=key))
    return out


def _history(ev: Evidence) -> CheckResult:
    h = (ev.probes.get("golden.history") or [None])[0]
    if h is None:
        return _r("golden.history", "Chat history is saved", Status.ERROR, reason="the history step did not run", evidence=[])
    if h.ok:
        return _r("golden.history", "Chat history is saved", Status.PASS, observed=f"message read back ({h.info.get('messages')} saved)",
                  expected="the sent message in the history", evidence=["golden.history"])
    return _r("golden.history", "Chat history is saved", Status.FAIL, observed=h.detail, expected="the sent message in the history",
              reason=f"history not read back: {h.detail}", remediation=FIX, evidence=["golden.history"])


def _requests(ev: Evidence, params: Params, scale: float) -> list[CheckResult]:
    reqs = ev.probes.get("golden.requests", [])
    key = ["golden.requests"]
    if not reqs:
        return [_r("golden.api_latency", "API responses < 5 s", Status.SKIP, reason="no API requests were made", evidence=key)]
    times = [latency_s(r) for r in reqs]
    p95 = percentile(times, 95)
    limit = on_wire(params.thresholds.api_response_s, scale)
    bad = [r for r in reqs if not r.ok]
    rate = 100.0 * len(bad) / len(reqs)
    out = [
        _r("golden.api_latency", f"API responses < {params.thresholds.api_response_s:g} s",
           Status.PASS if p95 < limit else Status.FAIL,
           observed=f"p50 {_secs(statistics.median(times), scale)}, p95 {_secs(p95, scale)} over {len(reqs)} requests",
           expected=f"p95 < {params.thresholds.api_response_s:g} s",
           reason="" if p95 < limit else "API responses are slower than the threshold",
           remediation="" if p95 < limit else FIX, evidence=key,
           measurements={"p50_s": real(statistics.median(times), scale), "p95_s": real(p95, scale)}),
    ]
    reasons = sorted({(r.reason.value if r.reason else "error") for r in bad})
    ok = rate < params.thresholds.error_rate_pct
    out.append(_r("golden.error_rate", f"Error rate < {params.thresholds.error_rate_pct:g} %",
                  Status.PASS if ok else Status.FAIL, observed=f"{len(bad)}/{len(reqs)} failed ({rate:.1f} %)",
                  expected=f"< {params.thresholds.error_rate_pct:g} %",
                  reason="" if ok else f"{len(bad)} requests failed: {', '.join(reasons)}",
                  remediation="" if ok else FIX, evidence=key, measurements={"error_pct": rate}))
    return out
