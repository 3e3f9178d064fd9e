"""The incident's remediation playbook as rules: failing checks + current state -> actions.

One rule per component, same shape: ``rule(failing, evidence, params) -> list[Action]``. The
requests come from the product modules (``gcp/*.py``); this file decides *which* and records the
rollback from the state the evidence shows now. Right after each rule, ``kinds.register`` says what
"already in effect" means for the kinds of action it creates, so the applier has no per-kind code.
"""
from __future__ import annotations

from typing import Callable

from runbook_lib.checks._util import safe_id
from runbook_lib.errors import RemediationError
from runbook_lib.evidence import ApiRecord, Evidence
from runbook_lib.gcp import compute, run, secretmanager, sqladmin, vpcaccess
from runbook_lib.gcp.api import ApiCall, describe, last_segment
from runbook_lib.params import Params
from runbook_lib.remediate import certificate_wait as _certificate_wait  # also registers cert.detach-legacy
from runbook_lib.remediate import kinds
from runbook_lib.remediate.plan import Action, Read
from runbook_lib.results import CheckResult, Status

Failing = dict[str, CheckResult]


def _body(ev: Evidence, key: str) -> dict | None:
    rec = ev.api.get(key)
    return rec.body if rec is not None and rec.ok and isinstance(rec.body, dict) else None


def _ids(failing: Failing, prefix: str) -> list[str]:
    return [i for i in failing if i.startswith(prefix)]


def connector(failing: Failing, ev: Evidence, params: Params) -> list[Action]:
    out: list[Action] = []
    c = params.connector
    where = f"--region {params.region} --project {params.project}"
    current_state = vpcaccess.Connector.from_json(_body(ev, "vpcaccess.connector") or {}).state
    if "connector.exists" in failing or ("connector.state" in failing and current_state == vpcaccess.ERROR):
        out.append(Action(
            id="connector.recreate", kind="manual", component="connector",
            title=f"recreate connector {c.name} (it cannot be repaired in place)",
            answers=[i for i in ("connector.exists", "connector.state") if i in failing],
            instructions=f"{vpcaccess.delete_connector(params).gcloud} && {vpcaccess.create_connector(params).gcloud}",
            risk="high: services lose database access until the new connector is READY (about 2 minutes)",
            rollback="none needed: the old connector was not working",
            verify=["connector.exists", "connector.state", "connector.instances"],
        ))
    resize = [i for i in ("connector.instances", "connector.saturation") if i in failing]
    if resize and "connector.exists" not in failing:
        current = vpcaccess.Connector.from_json(_body(ev, "vpcaccess.connector") or {})
        out.append(Action(
            id="connector.resize", kind="connector.resize", component="connector",
            title=f"size connector {c.name} to min {c.min_instances} / max {c.max_instances} instances",
            answers=resize, calls=[vpcaccess.update_instances(params)],
            reads=[Read(api="vpcaccess", path=vpcaccess.connector_path(params))],
            risk="low: instances are added; existing connections are kept",
            rollback=(f"gcloud compute networks vpc-access connectors update {c.name} {where} "
                      f"--min-instances {current.min_instances} --max-instances {current.max_instances}"),
            verify=["connector.state", "connector.instances", "connector.saturation", "sql.connect"],
        ))
    manual = [i for i in ("connector.network", "connector.ip_range", "connector.attachment") if i in failing]
    if manual:
        out.append(Action(
            id="connector.network", kind="manual", component="connector",
            title="verify the connector's network, range and the services attached to it",
            answers=manual,
            instructions=(f"gcloud compute networks vpc-access connectors describe {c.name} {where}; expected network "
                          f"{c.network}, range {c.ip_cidr_range}; attach each service with "
                          f"`gcloud run services update SERVICE --vpc-connector {c.name} --vpc-egress all-traffic {where}`"),
            risk="medium: changing a service's connector deploys a new revision",
            rollback="redeploy the previous revision: gcloud run services update-traffic SERVICE --to-revisions PREVIOUS=100",
            verify=manual,
        ))
    return out


