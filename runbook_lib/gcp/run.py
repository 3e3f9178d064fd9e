"""Cloud Run Admin (run v2): the services, their revision template, and how they are changed.

Read: ``GET /v2/projects/{p}/locations/{r}/services`` (list, field ``services``) -> ``run.services``.
Write: ``PATCH /v2/projects/{p}/locations/{r}/services/{s}`` (``services.patch``, answers a
``google.longrunning.Operation``; every template change creates a revision).

Evidence keeps no environment value, argument or command verbatim (issue 11): each becomes its
*shape* (``shape_value``): for a URL its scheme, host, port and path (never the user info or the
query); for anything else its length and whether it references a deprecated domain; always a
keyed fingerprint (HMAC-SHA256 with a key made for one gather and never stored), so two equal
values can be recognised within one run and nothing can be guessed back from the evidence.

Facts this module relies on (Google's own references):
- ``RevisionTemplate.timeout`` is a google-duration ("300s"); the default request timeout is 300 s
  and the maximum 3600 s (run.v2 discovery document; Cloud Run "request timeout" docs).
- Startup probe: ``initialDelaySeconds`` <= 240, ``periodSeconds`` <= 240, defaults period 10 s,
  failureThreshold 3, timeout 1 s (run.v2 discovery document, ``GoogleCloudRunV2Probe``);
  ``failureThreshold * periodSeconds`` cannot exceed 240 s and past it the container is shut down;
  a service without a configured probe gets a default TCP probe of timeout 240 s, period 240 s,
  failureThreshold 1 (cloud.google.com/run/docs/configuring/healthchecks).
- ``ResourceRequirements``: "if ResourceRequirements is set, the caller must explicitly set
  cpuIdle to true to preserve the default behavior" (discovery document), so a patch that creates
  ``resources`` to turn on ``startupCpuBoost`` also sets ``cpuIdle: true``.
- ``services.patch`` query parameters are ``updateMask``, ``validateOnly``, ``allowMissing``,
  ``forceNewRevision``; the body is a whole ``Service`` with its ``etag`` (a conflicting change
  in between is refused). Containers and env are lists a field mask cannot address per element,
  so the change is a read-modify-write of the service read right before the write, never a
  partial body: fields the runbook does not touch are sent back exactly as read. ``allowMissing``
  stays unset (a fix never creates a service); ``validateOnly`` is not used: a dry run sends
  nothing at all, and a confirmed apply validates by doing (Cloud Run answers 400 before any
  revision is created, and the emulator checks the body against the discovery document).
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import math
import re
import secrets as _secrets
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import TYPE_CHECKING, Any

from runbook_lib.evidence import ApiRecord
from runbook_lib.gcp.api import ApiCall, Product, Resource, last_segment
from runbook_lib.params import Params

if TYPE_CHECKING:  # the client only for typing: importing a view imports no I/O
    from runbook_lib.gcp.client import ApiClient

PRODUCT = Product(api="run", service="run.googleapis.com", title="Cloud Run Admin API",
                  read_role="roles/run.viewer", write_role="roles/run.admin")
API = PRODUCT.api

KEY = "run.services"

SUCCEEDED = "CONDITION_SUCCEEDED"
LATEST = "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"
BY_REVISION = "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION"

DEFAULT_TIMEOUT_S = 300          # Cloud Run's default request timeout
MAX_TIMEOUT_S = 3600
PROBE_SPAN_MAX_S = 240           # failureThreshold * periodSeconds, startup probe
PROBE_DELAY_MAX_S = 240          # initialDelaySeconds, startup probe
PROBE_WINDOW_MAX_S = PROBE_SPAN_MAX_S + PROBE_DELAY_MAX_S
DEFAULT_PROBE = {"timeoutSeconds": 240, "periodSeconds": 240, "failureThreshold": 1}  # the default TCP probe
PROBE_PERIOD_S = 10              # the period the runbook sets (Google's default)

# Output-only fields of GoogleCloudRunV2Service (readOnly in the run.v2 discovery document): not sent back.
OUTPUT_ONLY = ("conditions", "createTime", "creator", "deleteTime", "expireTime", "generation", "lastModifier",
               "latestCreatedRevision", "latestReadyRevision", "observedGeneration", "reconciling", "satisfiesPzs",
               "terminalCondition", "threatDetectionEnabled", "trafficStatuses", "uid", "updateTime", "uri", "urls")

HOST = re.compile(r"(?:\*\.)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}")


def services_path(params: Params) -> str:
    return f"/v2/projects/{params.project}/locations/{params.region}/services"


def service_name(params: Params, service: str) -> str:
    return f"projects/{params.project}/locations/{params.region}/services/{service}"


def service_path(params: Params, service: str) -> str:
    return f"/v2/{service_name(params, service)}"


async def gather(api: ApiClient, params: Params) -> dict[str, ApiRecord]:
    rec = await api.read(KEY, API, services_path(params), list_field="services")
    if rec.ok and isinstance(rec.body, dict):
        rec = rec.model_copy(update={"body": shape_services(rec.body, params)})
    return {KEY: rec}


def services_of(body: dict | None) -> dict[str, "Service"]:
    """Services by short name."""
    services = [Service.from_json(d) for d in (body or {}).get("services") or []]
    return {s.name: s for s in services}


# -- shapes instead of values ----------------------------------------------------------------------

def shape_services(body: dict, params: Params, *, key: bytes | None = None) -> dict:
    """The list answer with every env value, arg and command replaced by its shape."""
    key = key or _secrets.token_bytes(32)
    out = dict(body)
    out["services"] = [shape_service(s, params, key=key) for s in body.get("services") or []]
    return out


def shape_service(raw: dict, params: Params | None, *, key: bytes) -> dict:
    svc = copy.deepcopy(raw)
    for container in (svc.get("template") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if "value" in env:
                env["valueShape"] = shape_value(str(env.pop("value")), params, key=key)
        for field in ("args", "command"):
            if field in container:
                container[field + "Shape"] = [shape_value(str(a), params, key=key) for a in container.pop(field) or []]
    return svc


def shape_value(value: str, params: Params | None, *, key: bytes) -> dict:
    """What the checks need from one value, and nothing that could be a credential."""
    shape: dict[str, Any] = {"length": len(value),
                             "fingerprint": hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]}
    url = url_shape(value)
    if url is not None:
        shape["url"] = url
    if params is None:  # the audit's view: no judgement, only the shape
        return shape
    patterns = params.cloud_run.deprecated_domain_patterns
    hosts = [h.lower() for h in HOST.findall(value)]
    shape["deprecated"] = sorted({p for p in patterns if any(fnmatch(h, p.lower()) for h in hosts)})
    shape["replaceable"] = sorted(old for old in params.cloud_run.domain_replacements if references_host(value, old))
    return shape


_TOKENISH = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-+=.~%]{20,}$")


def url_shape(value: str) -> dict | None:
    """scheme, host, port, path of ``scheme://...``; the user info (passwords, even ones holding
    ``/`` or ``@``) and the query never leave this function."""
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", value.strip(), re.S)
    if not m:
        return None
    scheme, rest = m.group(1).lower(), m.group(2)
    userinfo = "@" in rest
    if userinfo:  # the LAST '@' ends the user info: a password may contain '/', ':' or '@'
        rest = rest.rsplit("@", 1)[1]
    authority, tail = re.match(r"^([^/?#]*)(.*)$", rest, re.S).groups()
    path = re.split(r"[?#]", tail, maxsplit=1)[0] if tail.startswith("/") else ""
    host, port = authority, None
    hp = re.match(r"^(\[[^\]]*\]|[^:]*)(?::(\d{1,5}))?$", authority)
    if hp:
        host, port = hp.group(1), int(hp.group(2)) if hp.group(2) else None
    # a path segment that looks like a token (webhook ids, keys) is kept as its length only
    segments = ["<%d chars>" % len(s) if _TOKENISH.match(s) else s for s in path.split("/")]
    return {"scheme": scheme, "host": host.lower(), "port": port, "path": "/".join(segments),
            "userinfo": userinfo, "query": "?" in value}


def references_host(value: str, host: str) -> bool:
    return _host_re(host).search(value) is not None


def replace_host(value: str, old: str, new: str) -> str:
    return _host_re(old).sub(new, value)


def _host_re(host: str) -> re.Pattern:
    # the host as a whole name: not a suffix of a longer name, not a prefix of one
    return re.compile(r"(?<![A-Za-z0-9.\-])" + re.escape(host) + r"(?![A-Za-z0-9\-]|\.[A-Za-z0-9])", re.I)


def env_references(env: dict, patterns: list[str]) -> list[str]:
    """The deprecated patterns one env entry references (shaped evidence or a raw value)."""
    shape = env.get("valueShape")
    if isinstance(shape, dict):
        hits = set(shape.get("deprecated") or [])
        host = (shape.get("url") or {}).get("host") or ""
        hits |= {p for p in patterns if host and fnmatch(host, p.lower())}
        return sorted(h for h in hits if h in patterns)
    if "value" in env:
        hosts = HOST.findall(str(env["value"]))
        return sorted(p for p in patterns if any(fnmatch(h.lower(), p.lower()) for h in hosts))
    return []


def env_replaceable(env: dict, replacements: dict[str, str]) -> list[str]:
    shape = env.get("valueShape")
    if isinstance(shape, dict):
        host = (shape.get("url") or {}).get("host") or ""
        return sorted(set(shape.get("replaceable") or []) | ({host} if host in replacements else set()))
    if "value" in env:
        return sorted(old for old in replacements if references_host(str(env["value"]), old))
    return []


# -- the typed view --------------------------------------------------------------------------------

def duration_s(value: Any) -> float | None:
    """google-duration ("300s", "1.5s") -> seconds."""
    if value is None:
        return None
    m = re.match(r"^\s*(\d+(?:\.\d+)?)s\s*$", str(value))
    return float(m.group(1)) if m else None


def probe_window_s(probe: dict | None) -> int:
    """How long a starting container may take before Cloud Run shuts it down."""
    p = probe if probe is not None else DEFAULT_PROBE
    return int(p.get("initialDelaySeconds", 0)) + int(p.get("failureThreshold", 3)) * int(p.get("periodSeconds", 10))


@dataclass(frozen=True)
class Service(Resource):
    @property
    def name(self) -> str:
        return last_segment(self.raw.get("name"))

    @property
    def terminal_condition(self) -> dict:
        return self.raw.get("terminalCondition") or {}

    @property
    def ready(self) -> bool:
        cond = self.terminal_condition
        return cond.get("type", "Ready") == "Ready" and cond.get("state") == SUCCEEDED

    @property
    def latest_ready_revision(self) -> str:
        return last_segment(self.raw.get("latestReadyRevision"))

    @property
    def latest_created_revision(self) -> str:
        return last_segment(self.raw.get("latestCreatedRevision"))

    @property
    def template(self) -> dict:
        return self.raw.get("template") or {}

    @property
    def etag(self) -> str:
        return self.raw.get("etag") or ""

    @property
    def reconciling(self) -> bool:
        return bool(self.raw.get("reconciling"))

    @property
    def vpc_connector(self) -> str:
        return last_segment((self.template.get("vpcAccess") or {}).get("connector"))

    @property
    def vpc_egress(self) -> str:
        """``ALL_TRAFFIC`` or ``PRIVATE_RANGES_ONLY`` (the API's default when unset)."""
        access = self.template.get("vpcAccess") or {}
        return access.get("egress") or ("PRIVATE_RANGES_ONLY" if access else "")

    @property
    def containers(self) -> list[dict]:
        return list(self.template.get("containers") or [])

    @property
    def ingress_container(self) -> dict:
        """The container that receives requests (the one with a port; with one container, that one)."""
        cs = self.containers
        return next((c for c in cs if c.get("ports")), cs[0] if cs else {})

    @property
    def env(self) -> list[dict]:
        """Every literal env entry of every container (secret references are not values)."""
        return [e for c in self.containers for e in c.get("env") or [] if "value" in e or "valueShape" in e]

    @property
    def timeout_s(self) -> float:
        return duration_s(self.template.get("timeout")) or DEFAULT_TIMEOUT_S

    @property
    def startup_probe(self) -> dict | None:
        return self.ingress_container.get("startupProbe")

    @property
    def probe_window_s(self) -> int:
        return probe_window_s(self.startup_probe)

    @property
    def min_instances(self) -> int:
        revision = (self.template.get("scaling") or {}).get("minInstanceCount") or 0
        service = (self.raw.get("scaling") or {}).get("minInstanceCount") or 0
        return max(int(revision), int(service))

    @property
    def cpu_boost(self) -> bool:
        return bool((self.ingress_container.get("resources") or {}).get("startupCpuBoost"))

    @property
    def serving_revision(self) -> str:
        """The revision taking the traffic now (the one a rollback returns to)."""
        statuses = self.raw.get("trafficStatuses") or []
        best = max(statuses, key=lambda t: t.get("percent") or 0, default=None)
        if best and best.get("revision"):
            return last_segment(best["revision"])
        return self.latest_ready_revision

    def serves_fully(self, revision: str) -> bool:
        """``revision`` takes 100 % of the traffic (by name, or as the latest ready revision)."""
        total = 0
        for t in self.raw.get("trafficStatuses") or []:
            named = last_segment(t.get("revision"))
            if named == revision or (not named and t.get("type") == LATEST and self.latest_ready_revision == revision):
                total += int(t.get("percent") or 0)
        return total >= 100

    @property
    def uri(self) -> str:
        return self.raw.get("uri") or ""


# -- remediation: the change, its request, its rollback --------------------------------------------

def needed_probe(startup_s: float) -> dict:
    """The smallest startup probe window >= ``startup_s`` within Google's limits (period 10 s)."""
    need = min(math.ceil(startup_s), PROBE_WINDOW_MAX_S)
    delay = max(0, need - PROBE_SPAN_MAX_S)
    threshold = max(1, math.ceil((need - delay) / PROBE_PERIOD_S))
    return {"initialDelaySeconds": delay, "periodSeconds": PROBE_PERIOD_S, "failureThreshold": threshold}


def change_for(svc: Service, params: Params, *, fix: set[str], startup_s: float) -> dict:
    """The declarative change (names and numbers only, never a value) that fixes ``fix``."""
    cr = params.cloud_run
    change: dict[str, Any] = {}
    if "timeout" in fix:
        change["timeout"] = f"{cr.request_timeout_s}s"
    if "startup" in fix and startup_s <= PROBE_WINDOW_MAX_S:
        change["startupProbe"] = needed_probe(startup_s)
    if "min_instances" in fix:
        change["minInstanceCount"] = cr.min_instances
    if "cpu_boost" in fix:
        change["startupCpuBoost"] = True
    if "vpc" in fix:
        change["vpcAccess"] = {"connector": f"projects/{params.project}/locations/{params.region}/connectors/"
                                            f"{params.connector.name}", "egress": cr.vpc_egress}
    if "domains" in fix:
        names = sorted({e.get("name", "") for e in svc.env if env_replaceable(e, cr.domain_replacements)})
        olds = sorted({o for e in svc.env for o in env_replaceable(e, cr.domain_replacements)})
        if names:
            change["envReplace"] = {"names": names, "hosts": {o: cr.domain_replacements[o] for o in olds}}
    return change


def patch_call(params: Params, service: str, change: dict) -> ApiCall:
    """The request as the plan shows it: the fields that change (the sent body is the whole service
    as read right before the write, with these fields set; see ``apply_change``)."""
    template: dict[str, Any] = {}
    container: dict[str, Any] = {}
    if "timeout" in change:
        template["timeout"] = change["timeout"]
    if "minInstanceCount" in change:
        template["scaling"] = {"minInstanceCount": change["minInstanceCount"]}
    if "vpcAccess" in change:
        template["vpcAccess"] = change["vpcAccess"]
    if "startupProbe" in change:
        container["startupProbe"] = change["startupProbe"]
    if "startupCpuBoost" in change:
        container["resources"] = {"startupCpuBoost": True}
    if container:
        template["containers"] = [container]
    body: dict[str, Any] = {"template": template, "traffic": [{"type": LATEST, "percent": 100}]}
    replace = change.get("envReplace") or {}
    return ApiCall(method="PATCH", api=API, path=service_path(params, service), body=body,
                   gcloud=update_gcloud(params, service, change),
                   description=(f"services.patch {service}: a new revision with "
                                + ", ".join(describe_change(change)) + "; the whole service read just before, with its etag"
                                + (f"; env {', '.join(replace['names'])}: host "
                                   + ", ".join(f"{o} -> {n}" for o, n in replace["hosts"].items()) if replace else "")))


def describe_change(change: dict) -> list[str]:
    out = []
    if "timeout" in change:
        out.append(f"timeout {change['timeout']}")
    if "startupProbe" in change:
        p = change["startupProbe"]
        out.append(f"startup probe {probe_window_s(p)} s ({p['initialDelaySeconds']} + "
                   f"{p['failureThreshold']} x {p['periodSeconds']} s)")
    if "minInstanceCount" in change:
        out.append(f"min instances {change['minInstanceCount']}")
    if "startupCpuBoost" in change:
        out.append("startup CPU boost")
    if "vpcAccess" in change:
        out.append(f"connector {last_segment(change['vpcAccess']['connector'])} egress {change['vpcAccess']['egress']}")
    if "envReplace" in change:
        out.append("env domains")
    return out or ["no change"]


def update_gcloud(params: Params, service: str, change: dict) -> str:
    flags = []
    if "timeout" in change:
        flags.append(f"--timeout={change['timeout'].rstrip('s')}")
    if "minInstanceCount" in change:
        flags.append(f"--min-instances={change['minInstanceCount']}")
    if "startupCpuBoost" in change:
        flags.append("--cpu-boost")
    if "vpcAccess" in change:
        egress = change["vpcAccess"]["egress"].lower().replace("_", "-")
        flags.append(f"--vpc-connector={last_segment(change['vpcAccess']['connector'])} --vpc-egress={egress}")
    if "envReplace" in change:
        flags.append("--update-env-vars=" + ",".join(f"{n}=VALUE_WITH_NEW_HOST" for n in change["envReplace"]["names"]))
    cmd = f"gcloud run services update {service} --region {params.region} --project {params.project}"
    if flags:
        cmd += " " + " ".join(flags)
    if "startupProbe" in change:
        p = change["startupProbe"]
        # gcloud has no flag for the startup probe: it is set through the service YAML
        cmd += (f" && gcloud run services describe {service} --region {params.region} --project {params.project} "
                "--format export > svc.yaml  # set spec.template.spec.containers[0].startupProbe: "
                f"initialDelaySeconds {p['initialDelaySeconds']}, periodSeconds {p['periodSeconds']}, "
                f"failureThreshold {p['failureThreshold']}; then: gcloud run services replace svc.yaml "
                f"--region {params.region} --project {params.project}")
    return cmd


def in_effect(raw: dict, change: dict) -> bool:
    """Is ``change`` already true of the service ``raw`` (read just now)?"""
    svc = Service.from_json(raw)
    if "timeout" in change and svc.timeout_s < (duration_s(change["timeout"]) or 0):
        return False
    if "startupProbe" in change and svc.probe_window_s < probe_window_s(change["startupProbe"]):
        return False
    if "minInstanceCount" in change and svc.min_instances < change["minInstanceCount"]:
        return False
    if "startupCpuBoost" in change and not svc.cpu_boost:
        return False
    if "vpcAccess" in change and (svc.vpc_connector != last_segment(change["vpcAccess"]["connector"])
                                  or svc.vpc_egress != change["vpcAccess"]["egress"]):
        return False
    hosts = (change.get("envReplace") or {}).get("hosts") or {}
    if any(references_host(str(e.get("value", "")), old) for e in svc.env for old in hosts):
        return False
    return True


def apply_change(raw: dict, change: dict) -> dict:
    """The whole service to send: ``raw`` (read right before) with ``change`` applied, output-only
    fields dropped, the etag kept, a generated revision name, and all traffic to the new revision."""
    body = {k: v for k, v in copy.deepcopy(raw).items() if k not in OUTPUT_ONLY}
    template = body.setdefault("template", {})
    template.pop("revision", None)  # a fixed revision name cannot be reused: let Cloud Run name it
    containers = template.setdefault("containers", [{}])
    for c in containers:
        c.pop("buildInfo", None)  # output only
    ingress = next((c for c in containers if c.get("ports")), containers[0])
    if "timeout" in change:
        template["timeout"] = change["timeout"]
    if "minInstanceCount" in change:
        template.setdefault("scaling", {})["minInstanceCount"] = change["minInstanceCount"]
    if "vpcAccess" in change:
        template["vpcAccess"] = {**(template.get("vpcAccess") or {}), **change["vpcAccess"]}
    if "startupProbe" in change:
        old = ingress.get("startupProbe") or {}
        probe = {k: v for k, v in old.items() if k in ("httpGet", "tcpSocket", "grpc")}
        if not probe:
            port = ((ingress.get("ports") or [{}])[0]).get("containerPort", 8080)
            probe["tcpSocket"] = {"port": port}
        probe.update(change["startupProbe"])
        probe["timeoutSeconds"] = min(int(old.get("timeoutSeconds", 1)), probe["periodSeconds"])
        ingress["startupProbe"] = probe
    if "startupCpuBoost" in change:
        if "resources" not in ingress:
            ingress["resources"] = {"cpuIdle": True}  # keep the default CPU allocation (see module docstring)
        ingress["resources"]["startupCpuBoost"] = True
    hosts = (change.get("envReplace") or {}).get("hosts") or {}
    for c in containers:
        for e in c.get("env") or []:
            if "value" in e:
                for old, new in hosts.items():
                    e["value"] = replace_host(str(e["value"]), old, new)
    body["traffic"] = [{"type": LATEST, "percent": 100}]
    return body


def rollback(params: Params, service: str, revision: str) -> str:
    """Traffic back to ``revision``: the gcloud command and the API request."""
    where = f"--region {params.region} --project {params.project}"
    if not revision:
        return (f"gcloud run revisions list --service {service} {where}, then "
                f"gcloud run services update-traffic {service} --to-revisions PREVIOUS=100 {where}")
    return (f"gcloud run services update-traffic {service} --to-revisions {revision}=100 {where}  |  API: "
            f"PATCH https://run.googleapis.com{service_path(params, service)} with the service as read now (its etag "
            f"kept) and traffic [{{\"type\": \"{BY_REVISION}\", \"revision\": \"{revision}\", \"percent\": 100}}]")


def traffic_to(raw: dict, revision: str) -> dict:
    """The rollback body: ``raw`` with all traffic on ``revision``."""
    body = {k: v for k, v in copy.deepcopy(raw).items() if k not in OUTPUT_ONLY}
    body["traffic"] = [{"type": BY_REVISION, "revision": revision, "percent": 100}]
    return body


# -- remediation text ------------------------------------------------------------------------------

def update_vpc_gcloud(params: Params, service: str) -> str:
    """The command that routes ``service`` through the connector with the configured egress."""
    egress = params.cloud_run.vpc_egress.lower().replace("_", "-")
    return (f"gcloud run services update {service} --region {params.region} --vpc-connector {params.connector.name} "
            f"--vpc-egress {egress} --project {params.project}")
