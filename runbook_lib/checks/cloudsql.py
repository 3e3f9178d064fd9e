"""Cloud SQL: running, reachable on the private network, SSL, connection limits, flags, and how
long a real connection takes (the incident's "> 35 s" symptom)."""
from __future__ import annotations

import math

from runbook_lib.checks._util import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Maker,
    first_failed,
    fmt_limit,
    fmt_s,
    latency_s,
    on_wire,
    percentile,
    real,
    reasons_counted,
    time_scale,
    unavailable,
    usable,
)
from runbook_lib.evidence import Evidence
from runbook_lib.gcp import sqladmin
from runbook_lib.gcp.metrics import peak
from runbook_lib.gcp.sqladmin import Instance
from runbook_lib.params import Params
from runbook_lib.probes.base import ProbeResult, Reason
from runbook_lib.results import CheckResult, Severity

KEY = sqladmin.KEY
PROBE = "postgres.connect"
BACKENDS = "monitoring.sql_backends"
make = Maker("cloudsql", Severity.critical)

TITLES = {
    "sql.exists": "Cloud SQL instance exists",
    "sql.state": "Instance is running (RUNNABLE, not stopped)",
    "sql.activation_policy": "Activation policy keeps it running",
    "sql.private_ip": "Private IP on the VPC network",
    "sql.ssl_required": "SSL required",
    "sql.max_connections": "Connection limit",
    "sql.flags": "Timeout flags",
}


def evaluate(ev: Evidence, params: Params) -> list[CheckResult]:
    rec = ev.api.get(KEY)
    i = params.cloudsql.instance
    if rec is not None and not rec.ok and rec.error and rec.error.kind == "not_found":
        gone = f"instance {i} does not exist (see sql.exists)"
        exists = make("sql.exists", TITLES["sql.exists"], FAIL, observed="not found", expected=f"instance {i}",
                      evidence=[KEY], reason=f"the API answered 404 for {i} in project {params.project}",
                      remediation=f"check the name (`gcloud sql instances list --project {params.project}`) "
                                  "and fix cloudsql.instance, or restore the instance from a backup")
        rest = [make(cid, t, SKIP, reason=gone, evidence=[KEY]) for cid, t in TITLES.items() if cid != "sql.exists"]
        return [exists, *rest, connect(ev, params)]
    if not usable(rec):
        return [unavailable(make, cid, t, rec, KEY) for cid, t in TITLES.items()] + [connect(ev, params)]
    inst = Instance.from_json(rec.body)
    return [
        make("sql.exists", TITLES["sql.exists"], PASS, observed=f"{inst.name} ({inst.database_version or 'engine unknown'})",
             expected=f"instance {i}", evidence=[KEY]),
        state(inst, params), activation_policy(inst, params), private_ip(inst, params), ssl_required(inst, params),
        max_connections(inst, ev, params), flags(inst, params), connect(ev, params),
    ]


def state(inst: Instance, params: Params) -> CheckResult:
    cid, title, i = "sql.state", TITLES["sql.state"], params.cloudsql.instance
    start = f"`{sqladmin.set_activation_policy_always(params).gcloud}`"
    restart = f"`{sqladmin.restart(params).gcloud}`"
    s = inst.state
    expected = "RUNNABLE with an activation policy other than NEVER"
    if inst.is_stopped:
        return make(cid, title, FAIL, observed=f"{s}, activation policy {inst.activation_policy}", expected=expected,
                    evidence=[KEY], reason="the instance is stopped (Cloud SQL reports a stopped instance as RUNNABLE "
                                           "with activation policy NEVER): every connection is refused",
                    remediation=f"start it: {start}")
    if s == sqladmin.RUNNABLE:
        kind = f"read replica of {inst.primary or 'its primary'}" if inst.is_replica else ""
        observed = s + (f" ({kind})" if kind else "")
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[KEY])
    if s == "PENDING_CREATE":
        return make(cid, title, WARN, observed=s, expected="RUNNABLE", evidence=[KEY],
                    reason="the instance is still being created: wait and re-run")
    why, fix = {
        "SUSPENDED": ("the instance is suspended (billing account or policy problem)",
                      f"resolve the suspension (check the project's billing account), then {start}"),
        "MAINTENANCE": ("the instance is in maintenance and not serving",
                        f"wait for the maintenance to finish; if it stays in MAINTENANCE, {restart}"),
    }.get(s, (f"the instance is in state {s}", f"restart it: {restart}; if it does not recover, "
                                                 f"`gcloud sql operations list --instance {i} --project {params.project}`"))
    return make(cid, title, FAIL, observed=s, expected="RUNNABLE", reason=why, remediation=fix, evidence=[KEY])