def _connector_resize_pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    c = vpcaccess.Connector.from_json(kinds.current(before) or {})
    ok = ((c.min_instances or 0) >= params.connector.min_instances
          and (c.max_instances or 0) >= params.connector.max_instances)
    return [] if ok else action.calls


kinds.register("connector.resize", pending=_connector_resize_pending)


def cloudsql(failing: Failing, ev: Evidence, params: Params) -> list[Action]:
    out: list[Action] = []
    inst = sqladmin.Instance.from_json(_body(ev, "sqladmin.instance") or {})
    name, project = params.cloudsql.instance, params.project
    read = [Read(api="sqladmin", path=sqladmin.instance_path(params))]
    start = [i for i in ("sql.state", "sql.activation_policy") if i in failing]
    if start:
        call = (sqladmin.set_activation_policy_always(params) if inst.activation_policy != "ALWAYS"
                else sqladmin.restart(params))
        out.append(Action(
            id="sql.start", kind="sql.start", component="cloudsql",
            title=f"start {name} and keep it running", answers=start, calls=[call], reads=read,
            risk="low: the instance is not serving now",
            rollback=f"gcloud sql instances patch {name} --activation-policy={inst.activation_policy or 'NEVER'} --project {project}",
            verify=["sql.state", "sql.activation_policy", "sql.connect"],
        ))
    if "sql.private_ip" in failing:
        out.append(Action(
            id="sql.private-network", kind="sql.private-network", component="cloudsql",
            title=f"put {name} on {params.cloudsql.network} with a private IP", answers=["sql.private_ip"],
            calls=[sqladmin.set_private_network(params)], reads=read,
            risk="high: the instance restarts; private services access must exist on the network",
            rollback="a private IP cannot be removed by patch; keep it (public IP settings are unchanged)",
            verify=["sql.private_ip", "sql.connect"],
        ))
    if "sql.ssl_required" in failing:
        out.append(Action(
            id="sql.require-ssl", kind="sql.require-ssl", component="cloudsql",
            title=f"require SSL on {name}", answers=["sql.ssl_required"], calls=[sqladmin.require_ssl(params)], reads=read,
            risk="medium: clients that connect without TLS are refused",
            rollback=f"gcloud sql instances patch {name} --ssl-mode=ALLOW_UNENCRYPTED_AND_ENCRYPTED --project {project}",
            verify=["sql.ssl_required"],
        ))
    flags = [i for i in ("sql.max_connections", "sql.flags") if i in failing]
    if flags:
        max_conn = params.cloudsql.min_max_connections if "sql.max_connections" in failing else None
        current = inst.flags
        listed = ",".join(f"{k}={v}" for k, v in current.items())
        out.append(Action(
            id="sql.flags", kind="sql.flags", component="cloudsql",
            title="set connection limit and statement/lock timeouts", answers=flags,
            calls=[sqladmin.patch_flags(params, current, max_connections=max_conn)], reads=read,
            risk="medium: changing max_connections restarts the instance",
            rollback=(f"gcloud sql instances patch {name} --database-flags={listed} --project {project}" if listed
                      else f"gcloud sql instances patch {name} --clear-database-flags --project {project}"),
            verify=flags,
        ))
    return out


def _instance(before: list[ApiRecord]) -> sqladmin.Instance:
    return sqladmin.Instance.from_json(kinds.current(before) or {})


def _sql_start_pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    inst = _instance(before)
    return [] if inst.state == "RUNNABLE" and inst.activation_policy == "ALWAYS" else action.calls


def _sql_private_network_pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    return [] if last_segment(_instance(before).private_network) == params.cloudsql.network else action.calls


def _sql_require_ssl_pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    return [] if _instance(before).require_ssl else action.calls


def _sql_flags_pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    flags = _instance(before).flags
    wanted = {f["name"]: f["value"] for f in action.calls[0].body["settings"]["databaseFlags"]}
    return [] if all(flags.get(k) == v for k, v in wanted.items()) else action.calls


kinds.register("sql.start", pending=_sql_start_pending)
kinds.register("sql.private-network", pending=_sql_private_network_pending)
kinds.register("sql.require-ssl", pending=_sql_require_ssl_pending)
kinds.register("sql.flags", pending=_sql_flags_pending)


