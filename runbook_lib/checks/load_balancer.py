"""Load balancer: what each backend service really fronts, then the checks that apply to it, and
the health endpoints answering 200 in time through the real front door.

Serverless NEG backends (Cloud Run): ``lb.<backend>.backends`` (every backend a SERVERLESS NEG in the
services' region naming an existing Cloud Run service) and ``lb.<backend>.config`` (no health check,
no timeout: Google rejects both on such a backend service). There is no backend timeout or health
check to judge, said once in ``lb.serverless``; the 600 s concerns are the Cloud Run revision's
(``run.<svc>.timeout`` / ``run.<svc>.startup``). Instance-group and zonal-NEG backends keep
``lb.<backend>.timeout`` / ``.health`` and the health checks' ``lb.<hc>.tolerance/path/policy``.
"""
from __future__ import annotations

from runbook_lib.checks._util import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Maker,
    domain_label,
    first_failed,
    fmt_limit,
    fmt_s,
    latency_s,
    on_wire,
    path_slug,
    percentile,
    plural,
    safe_id,
    time_scale,
    unavailable,
    unread,
    usable,
)
from runbook_lib.evidence import Evidence
from runbook_lib.gcp import compute, run
from runbook_lib.gcp.compute import BackendHealth, BackendService, HealthCheck, NetworkEndpointGroup
from runbook_lib.params import Params
from runbook_lib.probes.base import ProbeResult
from runbook_lib.results import CheckResult, Severity

make = Maker("load_balancer", Severity.high)
SERVICES, CHECKS, NEGS = compute.BACKEND_SERVICES, compute.HEALTH_CHECKS, compute.NEGS


def evaluate(ev: Evidence, params: Params) -> list[CheckResult]:
    serverless = serverless_backends(ev, params)
    return (backend_results(ev, params, serverless) + health_check_results(ev, params, serverless)
            + endpoint_results(ev, params))


# -- topology ---------------------------------------------------------------------------------------

def _negs(ev: Evidence) -> dict[tuple[str, str], NetworkEndpointGroup]:
    rec = ev.api.get(NEGS)
    return compute.negs_of(rec.body) if usable(rec) else {}


def _looks_serverless(svc: BackendService) -> bool:
    """Without the NEG list: every backend a regional NEG (what a global external load balancer
    takes only as serverless, PSC or internet NEGs), so no health-check or timeout advice is given."""
    refs = [compute.group_ref(g) for g in svc.groups]
    return bool(refs) and all(c == "networkEndpointGroups" and s.startswith("regions/") for s, c, _ in refs)


def serverless_backends(ev: Evidence, params: Params) -> dict[str, BackendService]:
    """The configured backend services whose backends are serverless NEGs, by name."""
    rec = ev.api.get(SERVICES)
    if not usable(rec):
        return {}
    negs, neg_rec = _negs(ev), ev.api.get(NEGS)
    out = {}
    for svc in compute.items(rec.body, BackendService):
        if svc.name in params.load_balancer.backend_services and (
                svc.is_serverless(negs) or (not usable(neg_rec) and _looks_serverless(svc))):
            out[svc.name] = svc
    return out


# -- backend services -----------------------------------------------------------------------------

def backend_results(ev: Evidence, params: Params, serverless: dict[str, BackendService] | None = None) -> list[CheckResult]:
    rec = ev.api.get(SERVICES)
    serverless = serverless_backends(ev, params) if serverless is None else serverless
    out: list[CheckResult] = []
    by_name = {s.name: s for s in compute.items(rec.body, BackendService)} if usable(rec) else {}
    for name in params.load_balancer.backend_services:
        ids = (f"lb.{safe_id(name)}.timeout", f"lb.{safe_id(name)}.health")
        titles = (f"{name} timeout tolerates startup and WebSockets", f"{name} backends are healthy")
        if not usable(rec):
            out += [unavailable(make, i, t, rec, SERVICES) for i, t in zip(ids, titles, strict=True)]
            continue
        svc = by_name.get(name)
        if svc is None:
            out.append(make(ids[0], titles[0], FAIL, observed="not found", expected=f"backend service {name}",
                            evidence=[SERVICES], reason=f"backend service {name} does not exist in {params.project}",
                            remediation=f"check the name (`gcloud compute backend-services list --global --project "
                                        f"{params.project}`) and fix load_balancer.backend_services"))
            out.append(make(ids[1], titles[1], SKIP, evidence=[SERVICES], reason=f"backend service {name} does not exist"))
            continue
        if name in serverless:
            out += [serverless_targets(svc, ev, params), serverless_config(svc, params)]
            continue
        out += [timeout(ids[0], titles[0], svc, params), health(ids[1], titles[1], svc, ev)]
    if serverless:
        out.append(not_applicable(serverless, params))
    return out


