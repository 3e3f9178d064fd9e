"""Load balancer: backend timeouts and health checks that tolerate the services' startup, healthy
backends, and the health endpoints answering 200 in time through the real front door."""
from __future__ import annotations

from ..evidence import Evidence
from ..gcp import compute
from ..gcp.compute import BackendHealth, BackendService, HealthCheck
from ..params import Params
from ..probes.base import ProbeResult
from ..results import CheckResult, Severity
from ._util import (
    FAIL, PASS, SKIP, WARN, Maker, domain_label, first_failed, fmt_limit, fmt_s, path_slug, percentile, plural,
    safe_id, unavailable, usable,
)

make = Maker("load_balancer", Severity.high)
SERVICES, CHECKS = compute.BACKEND_SERVICES, compute.HEALTH_CHECKS


def evaluate(ev: Evidence, params: Params) -> list[CheckResult]:
    return backend_results(ev, params) + health_check_results(ev, params) + endpoint_results(ev, params)


# -- backend services -----------------------------------------------------------------------------

def backend_results(ev: Evidence, params: Params) -> list[CheckResult]:
    rec = ev.api.get(SERVICES)
    out: list[CheckResult] = []
    by_name = {s.name: s for s in compute.items(rec.body, BackendService)} if usable(rec) else {}
    for name in params.load_balancer.backend_services:
        ids = (f"lb.{safe_id(name)}.timeout", f"lb.{safe_id(name)}.health")
        titles = (f"{name} timeout tolerates startup and WebSockets", f"{name} backends are healthy")
        if not usable(rec):
            out += [unavailable(make, i, t, rec, SERVICES) for i, t in zip(ids, titles)]
            continue
        svc = by_name.get(name)
        if svc is None:
            out.append(make(ids[0], titles[0], FAIL, observed="not found", expected=f"backend service {name}",
                            evidence=[SERVICES], reason=f"backend service {name} does not exist in {params.project}",
                            remediation=f"check the name (`gcloud compute backend-services list --global --project "
                                        f"{params.project}`) and fix load_balancer.backend_services"))
            out.append(make(ids[1], titles[1], SKIP, evidence=[SERVICES], reason=f"backend service {name} does not exist"))
            continue
        out += [timeout(ids[0], titles[0], svc, params), health(ids[1], titles[1], svc, ev)]
    return out


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

def health_check_results(ev: Evidence, params: Params) -> list[CheckResult]:
    rec = ev.api.get(CHECKS)
    by_name = {h.name: h for h in compute.items(rec.body, HealthCheck)} if usable(rec) else {}
    out: list[CheckResult] = []
    for name, path in params.load_balancer.health_checks.items():
        ids = [f"lb.{safe_id(name)}.{what}" for what in ("tolerance", "path", "policy")]
        titles = [f"{name} tolerates a {params.load_balancer.startup_s} s startup", f"{name} probes {path}",
                  f"{name} policy"]
        if not usable(rec):
            out += [unavailable(make, i, t, rec, CHECKS) for i, t in zip(ids, titles)]
            continue
        hc = by_name.get(name)
        if hc is None:
            out.append(make(ids[0], titles[0], FAIL, observed="not found", expected=f"health check {name}",
                            evidence=[CHECKS], reason=f"health check {name} does not exist in {params.project}",
                            remediation=f"create it: `{_create_gcloud(params, name)}`"))
            out += [make(i, t, SKIP, evidence=[CHECKS], reason=f"health check {name} does not exist")
                    for i, t in zip(ids[1:], titles[1:])]
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
    out = []
    for key, domain, path in endpoint_keys(ev, params):
        out.append(endpoint(key, domain, path, ev.probes.get(key), params))
    return out


def endpoint(key: str, domain: str, path: str, samples: list[ProbeResult] | None, params: Params) -> CheckResult:
    cid = f"lb.endpoint.{domain_label(domain)}.{path_slug(path)}"
    title = f"https://{domain}{path} answers 200 in time"
    scale, limit = params.target.time_scale, params.thresholds.health_response_s
    expected = f"HTTP 200 within {fmt_limit(limit, scale)}"
    if not samples:
        return make(cid, title, SKIP, expected=expected, evidence=[key], reason=f"no HTTP probe recorded for {key}")
    bad = first_failed(samples)
    durations = [s.wire_s for s in samples]  # network time; our own event loop's queueing is not the LB's
    slowest = percentile(durations, 100)
    statuses = sorted({str(s.info.get("status", s.info.get("status_code", "-"))) for s in samples})
    observed = f"status {', '.join(statuses)}; slowest {fmt_s(slowest, scale)}" + (
        f"; {sum(not s.ok for s in samples)}/{len(samples)} failed" if bad else "")
    if bad is None and slowest < params.scaled(limit):
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[key], upstream=["certificates"])
    why = (f"{bad.reason.value if bad.reason else 'error'}: {bad.detail}" if bad
           else f"slower than {limit:g} s")
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[key], upstream=["certificates"],
                reason=f"the health endpoint through the load balancer failed ({why})",
                remediation="fix the certificate results first if they fail (HTTPS cannot work without them); "
                            "otherwise see lb.*.health and the service's logs: "
                            f"`gcloud run services logs read SERVICE --region {params.region} --project {params.project}`")