def activation_policy(inst: Instance, params: Params) -> CheckResult:
    cid, title = "sql.activation_policy", TITLES["sql.activation_policy"]
    policy = inst.activation_policy or "not reported"
    if inst.is_replica and not inst.activation_policy:
        return make(cid, title, PASS, observed=f"not reported (read replica of {inst.primary or 'its primary'})",
                    expected="ALWAYS, or none for a read replica", evidence=[KEY])
    if policy == "ALWAYS":
        return make(cid, title, PASS, observed=policy, expected="ALWAYS", evidence=[KEY])
    if policy == "ON_DEMAND":
        return make(cid, title, WARN, observed=policy, expected="ALWAYS", evidence=[KEY],
                    reason="ON_DEMAND (legacy) lets the instance stop when idle; the first connection then waits")
    return make(cid, title, FAIL, observed=policy, expected="ALWAYS", evidence=[KEY],
                reason="with this policy the instance does not run, so connections are refused",
                remediation=f"`{sqladmin.set_activation_policy_always(params).gcloud}`")


def private_ip(inst: Instance, params: Params) -> CheckResult:
    cid, title = "sql.private_ip", TITLES["sql.private_ip"]
    want = params.cloudsql.network
    observed = f"network {inst.private_network or 'none'}, PRIVATE address {inst.private_ip or 'none'}"
    expected = f"a PRIVATE address on {want}"
    if inst.private_network == want and inst.private_ip:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[KEY])
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[KEY],
                reason=f"Cloud Run reaches the database through the connector on {want}; without a private "
                       "address there, it cannot connect",
                remediation=f"`{sqladmin.set_private_network(params).gcloud}` (the network needs private "
                            f"services access: `gcloud services vpc-peerings list --network={want} --project {params.project}`)")


def ssl_required(inst: Instance, params: Params) -> CheckResult:
    cid, title = "sql.ssl_required", TITLES["sql.ssl_required"]
    observed = f"sslMode {inst.ssl_mode or 'unset'}, requireSsl {bool(inst.ip_configuration.get('requireSsl'))}"
    if inst.require_ssl:
        return make(cid, title, PASS, observed=observed, expected="SSL required", evidence=[KEY])
    return make(cid, title, FAIL, observed=observed, expected="SSL required", evidence=[KEY],
                reason="the instance accepts unencrypted connections",
                remediation=f"`{sqladmin.require_ssl(params).gcloud}`")


def max_connections(inst: Instance, ev: Evidence, params: Params) -> CheckResult:
    cid, title = "sql.max_connections", TITLES["sql.max_connections"]
    want = params.cloudsql.min_max_connections
    value, source = inst.max_connections
    backends = ev.metrics.get(BACKENDS)
    seen = peak(backends) if usable(backends) else None
    seen_text = (f"; peak {seen[0]:g} backends at {seen[1]:%H:%M} UTC" if seen
                 else "; backends unknown" + (f" ({backends.error.message})" if backends is not None and backends.error else ""))
    observed = f"max_connections {value if value is not None else 'unknown'} ({source}){seen_text}"
    expected = f">= {want} and above the observed backends"
    evidence = [KEY] + ([BACKENDS] if backends is not None else [])
    target = max(want, math.ceil((seen[0] if seen else 0) * 1.25 / 50) * 50)
    fix = f"`{sqladmin.patch_flags(params, inst.flags, max_connections=target).gcloud}`"
    if value is None:
        return make(cid, title, WARN, observed=observed, expected=expected, evidence=evidence,
                    reason="the limit could not be determined; set max_connections explicitly", remediation=fix)
    if value < want:
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=evidence,
                    reason=f"{value} connections are fewer than the {want} the services need", remediation=fix)
    if seen and seen[0] >= value:
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=evidence,
                    reason="every connection slot was in use: further connections are refused", remediation=fix)
    if seen and seen[0] >= 0.8 * value:
        return make(cid, title, WARN, observed=observed, expected=expected, evidence=evidence,
                    reason="backends reached 80 % of the limit", remediation=fix)
    return make(cid, title, PASS, observed=observed, expected=expected, evidence=evidence)