def not_applicable(serverless: dict[str, BackendService], params: Params) -> CheckResult:
    """The one line that says why serverless backends get no timeout or health-check verdicts."""
    names = ", ".join(serverless)
    unused = ", ".join(params.load_balancer.health_checks)
    return make("lb.serverless", "Backend timeout and health checks do not apply to serverless NEG backends", SKIP,
                observed=f"{names}: serverless NEG backends (Cloud Run)", evidence=[SERVICES, NEGS],
                reason=(f"{names} front Cloud Run through serverless NEGs. Google refuses a backend timeout "
                        f"(\"{compute.SERVERLESS_REJECTS['timeoutSec']}\") and a health check "
                        f"(\"{compute.SERVERLESS_REJECTS['healthChecks']}\") on them, so there is none to judge "
                        f"and the health checks {unused} are not used by these backends. How long a request or a "
                        "WebSocket may live is the Cloud Run revision's timeout, and whether a slow-starting "
                        "revision gets traffic is its startup probe: see run.<service>.timeout and "
                        "run.<service>.startup"))


def serverless_targets(svc: BackendService, ev: Evidence, params: Params) -> CheckResult:
    """Every backend a SERVERLESS NEG in the services' region, naming a Cloud Run service that exists."""
    cid, title = f"lb.{safe_id(svc.name)}.backends", f"{svc.name} sends to existing Cloud Run services"
    expected = f"serverless NEGs in {params.region} naming existing Cloud Run services"
    neg_rec, run_rec = ev.api.get(NEGS), ev.api.get(run.KEY)
    if not usable(neg_rec):
        return unavailable(make, cid, title, neg_rec, NEGS, expected=expected)
    negs = compute.negs_of(neg_rec.body)
    services = run.services_of(run_rec.body) if usable(run_rec) else None
    seen, problems = [], []
    for group in svc.groups:
        neg = compute.neg_for(group, negs)
        name = compute.group_ref(group)[2]
        if neg is None:
            problems.append(f"{name}: not in the project's network endpoint groups")
            continue
        target = neg.cloud_run_service
        seen.append(f"{neg.name} ({neg.type or 'type unknown'}, {neg.region or neg.zone or '?'}) -> {target or '?'}")
        if not neg.is_serverless:
            problems.append(f"{neg.name} is {neg.type}, not SERVERLESS")
        elif not target:
            problems.append(f"{neg.name} names no Cloud Run service (cloudRun {neg.cloud_run or 'absent'})")
        elif neg.region != params.region:
            problems.append(f"{neg.name} is in {neg.region or 'no region'}, the services run in {params.region}")
        elif services is not None and target not in services:
            problems.append(f"{neg.name} sends to {target}, which does not exist in {params.region}")
    observed = "; ".join(seen) or "no backends"
    if not svc.groups:
        problems.append("no backends attached: every request fails")
    if problems:
        service = (params.cloud_run.services or ["SERVICE"])[0]
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[SERVICES, NEGS, run.KEY],
                    reason="; ".join(problems),
                    remediation=(f"point a serverless NEG in {params.region} at the service and attach it: "
                                 f"`gcloud compute network-endpoint-groups create NEG --region {params.region} "
                                 f"--network-endpoint-type=serverless --cloud-run-service={service} --project "
                                 f"{params.project}`; `gcloud compute backend-services add-backend {svc.name} --global "
                                 f"--network-endpoint-group=NEG --network-endpoint-group-region={params.region} "
                                 f"--project {params.project}` (a NEG's target cannot be edited: create a new one)"))
    if services is None:
        return make(cid, title, WARN, observed=observed, expected=expected, evidence=[SERVICES, NEGS, run.KEY],
                    reason="the NEGs are serverless and in the right region, but whether their Cloud Run services "
                           "exist could not be read: " + unread(run_rec, run.KEY))
    return make(cid, title, PASS, observed=observed, expected=expected, evidence=[SERVICES, NEGS, run.KEY])


