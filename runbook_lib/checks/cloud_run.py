"""Cloud Run: each configured service exists, is Ready on its latest revision, egresses through the
connector, tolerates the incident's 600 s (request timeout, startup probe, warm instances, startup CPU
boost), and no environment value still points at a deprecated domain (judged from the values' shapes;
names only in results, never values).

Behind an external HTTPS load balancer with serverless NEGs, the backend service takes neither a
health check nor a timeout: what decides whether a slow-starting service gets traffic and how long a
WebSocket lives is the revision (see ``gcp/run.py`` for Google's limits and their sources).
"""
from __future__ import annotations

from runbook_lib.checks._util import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Maker,
    percentile,
    plural,
    real,
    safe_id,
    time_scale,
    unavailable,
    usable,
)
from runbook_lib.evidence import Evidence, MetricRecord
from runbook_lib.gcp import run
from runbook_lib.gcp.run import Service
from runbook_lib.params import Params
from runbook_lib.results import CheckResult, Severity

make = Maker("cloud_run", Severity.high)
KEY = run.KEY
STARTUP_KEY = "monitoring.startup_latencies"
WHAT = ("exists", "ready", "vpc", "domains", "timeout", "startup", "min_instances", "cpu_boost")


def evaluate(ev: Evidence, params: Params) -> list[CheckResult]:
    rec = ev.api.get(KEY)
    out: list[CheckResult] = []
    services = run.services_of(rec.body) if usable(rec) else {}
    for name in params.cloud_run.services:
        ids = {what: f"run.{safe_id(name)}.{what}" for what in WHAT}
        titles = {"exists": f"{name} is deployed", "ready": f"{name} is Ready on its latest revision",
                  "vpc": f"{name} egresses through {params.connector.name}",
                  "domains": f"{name} config has no deprecated domains",
                  "timeout": f"{name} request timeout allows {params.cloud_run.request_timeout_s} s",
                  "startup": f"{name} startup probe tolerates its startup time",
                  "min_instances": f"{name} keeps {params.cloud_run.min_instances} warm instance(s)",
                  "cpu_boost": f"{name} has startup CPU boost"}
        if not usable(rec):
            out += [unavailable(make, ids[w], titles[w], rec, KEY) for w in WHAT]
            continue
        svc = services.get(name)
        if svc is None:
            out.append(make(ids["exists"], titles["exists"], FAIL, observed="not found",
                            expected=f"service {name} in {params.region}", evidence=[KEY],
                            reason=f"no Cloud Run service {name} in {params.project}/{params.region}",
                            remediation=f"deploy it, or fix cloud_run.services "
                                        f"(`gcloud run services list --region {params.region} --project {params.project}`)"))
            out += [make(ids[w], titles[w], SKIP, evidence=[KEY], reason=f"service {name} does not exist")
                    for w in WHAT[1:]]
            continue
        out += [make(ids["exists"], titles["exists"], PASS, observed=svc.uri or svc.name,
                     expected=f"service {name} in {params.region}", evidence=[KEY]),
                ready(ids["ready"], titles["ready"], svc, params), vpc(ids["vpc"], titles["vpc"], svc, params),
                domains(ids["domains"], titles["domains"], svc, params),
                timeout(ids["timeout"], titles["timeout"], svc, params),
                startup(ids["startup"], titles["startup"], svc, params, ev),
                min_instances(ids["min_instances"], titles["min_instances"], svc, params),
                cpu_boost(ids["cpu_boost"], titles["cpu_boost"], svc, params)]
    return out


def _where(params: Params) -> str:
    return f"--region {params.region} --project {params.project}"


def ready(cid: str, title: str, svc: Service, params: Params) -> CheckResult:
    cond = svc.terminal_condition
    state = cond.get("state", "unknown")
    observed = (f"Ready {state}; latest ready {svc.latest_ready_revision or 'none'}, "
                f"latest created {svc.latest_created_revision or 'none'}")
    expected = "Ready CONDITION_SUCCEEDED on the latest created revision"
    logs = (f"`gcloud run services describe {svc.name} {_where(params)}`; "
            f"`gcloud run services logs read {svc.name} {_where(params)}`")
    if svc.ready and svc.latest_ready_revision == svc.latest_created_revision:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[KEY])
    if state == "CONDITION_RECONCILING" or (state == "CONDITION_PENDING"):
        return make(cid, title, WARN, observed=observed, expected=expected, evidence=[KEY],
                    reason="a deployment is in progress: wait and re-run")
    if svc.ready:
        why = (f"revision {svc.latest_created_revision} never became ready; traffic stays on "
               f"{svc.latest_ready_revision}")
    else:
        why = f"the service is not ready: {cond.get('message') or cond.get('reason') or state}"
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[KEY],
                upstream=["secrets", "connector", "cloudsql"], reason=why,
                remediation=f"read why the revision fails (missing secrets, an unreachable database and a startup "
                            f"longer than the startup probe allows are the usual causes): {logs}")