def legacy_certificates(ev: Evidence, params: Params) -> list[str]:
    """Certificates on the proxy now, other than the managed one, that the managed one replaces.

    A certificate stays when it serves another site of this load balancer: it names a host of the
    URL map's host rules other than the two domains. Without the URL map, one stays unless it names
    either domain or a deprecated name (``cloud_run.deprecated_domain_patterns``)."""
    from fnmatch import fnmatch

    from runbook_lib.checks._util import covers

    lb = params.load_balancer
    proxy = compute.TargetHttpsProxy.from_json(_body(ev, "compute.targetHttpsProxy") or {})
    certs = {c.name: c for c in compute.items(_body(ev, "compute.sslCertificates"), compute.SslCertificate)}
    ours = {params.domains.frontend, params.domains.api}
    url_map = _body(ev, "compute.urlMap")
    other_hosts = ({h for rule in (url_map or {}).get("hostRules") or [] for h in rule.get("hosts") or []
                    if h != "*"} - ours) if url_map is not None else None
    out = []
    for name in proxy.certificate_names:
        if name == lb.certificate_name:
            continue
        cert = certs.get(name)
        names = cert.domains if cert is not None else []
        if other_hosts is not None:
            keep = any(covers(names, h) for h in other_hosts)
        else:
            replaced = any(covers(names, d) for d in ours) or any(
                fnmatch(n, p) or n == p for n in names for p in params.cloud_run.deprecated_domain_patterns)
            keep = bool(names) and not replaced
        if not keep:
            out.append(name)
    return out


def certificates(failing: Failing, ev: Evidence, params: Params) -> list[Action]:
    out: list[Action] = []
    lb = params.load_balancer
    tls = _ids(failing, "tls.")
    certs = [compute.SslCertificate.from_json(c) for c in (_body(ev, "compute.sslCertificates") or {}).get("items", [])]
    ours = next((c for c in certs if c.name == lb.certificate_name), None)
    proxy = compute.TargetHttpsProxy.from_json(_body(ev, "compute.targetHttpsProxy") or {})
    proxy_read = [Read(api="compute", path=compute.global_path(params, f"targetHttpsProxies/{lb.https_proxy}"))]
    current = proxy.certificate_names
    restore = (f"gcloud compute target-https-proxies update {lb.https_proxy} "
               f"--ssl-certificates={','.join(current) or 'PREVIOUS'} --global-ssl-certificates --global "
               f"--project {params.project}")
    hostnames = sorted(set(tls) | {f"tls.{d.split('.')[0]}.hostname" for d in (params.domains.frontend, params.domains.api)})
    if "cert.managed" in failing or tls:
        if ours is None:
            out.append(Action(
                id="cert.create", kind="cert.create", component="certificates",
                title=f"create the Google-managed certificate {lb.certificate_name}",
                answers=[i for i in ["cert.managed", *tls] if i in failing],
                calls=[compute.insert_managed_certificate(params)],
                reads=[Read(api="compute", path=compute.global_path(params, f"sslCertificates/{lb.certificate_name}"))],
                risk="low: a new certificate; nothing serves it until it is attached",
                rollback=f"gcloud compute ssl-certificates delete {lb.certificate_name} --global --project {params.project}",
                verify=["cert.managed"],
            ))
        elif any(s.startswith("FAILED") for s in ours.domain_status.values()):
            out.append(Action(
                id="cert.dns", kind="manual", component="certificates",
                title=f"make the domains visible so {lb.certificate_name} can be issued", answers=["cert.managed"],
                instructions=("point the A/AAAA records of " + ", ".join(ours.domains)
                              + " at the load balancer's IP (gcloud compute forwarding-rules list --global), "
                              "remove CAA records that exclude pki.goog, then wait for ACTIVE (up to 60 minutes)"),
                risk="low", rollback="restore the previous DNS records", verify=["cert.managed", *tls],
            ))
    attached = lb.certificate_name in current
    wanted = "cert.attached" in failing or bool(tls) or "cert.managed" in failing
    if wanted and not attached:
        if len(current) >= compute.MAX_PROXY_CERTIFICATES:
            out.append(Action(
                id="cert.attach", kind="manual", component="certificates",
                title=f"make room for {lb.certificate_name} on {lb.https_proxy}",
                answers=[i for i in ["cert.attached", *tls] if i in failing],
                instructions=(f"{lb.https_proxy} holds {len(current)} certificates, the most a target HTTPS proxy "
                              f"takes ({compute.MAX_PROXY_CERTIFICATES}): remove one that serves no domain any more, "
                              "then re-run the plan"),
                risk="medium", rollback=restore, verify=["cert.attached"],
            ))
        else:
            out.append(Action(
                id="cert.attach", kind="cert.attach", component="certificates",
                title=f"add {lb.certificate_name} to {lb.https_proxy} beside the current certificates",
                answers=[i for i in ["cert.attached", *tls] if i in failing],
                calls=[compute.attach_managed_certificate(params, current)], reads=proxy_read,
                risk=("low: the current certificates stay on the proxy and keep being served; the managed one "
                      "is served once ACTIVE (it needs to be attached, and DNS pointing here, to provision)"),
                rollback=restore, verify=["cert.attached", "cert.managed"],
            ))
    legacy = legacy_certificates(ev, params)
    if wanted and legacy:
        out.append(Action(
            id=_certificate_wait.KIND, kind=_certificate_wait.KIND, component="certificates",
            title=f"remove {', '.join(legacy)} from {lb.https_proxy} once {lb.certificate_name} is served",
            answers=[i for i in ["cert.attached", "cert.managed", *tls] if i in failing],
            calls=[compute.detach_certificates(params, with_managed(current, lb.certificate_name), legacy)],
            reads=proxy_read + [Read(api="compute", path=compute.global_path(params, f"sslCertificates/{lb.certificate_name}"))],
            risk=(f"low: runs only after cert.attach, when {lb.certificate_name} is ACTIVE and the live TLS probe "
                  f"sees it served for {params.domains.frontend} and {params.domains.api}; otherwise it stays "
                  "pending with the reason"),
            rollback=restore, verify=["cert.attached", "cert.managed", *hostnames],
        ))
    return out