def serverless_config(svc: BackendService, params: Params) -> CheckResult:
    """A health check or a set timeout on a serverless-NEG backend service is itself a finding."""
    cid, title = f"lb.{safe_id(svc.name)}.config", f"{svc.name} carries no health check or timeout"
    expected = f"no healthChecks; timeoutSec absent or the default {compute.DEFAULT_BACKEND_TIMEOUT_S}"
    attached = []
    if svc.health_check_names:
        attached.append(("healthChecks", f"healthChecks {', '.join(svc.health_check_names)}"))
    if svc.timeout_is_set:
        attached.append(("timeoutSec", f"timeoutSec {svc.timeout_sec}"))
    timeout_note = (f"timeoutSec {svc.timeout_sec} (the default GET reports; not applied to serverless NEGs)"
                    if "timeoutSec" in svc.raw else "no timeoutSec")
    if not attached:
        return make(cid, title, PASS, observed=f"no health check; {timeout_note}", expected=expected,
                    evidence=[SERVICES])
    said = "; ".join(f"\"{compute.SERVERLESS_REJECTS[field]}\"" for field, _ in attached)
    return make(cid, title, FAIL, observed="; ".join(text for _, text in attached), expected=expected,
                evidence=[SERVICES], severity=Severity.medium,
                reason=(f"Google refuses these on a backend service with serverless NEG backends ({said}): they "
                        "have no effect on Cloud Run, mislead whoever reads the configuration, and an update that "
                        "sends them back is refused"),
                remediation=(f"remove them without touching the rest: `gcloud compute backend-services export "
                             f"{svc.name} --global --destination={svc.name}.yaml --project {params.project}`, delete "
                             "the healthChecks / timeoutSec lines, then `gcloud compute backend-services import "
                             f"{svc.name} --global --source={svc.name}.yaml --project {params.project}`; the request "
                             "and WebSocket lifetime is the Cloud Run revision's timeout (run.<service>.timeout)"))


def timeout(cid: str, title: str, svc: BackendService, params: Params) -> CheckResult:
    want = params.load_balancer.backend_timeout_s
    observed, expected = f"timeoutSec {svc.timeout_sec}", f"timeoutSec >= {want}"
    if svc.timeout_sec >= want:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[SERVICES])
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[SERVICES],
                reason=f"requests and WebSocket connections are cut after {svc.timeout_sec} s",
                remediation=f"`{compute.patch_backend_timeout(params, svc.name, svc).gcloud}` "
                            "(the backend timeout also caps how long a WebSocket connection may live)")


def health(cid: str, title: str, svc: BackendService, ev: Evidence) -> CheckResult:
    key = compute.backend_health_key(svc.name)
    if not svc.groups:
        return make(cid, title, FAIL, observed="no backends attached", expected="every endpoint HEALTHY",
                    evidence=[SERVICES], reason=f"{svc.name} has no backend groups: every request fails",
                    remediation=f"add the service's serverless NEG or instance group: `gcloud compute backend-services "
                                f"add-backend {svc.name} --global --network-endpoint-group=NEG "
                                "--network-endpoint-group-region=REGION`")
    rec = ev.api.get(key)
    if not usable(rec):
        return unavailable(make, cid, title, rec, key, expected="every endpoint HEALTHY")
    endpoints = BackendHealth.from_json(rec.body).endpoints
    if not endpoints:
        return make(cid, title, SKIP, evidence=[key], expected="every endpoint HEALTHY",
                    reason="getHealth reported no endpoints (serverless NEG backends report none); "
                           "the lb.endpoint.* probes cover them")
    bad = [e for e in endpoints if e.state != "HEALTHY"]
    observed = f"{len(endpoints) - len(bad)}/{len(endpoints)} endpoints HEALTHY"
    if not bad:
        return make(cid, title, PASS, observed=observed, expected="every endpoint HEALTHY", evidence=[key])
    listed = ", ".join(f"{e.target} ({e.address}) {e.state}" for e in bad)
    hcs = ", ".join(svc.health_check_names) or "its health check"
    return make(cid, title, FAIL, observed=f"{observed}; {listed}", expected="every endpoint HEALTHY",
                evidence=[key, SERVICES], upstream=["secrets", "cloudsql", "connector"],
                reason=f"the load balancer sends no traffic to {plural(len(bad), 'unhealthy endpoint')}",
                remediation=f"see why the backends fail {hcs} (services still starting, missing configuration, "
                            "no database) and the lb.*.tolerance results; "
                            f"`gcloud compute backend-services get-health {svc.name} --global`")


