"""Cloud Run: each configured service exists, is Ready on its latest revision, egresses through the
connector, and no environment value still points at a deprecated domain (names only, never values)."""
from __future__ import annotations

import re
from fnmatch import fnmatch

from ..evidence import Evidence
from ..gcp import run
from ..gcp.run import Service
from ..params import Params
from ..results import CheckResult, Severity
from ._util import FAIL, PASS, SKIP, WARN, Maker, safe_id, unavailable, usable

make = Maker("cloud_run", Severity.high)
KEY = run.KEY
HOST = re.compile(r"(?:\*\.)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}")


def evaluate(ev: Evidence, params: Params) -> list[CheckResult]:
    rec = ev.api.get(KEY)
    out: list[CheckResult] = []
    services = run.services_of(rec.body) if usable(rec) else {}
    for name in params.cloud_run.services:
        ids = {what: f"run.{safe_id(name)}.{what}" for what in ("exists", "ready", "vpc", "domains")}
        titles = {"exists": f"{name} is deployed", "ready": f"{name} is Ready on its latest revision",
                  "vpc": f"{name} egresses through {params.connector.name}",
                  "domains": f"{name} config has no deprecated domains"}
        if not usable(rec):
            out += [unavailable(make, ids[w], titles[w], rec, KEY) for w in ids]
            continue
        svc = services.get(name)
        if svc is None:
            out.append(make(ids["exists"], titles["exists"], FAIL, observed="not found",
                            expected=f"service {name} in {params.region}", evidence=[KEY],
                            reason=f"no Cloud Run service {name} in {params.project}/{params.region}",
                            remediation=f"deploy it, or fix cloud_run.services "
                                        f"(`gcloud run services list --region {params.region} --project {params.project}`)"))
            out += [make(ids[w], titles[w], SKIP, evidence=[KEY], reason=f"service {name} does not exist")
                    for w in ("ready", "vpc", "domains")]
            continue
        out += [make(ids["exists"], titles["exists"], PASS, observed=svc.uri or svc.name,
                     expected=f"service {name} in {params.region}", evidence=[KEY]),
                ready(ids["ready"], titles["ready"], svc, params), vpc(ids["vpc"], titles["vpc"], svc, params),
                domains(ids["domains"], titles["domains"], svc, params)]
    return out


def ready(cid: str, title: str, svc: Service, params: Params) -> CheckResult:
    cond = svc.terminal_condition
    state = cond.get("state", "unknown")
    observed = (f"Ready {state}; latest ready {svc.latest_ready_revision or 'none'}, "
                f"latest created {svc.latest_created_revision or 'none'}")
    expected = "Ready CONDITION_SUCCEEDED on the latest created revision"
    logs = (f"`gcloud run services describe {svc.name} --region {params.region} --project {params.project}`; "
            f"`gcloud run services logs read {svc.name} --region {params.region} --project {params.project}`")
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
                remediation=f"read why the revision fails (missing secrets and an unreachable database are the "
                            f"usual causes): {logs}")


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
    """Env var name -> the patterns its value matches (values are looked at here, never returned)."""
    hits: dict[str, list[str]] = {}
    for name, value in svc.env_values.items():
        hosts = HOST.findall(value)
        matched = [p for p in patterns if any(fnmatch(h.lower(), p.lower()) for h in hosts)]
        if matched:
            hits[name] = matched
    return hits


def domains(cid: str, title: str, svc: Service, params: Params) -> CheckResult:
    patterns = params.cloud_run.deprecated_domain_patterns
    expected = f"no environment value matching {', '.join(patterns)}" if patterns else "nothing to compare"
    if not patterns:
        return make(cid, title, SKIP, expected=expected, evidence=[KEY], severity=Severity.medium,
                    reason="cloud_run.deprecated_domain_patterns is empty")
    hits = deprecated_names(svc, patterns)
    if not hits:
        return make(cid, title, PASS, observed=f"{len(svc.env_values)} environment values checked",
                    expected=expected, evidence=[KEY], severity=Severity.medium)
    names = sorted(hits)
    verb = "references" if len(names) == 1 else "reference"
    matched = ", ".join(sorted({p for v in hits.values() for p in v}))
    return make(cid, title, FAIL, observed=f"{', '.join(names)} {verb} {matched}",
                expected=expected, evidence=[KEY], severity=Severity.medium,
                reason="the service still points at deprecated names, whose certificates and DNS are going away",
                remediation=f"`gcloud run services update {svc.name} --region {params.region} --project {params.project} "
                            f"--update-env-vars {','.join(f'{n}=NEW_VALUE' for n in names)}` with the "
                            f"{params.domains.frontend} / {params.domains.api} names")