def with_managed(current: list[str], managed: str) -> list[str]:
    """The proxy's list as cert.attach leaves it (the managed certificate added)."""
    return current if managed in current else [*current, managed]


def _cert_create_pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    return [] if kinds.current(before) is not None else action.calls


def _cert_attach_pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    names = [last_segment(u) for u in (kinds.current(before) or {}).get("sslCertificates", [])]
    return [] if params.load_balancer.certificate_name in names else action.calls


# After the plan, wait (bounded) for the managed certificate to be ACTIVE, so that phase 3 sees it.
# cert.detach-legacy is registered in certificate_wait.py with the condition it waits for.
kinds.register("cert.create", pending=_cert_create_pending, finish=_certificate_wait.wait_certificate_active)
kinds.register("cert.attach", pending=_cert_attach_pending, finish=_certificate_wait.wait_certificate_active)


def load_balancer(failing: Failing, ev: Evidence, params: Params) -> list[Action]:
    """Instance-group backends only: a serverless-NEG backend service is never PATCHed (Google refuses
    a timeout or a health check on it; what they would fix is the Cloud Run service's, see cloud_run)."""
    from runbook_lib.checks.load_balancer import serverless_backends

    out: list[Action] = []
    lb = params.load_balancer
    serverless = serverless_backends(ev, params)
    services = {b.name: b for b in compute.items(_body(ev, "compute.backendServices"), compute.BackendService)}
    checks = {h.name: h for h in compute.items(_body(ev, "compute.healthChecks"), compute.HealthCheck)}
    health = [i for i in failing if i.startswith("lb.") and i.endswith(".health")]
    for backend in lb.backend_services:
        cid = f"lb.{backend}.timeout"
        if cid in failing and backend not in serverless:
            current = services.get(backend)
            out.append(Action(
                id=f"lb.timeout.{backend}", kind="lb.timeout", component="load_balancer",
                title=f"backend {backend}: timeout {lb.backend_timeout_s} s", answers=[cid],
                calls=[compute.patch_backend_timeout(params, backend, current)],
                reads=[Read(api="compute", path=compute.global_path(params, f"backendServices/{backend}"))],
                risk="low: longer requests and WebSockets are allowed",
                rollback=(f"gcloud compute backend-services update {backend} --timeout="
                          f"{current.timeout_sec if current else 30} --global --project {params.project}"),
                verify=[cid, "golden.events"],
            ))
        config = f"lb.{backend}.config"
        targets = f"lb.{backend}.backends"
        manual = [i for i in (config, targets) if i in failing]
        if manual and backend in serverless:
            out.append(Action(
                id=f"lb.serverless.{backend}", kind="manual", component="load_balancer",
                title=f"backend {backend}: fix its serverless NEG backends by hand", answers=manual,
                instructions="; ".join(failing[i].remediation for i in manual if failing[i].remediation)
                             or f"gcloud compute backend-services describe {backend} --global --project {params.project}",
                risk="medium: the backend service serves every request of its hosts",
                rollback=(f"gcloud compute backend-services import {backend} --global --source=BEFORE.yaml "
                          f"--project {params.project} (export it first)"),
                verify=manual,
            ))
    if serverless and set(serverless) >= set(lb.backend_services):
        return out  # no health check is used by any configured backend
    for name in lb.health_checks:
        ids = [i for i in (f"lb.{name}.tolerance", f"lb.{name}.path", f"lb.{name}.policy") if i in failing]
        if ids:
            current = checks.get(name)
            old = (f"--check-interval={current.interval}s --timeout={current.timeout}s --unhealthy-threshold="
                   f"{current.unhealthy_threshold} --healthy-threshold={current.healthy_threshold} "
                   f"--request-path={current.request_path}") if current else "(previous values)"
            out.append(Action(
                id=f"lb.health-check.{name}", kind="lb.health-check", component="load_balancer",
                title=f"health check {name}: tolerate a {lb.startup_s} s startup", answers=ids + health,
                calls=[compute.patch_health_check(params, name, current)],
                reads=[Read(api="compute", path=compute.global_path(params, f"healthChecks/{name}"))],
                risk="low: unhealthy backends are detected later",
                rollback=f"gcloud compute health-checks update http {name} {old} --global --project {params.project}",
                verify=ids + [f"lb.{b}.health" for b in lb.backend_services],
            ))
    return out