def flags(inst: Instance, params: Params) -> CheckResult:
    cid, title = "sql.flags", TITLES["sql.flags"]
    required = params.cloudsql.required_flags
    current = inst.flags
    expected = ", ".join(f"{k}={v}" for k, v in required.items()) or "no required flags"
    observed = ", ".join(f"{k}={current.get(k, 'unset')}" for k in required) or "-"
    off = [k for k, v in required.items() if current.get(k) != v]
    if not off:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[KEY], severity=Severity.medium)
    return make(cid, title, WARN, observed=observed, expected=expected, evidence=[KEY], severity=Severity.medium,
                reason=f"{', '.join(off)} not as required: without them a stuck query or lock holds a connection "
                       "indefinitely", remediation=f"`{sqladmin.patch_flags(params, current).gcloud}`")


def _not_serving(ev: Evidence) -> str:
    """Why the instance cannot accept connections, from the API (empty when it can or is unknown)."""
    rec = ev.api.get(KEY)
    if not usable(rec):
        return ""
    inst = Instance.from_json(rec.body)
    if inst.is_stopped:
        return "the instance is stopped (RUNNABLE with activation policy NEVER, see sql.state)"
    if inst.state not in (sqladmin.RUNNABLE, "SQL_INSTANCE_STATE_UNSPECIFIED"):
        return f"the instance is {inst.state} (see sql.state)"
    return ""


def connect(ev: Evidence, params: Params) -> CheckResult:
    cid, title = "sql.connect", "Database connections are established in time"
    samples: list[ProbeResult] = ev.probes.get(PROBE) or []
    scale = time_scale(ev)
    limit = params.thresholds.db_connect_s
    expected = f"every sample connects; p95 under {fmt_limit(limit, scale)}"
    if not samples:
        return make(cid, title, SKIP, expected=expected, evidence=[PROBE], upstream=["connector"],
                    reason="no connection samples: the probe did not run (no database host: cloudsql.host is unset "
                           "and the instance has no private IP, see sql.private_ip)")
    unmeasurable = not_measurable_here(samples, params)
    if unmeasurable:
        return make(cid, title, SKIP, expected=expected, evidence=[PROBE],
                    observed=f"{sum(not s.ok for s in samples)}/{len(samples)} samples failed ({reasons_counted(samples)})",
                    reason=f"not measurable from this host: {unmeasurable}; a timeout here says nothing about the "
                           "connector (connector.path has the path as Google analyses it)",
                    remediation=_measure_inside(params))
    n = len(samples)
    durations = [latency_s(s) for s in samples]
    p50, p95, worst = percentile(durations, 50), percentile(durations, 95), max(durations)
    failed = [s for s in samples if not s.ok]
    timeouts = sum(1 for s in failed if s.reason is Reason.timeout)
    others = len(failed) - timeouts
    observed = (f"{n} samples: p95 {fmt_s(p95, scale)}, p50 {p50:.2f} s, max {worst:.2f} s; "
                f"{timeouts}/{n} timed out" + (f", {others} other failures" if others else ""))
    slow = p95 >= on_wire(limit, scale)
    numbers = {"p50_s": real(p50, scale), "p95_s": real(p95, scale), "max_s": real(worst, scale),
               "failed": float(len(failed))}
    if not failed and not slow:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[PROBE], upstream=["connector"],
                    measurements=numbers)
    reasons = []
    if failed:
        first = first_failed(samples)
        reasons.append(f"{len(failed)}/{n} failed ({reasons_counted(samples)}); e.g. {first.detail or first.reason}")
    if slow:
        reasons.append(f"p95 {fmt_s(p95, scale)} is at or over the {limit:g} s threshold")
    down = _not_serving(ev) if failed else ""
    if down:  # the connector is not to blame for an instance that does not run
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[PROBE, KEY],
                    reason=f"{down}: connections fail upstream of the path; " + "; ".join(reasons),
                    remediation=f"start the instance first (sql.state): `{sqladmin.set_activation_policy_always(params).gcloud}`")
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[PROBE, KEY], upstream=["connector"],
                measurements=numbers, reason="; ".join(reasons), remediation=_connect_advice(failed, slow, params))