def vpc(cid: str, title: str, svc: Service, params: Params) -> CheckResult:
    want_conn, want_egress = params.connector.name, params.cloud_run.vpc_egress
    observed = f"connector {svc.vpc_connector or 'none'}, egress {svc.vpc_egress or 'none'}"
    expected = f"connector {want_conn}, egress {want_egress}"
    if svc.vpc_connector == want_conn and svc.vpc_egress == want_egress:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[KEY])
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[KEY],
                reason="the service's traffic to private addresses (the database) does not go through the connector"
                if svc.vpc_connector != want_conn else f"egress {svc.vpc_egress} sends only part of the traffic "
                                                       "through the connector",
                remediation=f"`{run.update_vpc_gcloud(params, svc.name)}`")


def deprecated_names(svc: Service, patterns: list[str]) -> dict[str, list[str]]:
    """Env var name -> the deprecated patterns its value references (from the value's shape)."""
    hits: dict[str, list[str]] = {}
    for env in svc.env:
        matched = run.env_references(env, patterns)
        if matched:
            hits.setdefault(env.get("name", ""), [])
            hits[env.get("name", "")] = sorted(set(hits[env.get("name", "")]) | set(matched))
    return hits


def domains(cid: str, title: str, svc: Service, params: Params) -> CheckResult:
    patterns = params.cloud_run.deprecated_domain_patterns
    expected = f"no environment value matching {', '.join(patterns)}" if patterns else "nothing to compare"
    if not patterns:
        return make(cid, title, SKIP, expected=expected, evidence=[KEY], severity=Severity.medium,
                    reason="cloud_run.deprecated_domain_patterns is empty")
    hits = deprecated_names(svc, patterns)
    if not hits:
        return make(cid, title, PASS, observed=f"{len(svc.env)} environment values checked",
                    expected=expected, evidence=[KEY], severity=Severity.medium)
    names = sorted(hits)
    verb = "references" if len(names) == 1 else "reference"
    matched = ", ".join(sorted({p for v in hits.values() for p in v}))
    replaceable = {o for e in svc.env if e.get("name") in hits
                   for o in run.env_replaceable(e, params.cloud_run.domain_replacements)}
    how = (f"the plan replaces {', '.join(f'{o} with {params.cloud_run.domain_replacements[o]}' for o in sorted(replaceable))} "
           "through services.patch (cloud_run.domain_replacements); or " if replaceable else
           "add the old -> new host to cloud_run.domain_replacements so the plan can replace it, or run ")
    return make(cid, title, FAIL, observed=f"{', '.join(names)} {verb} {matched}",
                expected=expected, evidence=[KEY], severity=Severity.medium,
                reason="the service still points at deprecated names, whose certificates and DNS are going away",
                remediation=how + f"`gcloud run services update {svc.name} {_where(params)} "
                            f"--update-env-vars {','.join(f'{n}=NEW_VALUE' for n in names)}` with the "
                            f"{params.domains.frontend} / {params.domains.api} names")


def timeout(cid: str, title: str, svc: Service, params: Params) -> CheckResult:
    want = params.cloud_run.request_timeout_s
    observed = f"timeout {svc.timeout_s:g} s" + ("" if svc.template.get("timeout") else " (Cloud Run's default)")
    expected = f">= {want} s (Cloud Run allows up to {run.MAX_TIMEOUT_S} s)"
    if svc.timeout_s >= want:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[KEY])
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[KEY],
                reason=(f"requests and WebSockets are cut after {svc.timeout_s:g} s: behind a serverless NEG the "
                        "revision's request timeout, not the backend service, decides how long they live"),
                remediation=f"`gcloud run services update {svc.name} {_where(params)} --timeout={want}`")


def startup_seconds(ev: Evidence, service: str) -> tuple[float, str] | None:
    """The measured p95 startup time of ``service`` in real-world seconds, from
    run.googleapis.com/container/startup_latencies (a distribution in ms, per revision): the
    revision serving now when the metric has it (an older revision's slow starts are history),
    else every revision of the service."""
    rec: MetricRecord | None = ev.metrics.get(STARTUP_KEY)
    if rec is None or not rec.ok:
        return None
    mine = [s for s in rec.series if s.labels.get("service_name", service) == service and s.points]
    serving = ""
    runs = ev.api.get(KEY)
    if usable(runs):
        svc = run.services_of(runs.body).get(service)
        serving = svc.serving_revision if svc else ""
    current = [s for s in mine if serving and s.labels.get("revision_name") == serving]
    chosen = current or mine
    values = [p.v * (1.0 if s.unit == "s" else 0.001) for s in chosen for p in s.points]  # Google: milliseconds
    if not values:
        return None
    which = f"revision {serving}" if current else "all revisions"
    return real(percentile(values, 95), time_scale(ev)), f"measured p95 of {which}, {plural(len(values), 'point')} ({STARTUP_KEY})"