def _lb_timeout_pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    return [] if (kinds.current(before) or {}).get("timeoutSec", 0) >= params.load_balancer.backend_timeout_s \
        else action.calls


def _lb_health_check_pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    state = kinds.current(before) or {}
    body = action.calls[0].body or {}
    same = all(state.get(k) == v for k, v in body.items() if not isinstance(v, dict))
    nested = all((state.get(k) or {}).get("requestPath") == v.get("requestPath")
                 for k, v in body.items() if isinstance(v, dict))
    return [] if same and nested else action.calls


kinds.register("lb.timeout", pending=_lb_timeout_pending)
kinds.register("lb.health-check", pending=_lb_health_check_pending)


def secrets(failing: Failing, ev: Evidence, params: Params) -> list[Action]:
    out: list[Action] = []
    present = {s.name for s in secretmanager.secrets_of(_body(ev, "secretmanager.secrets"))}
    for name in params.secrets.required:
        cid = f"secrets.{name}"
        if cid not in failing or failing[cid].status is Status.ERROR:
            continue
        missing = name not in present
        calls = ([secretmanager.create_secret(params, name)] if missing else []) + [secretmanager.add_version(params, name)]
        out.append(Action(
            id=f"secret.{'create' if missing else 'version'}.{name}", kind="secret.value", component="secrets",
            title=(f"create secret {name} with a value supplied by a person" if missing
                   else f"add an enabled version to secret {name} (value supplied by a person)"),
            answers=[cid, "secrets.count"] if "secrets.count" in failing else [cid], calls=calls,
            reads=[Read(api="secretmanager", path=f"{secretmanager.secrets_path(params)}/{name}"),
                   Read(api="secretmanager", path=f"{secretmanager.secrets_path(params)}/{name}/versions")],
            secret_name=name,
            risk="medium: services read the new value at their next start",
            rollback=(f"gcloud secrets delete {name} --project {params.project}" if missing
                      else f"gcloud secrets versions disable NEW_VERSION --secret={name} --project {params.project}"),
            verify=[cid, "secrets.count"],
        ))
    return out