def not_measurable_here(samples: list[ProbeResult], params: Params) -> str:
    """Why the probe's host cannot measure a private database address (empty when it can).

    Keys on the address actually dialed (``info.vantage``, after any ``connect_to``), so a sandbox
    database on loopback stays measurable. A host that got a TCP connection through evidently
    reaches it; otherwise a private address counts as unreachable from here when the route says so,
    when ``network.vantage`` says the host is outside the VPC, or when nothing shows it is inside
    (``routable: unknown``) and every sample failed before connecting.
    """
    if params.network.vantage == "inside_vpc":
        return ""
    seen = next((s.info["vantage"] for s in samples if isinstance(s.info.get("vantage"), dict)), None)
    if not seen or not seen.get("private"):
        return ""
    if any(s.ok or s.info.get("peer") for s in samples):
        return ""  # a connection got through: this host routes there
    where = (f"{seen.get('host', 'this host')} dialed {seen.get('address')}"
             + (f" from {seen['source']}" if seen.get("source") else ""))
    if params.network.vantage == "outside_vpc":
        return f"network.vantage is outside_vpc ({where}, a private address)"
    routable = seen.get("routable")
    before_connect = all(s.reason in (Reason.timeout, Reason.unreachable) and not s.info.get("peer") for s in samples)
    if routable == "no" or (routable == "unknown" and before_connect):
        return f"{seen.get('why', 'a private address')} ({where}; no connection reached it)"
    return ""


def _measure_inside(params: Params) -> str:
    c = params
    return (f"measure from inside the VPC: run the runbook as a Cloud Run job on the same connector "
            f"(`gcloud run jobs deploy runbook-probe --image IMAGE --vpc-connector {c.connector.name} --vpc-egress "
            f"all-traffic --region {c.region} --project {c.project}` then `gcloud run jobs execute runbook-probe "
            f"--region {c.region} --project {c.project}`), or from a VM on {c.cloudsql.network}; set "
            "network.vantage: inside_vpc there")


def _connect_advice(failed: list[ProbeResult], slow: bool, params: Params) -> str:
    c = params.cloudsql
    kinds = {s.reason for s in failed}
    advice = []
    if Reason.timeout in kinds or slow:
        advice.append("a saturated, unready or misrouted connector delays every connection: fix the connector.* "
                      f"results first; then bound queries with `{sqladmin.patch_flags(params, {}).gcloud}` "
                      "(merge with the flags already set, see sql.flags)")
    if Reason.refused in kinds:
        advice.append(f"nothing accepts connections: is the instance RUNNABLE (sql.state)? "
                      f"`gcloud sql instances describe {c.instance} --project {params.project}`")
    if Reason.reset in kinds:
        advice.append("connections are cut: check sql.max_connections and the connector's saturation")
    if Reason.auth in kinds:
        advice.append(f"the database refused the probe's login: check cloudsql.user ({c.user}) and the password in "
                      f"{c.password_env or c.password_file or 'cloudsql.password_env'}")
    if kinds & {Reason.tls_verify, Reason.protocol, Reason.hostname_mismatch, Reason.expired}:
        advice.append(f"the TLS negotiation failed: compare cloudsql.sslmode ({c.sslmode}) with the instance's SSL mode")
    if kinds & {Reason.dns, Reason.unreachable, Reason.error}:
        advice.append("the database address is unreachable: check cloudsql.host and the instance's private IP")
    return "; ".join(advice) or f"`gcloud sql instances describe {c.instance} --project {params.project}`"