# -- health checks --------------------------------------------------------------------------------

def health_check_results(ev: Evidence, params: Params,
                         serverless: dict[str, BackendService] | None = None) -> list[CheckResult]:
    """Today's health-check verdicts, unless every configured backend is a serverless NEG backend
    (then nothing uses them; ``lb.serverless`` says so once)."""
    serverless = serverless_backends(ev, params) if serverless is None else serverless
    if serverless and set(serverless) >= set(params.load_balancer.backend_services):
        return []
    rec = ev.api.get(CHECKS)
    by_name = {h.name: h for h in compute.items(rec.body, HealthCheck)} if usable(rec) else {}
    out: list[CheckResult] = []
    for name, path in params.load_balancer.health_checks.items():
        ids = [f"lb.{safe_id(name)}.{what}" for what in ("tolerance", "path", "policy")]
        titles = [f"{name} tolerates a {params.load_balancer.startup_s} s startup", f"{name} probes {path}",
                  f"{name} policy"]
        if not usable(rec):
            out += [unavailable(make, i, t, rec, CHECKS) for i, t in zip(ids, titles, strict=True)]
            continue
        hc = by_name.get(name)
        if hc is None:
            out.append(make(ids[0], titles[0], FAIL, observed="not found", expected=f"health check {name}",
                            evidence=[CHECKS], reason=f"health check {name} does not exist in {params.project}",
                            remediation=f"create it: `{_create_gcloud(params, name)}`"))
            out += [make(i, t, SKIP, evidence=[CHECKS], reason=f"health check {name} does not exist")
                    for i, t in zip(ids[1:], titles[1:], strict=True)]
            continue
        out += [tolerance(ids[0], titles[0], hc, params), request_path(ids[1], titles[1], hc, path, params),
                policy(ids[2], titles[2], hc, params)]
    return out


def _create_gcloud(params: Params, name: str) -> str:
    p = params.load_balancer.health_check
    return (f"gcloud compute health-checks create http {name} --request-path={params.load_balancer.health_checks[name]} "
            f"--check-interval={p.interval_s}s --timeout={p.timeout_s}s --unhealthy-threshold={p.unhealthy_threshold} "
            f"--healthy-threshold={p.healthy_threshold} --global --project {params.project}")


def _fix(params: Params, hc: HealthCheck) -> str:
    return f"`{compute.patch_health_check(params, hc.name, hc).gcloud}`"


def tolerance(cid: str, title: str, hc: HealthCheck, params: Params) -> CheckResult:
    want = params.load_balancer.startup_s
    observed = (f"{hc.interval} s x {hc.unhealthy_threshold} = {hc.tolerance_s} s before a failing backend "
                "is marked unhealthy")
    expected = f">= {want} s (checkIntervalSec x unhealthyThreshold)"
    if hc.tolerance_s >= want:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[CHECKS])
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[CHECKS],
                reason=f"a service that takes {want} s to start is declared unhealthy after {hc.tolerance_s} s "
                       "and never receives traffic", remediation=_fix(params, hc))


def request_path(cid: str, title: str, hc: HealthCheck, path: str, params: Params) -> CheckResult:
    observed = hc.request_path if hc.request_path is not None else f"{hc.type or 'non-HTTP'} check (no request path)"
    if hc.request_path == path:
        return make(cid, title, PASS, observed=observed, expected=path, evidence=[CHECKS])
    return make(cid, title, FAIL, observed=observed, expected=path, evidence=[CHECKS],
                reason=f"the check does not probe the service's health endpoint {path}", remediation=_fix(params, hc))