RUN_FIXABLE = ("timeout", "startup", "min_instances", "cpu_boost", "vpc", "domains")


def _secret_pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    """Create the secret if it is missing, add a version unless an ENABLED one exists (addVersion is
    not idempotent: read right before, and sent at most once per apply)."""
    exists = bool(before) and before[0].ok
    versions = (before[1].body or {}).get("versions", []) if len(before) > 1 and before[1].ok and isinstance(
        before[1].body, dict) else []
    enabled = any(v.get("state") == "ENABLED" for v in versions)
    create = [c for c in action.calls if not c.path.endswith(":addVersion")] if not exists else []
    add = [c for c in action.calls if c.method == "POST" and c.path.endswith(":addVersion")] if not enabled else []
    return create + add


kinds.register("secret.value", pending=_secret_pending)


def cloud_run(failing: Failing, ev: Evidence, params: Params) -> list[Action]:
    """One ``services.patch`` per service for what the revision template can fix (timeout, startup
    probe, min instances, CPU boost, VPC egress, deprecated hosts in env values); a manual step for
    the rest. Rollback = traffic back to the revision serving now (from the evidence)."""
    from runbook_lib.checks.cloud_run import startup_seconds

    out: list[Action] = []
    services = run.services_of(_body(ev, run.KEY))
    where = f"--region {params.region} --project {params.project}"
    for name in params.cloud_run.services:
        sid = safe_id(name)
        ids = sorted(i for i in failing if i.startswith(f"run.{sid}."))
        if not ids or any(failing[i].status is Status.ERROR for i in ids):
            continue
        svc = services.get(name)
        what = {i.rsplit(".", 1)[1]: i for i in ids}
        answered: list[str] = []
        if svc is not None and "exists" not in what:
            measured = startup_seconds(ev, name)
            startup_s = measured[0] if measured else float(params.cloud_run.startup_s)
            fix = set(what) & set(RUN_FIXABLE)
            change = run.change_for(svc, params, fix=fix, startup_s=startup_s)
            if "startup" in fix and startup_s > run.PROBE_WINDOW_MAX_S:
                # no probe can wait that long: what decides instead is a faster start and warm instances
                if params.cloud_run.startup_cpu_boost:
                    change["startupCpuBoost"] = True
                change["minInstanceCount"] = max(change.get("minInstanceCount", 0), params.cloud_run.min_instances, 1)
            answered = [what[w] for w in fix if w != "domains" or "envReplace" in change]
            if "startup" in fix and "ready" in what:
                answered.append(what["ready"])  # a revision shut down by its probe never became Ready
            if change:
                previous = svc.serving_revision
                out.append(Action(
                    id=f"run.patch.{name}", kind=RUN_KIND, component="cloud_run",
                    title=f"{name}: new revision with " + ", ".join(run.describe_change(change)),
                    answers=sorted(answered), calls=[run.patch_call(params, name, change)],
                    reads=[Read(api="run", path=run.service_path(params, name))], change=change,
                    risk=("medium: a new revision takes 100 % of the traffic once it is Ready; the previous "
                          f"revision ({previous or 'none'}) stays deployed for rollback"),
                    rollback=run.rollback(params, name, previous),
                    verify=sorted(set(ids) | {f"run.{sid}.ready"}),
                ))
        rest = [i for i in ids if i not in answered]
        if rest:
            out.append(Action(
                id=f"run.{name}", kind="manual", component="cloud_run", title=f"Cloud Run service {name}: what a person fixes",
                answers=rest,
                instructions=(f"gcloud run services describe {name} {where}; "
                              f"fix what {', '.join(rest)} report (deploy the service if missing; read the revision's "
                              f"logs with `gcloud run services logs read {name} {where}`; environment values on the "
                              "current domains), then deploy a new revision"),
                risk="medium: a new revision takes traffic",
                rollback=run.rollback(params, name, svc.serving_revision if svc else ""),
                verify=rest,
            ))
    return out