def startup(cid: str, title: str, svc: Service, params: Params, ev: Evidence) -> CheckResult:
    measured = startup_seconds(ev, svc.name)
    need, source = measured if measured else (float(params.cloud_run.startup_s), "cloud_run.startup_s")
    window = svc.probe_window_s
    p = svc.startup_probe
    how = ("the default TCP probe: 1 x 240 s" if p is None else
           f"{p.get('initialDelaySeconds', 0)} + {p.get('failureThreshold', 3)} x {p.get('periodSeconds', 10)} s")
    observed = f"probe window {window} s ({how}); startup {need:.0f} s ({source})"
    expected = f"window >= startup time (Google allows at most {run.PROBE_WINDOW_MAX_S} s)"
    evidence = [KEY] + ([STARTUP_KEY] if measured else [])
    if need <= window:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=evidence)
    if need <= run.PROBE_WINDOW_MAX_S:
        want = run.needed_probe(need)
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=evidence,
                    reason=f"a new instance is shut down after {window} s, before it has started: a new revision "
                           "never becomes Ready and scaling out fails",
                    remediation=f"set the startup probe to initialDelaySeconds {want['initialDelaySeconds']}, "
                                f"periodSeconds {want['periodSeconds']}, failureThreshold {want['failureThreshold']} "
                                f"(services.patch; `gcloud run services replace` with the edited YAML)")
    boosted = svc.cpu_boost or not params.cloud_run.startup_cpu_boost
    if measured is None and boosted and svc.min_instances >= max(1, params.cloud_run.min_instances):
        # what decides is in place, and nothing measured says the stated time still holds
        return make(cid, title, WARN, observed=observed, expected=expected, evidence=evidence,
                    reason=(f"not measured (no {STARTUP_KEY} in the last {params.monitoring.lookback_minutes} "
                            f"minutes); the stated {need:.0f} s would exceed any startup probe (Google's caps: "
                            f"{run.PROBE_SPAN_MAX_S} s + {run.PROBE_DELAY_MAX_S} s), but startup CPU boost and "
                            f"{svc.min_instances} warm instance(s) are in place"),
                    remediation="measure it: deploy a revision (or let one scale out) and re-run this check")
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=evidence,
                reason=(f"no startup probe can wait {need:.0f} s: Cloud Run caps failureThreshold x periodSeconds at "
                        f"{run.PROBE_SPAN_MAX_S} s and initialDelaySeconds at {run.PROBE_DELAY_MAX_S} s, and shuts "
                        "the container down past the window. What decides instead: startup CPU boost (a faster "
                        "cold start) and min instances (warm instances serve while new ones start)"),
                remediation=(f"make startup faster: `gcloud run services update {svc.name} {_where(params)} "
                             f"--cpu-boost --min-instances={max(1, params.cloud_run.min_instances)}`, then move slow "
                             "initialisation out of the startup path (lazy connections, smaller image)"))


def min_instances(cid: str, title: str, svc: Service, params: Params) -> CheckResult:
    want = params.cloud_run.min_instances
    observed, expected = f"min instances {svc.min_instances}", f">= {want}"
    if svc.min_instances >= want:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[KEY], severity=Severity.medium)
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[KEY], severity=Severity.medium,
                reason="with no warm instance every cold start (up to the startup time) is on a request's path",
                remediation=f"`gcloud run services update {svc.name} {_where(params)} --min-instances={want}`")


def cpu_boost(cid: str, title: str, svc: Service, params: Params) -> CheckResult:
    observed = "startup CPU boost " + ("on" if svc.cpu_boost else "off")
    if not params.cloud_run.startup_cpu_boost:
        return make(cid, title, SKIP, observed=observed, evidence=[KEY], severity=Severity.medium,
                    reason="cloud_run.startup_cpu_boost is false: not required")
    if svc.cpu_boost:
        return make(cid, title, PASS, observed=observed, expected="on", evidence=[KEY], severity=Severity.medium)
    return make(cid, title, FAIL, observed=observed, expected="on", evidence=[KEY], severity=Severity.medium,
                reason="new instances start without the extra CPU that shortens a cold start",
                remediation=f"`gcloud run services update {svc.name} {_where(params)} --cpu-boost`")