def policy(cid: str, title: str, hc: HealthCheck, params: Params) -> CheckResult:
    p = params.load_balancer.health_check
    observed = (f"interval {hc.interval} s, timeout {hc.timeout} s, unhealthy {hc.unhealthy_threshold}, "
                f"healthy {hc.healthy_threshold}")
    expected = (f"interval {p.interval_s} s, timeout {p.timeout_s} s, unhealthy {p.unhealthy_threshold}, "
                f"healthy {p.healthy_threshold}")
    timing = [f"{n} {have} s != {want} s" for n, have, want in
              (("interval", hc.interval, p.interval_s), ("timeout", hc.timeout, p.timeout_s)) if have != want]
    thresholds = [f"{n} threshold {have} != {want}" for n, have, want in
                  (("unhealthy", hc.unhealthy_threshold, p.unhealthy_threshold),
                   ("healthy", hc.healthy_threshold, p.healthy_threshold)) if have != want]
    if not timing and not thresholds:
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[CHECKS])
    if not timing and hc.tolerance_s >= params.load_balancer.startup_s:
        return make(cid, title, WARN, observed=observed, expected=expected, evidence=[CHECKS], severity=Severity.medium,
                    reason=f"{'; '.join(thresholds)} (the startup tolerance is still sufficient)",
                    remediation=_fix(params, hc))
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[CHECKS],
                reason="; ".join(timing + thresholds) + ": a slow health endpoint or a starting service is "
                       "taken out of rotation", remediation=_fix(params, hc))


# -- the real front door --------------------------------------------------------------------------

def endpoint_keys(ev: Evidence, params: Params) -> list[tuple[str, str, str]]:
    """``(key, domain, path)`` for every HTTP probe of the configured domains, plus the API's health
    paths even when no probe was recorded (they then SKIP with the reason)."""
    wanted = {f"http.{params.domains.api}{p}": (params.domains.api, p) for p in params.domains.health_paths}
    for key in ev.probes:
        for domain in (params.domains.frontend, params.domains.api):
            prefix = f"http.{domain}"
            if key.startswith(prefix + "/"):
                wanted.setdefault(key, (domain, key[len(prefix):]))
    return [(k, d, p) for k, (d, p) in wanted.items()]


def endpoint_results(ev: Evidence, params: Params) -> list[CheckResult]:
    scale = time_scale(ev)
    return [endpoint(key, domain, path, ev.probes.get(key), params, scale)
            for key, domain, path in endpoint_keys(ev, params)]


def endpoint(key: str, domain: str, path: str, samples: list[ProbeResult] | None, params: Params,
             scale: float) -> CheckResult:
    cid = f"lb.endpoint.{domain_label(domain)}.{path_slug(path)}"
    title = f"https://{domain}{path} answers 200 in time"
    limit = params.thresholds.health_response_s
    expected = f"HTTP 200 within {fmt_limit(limit, scale)}"
    if not samples:
        return make(cid, title, SKIP, expected=expected, evidence=[key], reason=f"no HTTP probe recorded for {key}")
    bad = first_failed(samples)
    durations = [latency_s(s) for s in samples]
    slowest = percentile(durations, 100)
    statuses = sorted({str(s.info.get("status", s.info.get("status_code", "-"))) for s in samples})
    observed = f"status {', '.join(statuses)}; slowest {fmt_s(slowest, scale)}" + (
        f"; {sum(not s.ok for s in samples)}/{len(samples)} failed" if bad else "")
    if bad is None and slowest < on_wire(limit, scale):
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[key], upstream=["certificates"])
    why = (f"{bad.reason.value if bad.reason else 'error'}: {bad.detail}" if bad
           else f"slower than {limit:g} s")
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[key], upstream=["certificates"],
                reason=f"the health endpoint through the load balancer failed ({why})",
                remediation="fix the certificate results first if they fail (HTTPS cannot work without them); "
                            "otherwise see lb.*.health (instance groups) or run.<service>.ready / .startup "
                            "(Cloud Run behind serverless NEGs) and the service's logs: "
                            f"`gcloud run services logs read SERVICE --region {params.region} --project {params.project}`")