# -- the run.service kind: read-modify-write of the service, then its new revision Ready at 100 % ---

RUN_KIND = "run.service"


def _run_pending(action: Action, before: list[ApiRecord], params: Params) -> list[ApiCall]:
    rec = before[0] if before else None
    if rec is None or not rec.ok or not isinstance(rec.body, dict):
        raise RemediationError(f"{action.id}: the service {describe(action.reads[0].path)} cannot be read "
                               "right before the change: nothing was sent")
    if run.in_effect(rec.body, action.change):
        return []
    planned = action.calls[0]
    # the whole service as read a moment ago (etag kept: a change in between is refused by Cloud Run)
    return [planned.model_copy(update={"body": run.apply_change(rec.body, action.change)})]


async def _run_settle(step, action: Action, answers: list[dict]) -> None:
    """Wait until the revision the patch created is Ready and serves 100 % (bounded, with backoff)."""
    import time

    before = step.entry.before[0] if step.entry.before else {}
    old = last_segment(before.get("latestCreatedRevision")) if isinstance(before, dict) else ""
    path = action.reads[0].path
    give_up = time.monotonic() + step.params.deadlines.operation_s
    delay = step.first_poll_s
    while True:
        rec = await step.read("run", path)
        svc = run.Service.from_json(rec.body if rec.ok else {})
        new = svc.latest_created_revision
        cond = svc.terminal_condition
        if new and new != old and svc.ready and svc.latest_ready_revision == new and svc.serves_fully(new):
            step.event("settle", status="READY", detail=f"revision {new} is Ready and serves 100 %")
            return
        state = cond.get("state", "unknown")
        step.event("settle", status=state, detail=f"latest created {new or 'none'}, latest ready "
                                                  f"{svc.latest_ready_revision or 'none'}")
        # settled without the new revision: it failed (the service keeps serving the previous one)
        stuck = bool(new) and new != old and not svc.reconciling and state == run.SUCCEEDED
        if state == "CONDITION_FAILED" or (stuck and svc.latest_ready_revision != new):
            raise RemediationError(
                f"revision {new or '(none)'} of {svc.name} did not become Ready: "
                f"{cond.get('message') or cond.get('reason') or state}; traffic stays on "
                f"{svc.latest_ready_revision or 'the previous revision'}. Rollback if needed: {action.rollback}")
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            raise RemediationError(f"revision {new or '(none)'} of {svc.name} is not Ready at 100 % after "
                                   f"{step.params.deadlines.operation_s:g} s; it may still become Ready: re-run the check")
        await step.api.pause(min(delay, remaining))
        delay = min(delay * 1.5, 10 * step.first_poll_s)


def _run_snapshot(rec: ApiRecord):
    """The audit keeps the service's shape: env values, args and commands never verbatim."""
    import secrets as _secrets

    if not rec.ok or not isinstance(rec.body, dict):
        return {"absent": True, "status": rec.status}
    return run.shape_service(rec.body, None, key=_secrets.token_bytes(32))


kinds.register(RUN_KIND, pending=_run_pending, settle=_run_settle, snapshot=_run_snapshot)


def access(failing: Failing, ev: Evidence, params: Params) -> list[Action]:
    """ERROR checks cannot be fixed blind: the first step is to make them observable."""
    errors = [r for r in failing.values() if r.status is Status.ERROR]
    if not errors:
        return []
    reasons = sorted({r.reason for r in errors})
    return [Action(
        id="access.restore", kind="manual", component="runbook",
        title="restore the runbook's view of the environment (checks that could not run)",
        answers=[r.id for r in errors], instructions="; ".join(reasons[:6]),
        risk="none", rollback="none", verify=[r.id for r in errors],
    )]


RULES: list[Callable[[Failing, Evidence, Params], list[Action]]] = [
    connector, cloudsql, certificates, load_balancer, secrets, cloud_run, access,
]
