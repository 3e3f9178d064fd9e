"""Cloud Run Admin v2: services, their revisions, ``services.patch`` as a long-running operation.

A patch that changes the template creates a new revision (``{service}-{generation:05d}-xyz``);
when the operation completes the revision becomes Ready if its startup probe window
(``initialDelaySeconds + failureThreshold x periodSeconds``) covers the startup time (scenario
``services.startup_s``, or ``startup_s_boosted`` with ``resources.startupCpuBoost``); otherwise it
fails, the operation ends with the error and the service keeps serving the previous revision.
Traffic follows ``traffic`` (LATEST, or a named revision: the rollback).

Limits (Cloud Run docs, "Configure container health checks" and "Set request timeout"):
``timeout`` at most 3600 s; startup probe ``periodSeconds`` <= 240, ``initialDelaySeconds`` <= 240,
``failureThreshold x periodSeconds`` <= 240, ``periodSeconds`` >= ``timeoutSeconds``.
"""
from __future__ import annotations

import copy
import re
import uuid
from typing import Any

from runbook_lib.sandbox.state.common import ACTOR, ApiFault, Base, bad_request, fingerprint, ids

SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
PROBE_CAP_S = 240
WRITABLE = ("description", "labels", "annotations", "client", "clientVersion", "ingress", "launchStage",
            "binaryAuthorization", "template", "traffic", "scaling", "invokerIamDisabled", "defaultUriDisabled",
            "customAudiences")


def _seconds(duration: str | None, default: float = 0.0) -> float:
    return float(duration[:-1]) if duration else default


class Run(Base):
    HANDLERS = {
        "run.projects.locations.services.list": lambda s, c: s._page_of(
            c, s.list_services(*ids(c.params["parent"], 2)), "services"),
        "run.projects.locations.services.get": lambda s, c: s.get_service(*ids(c.params["name"], 3)),
        "run.projects.locations.services.patch": lambda s, c: s.patch_service(c.params["name"], c.body, c.query),
        "run.projects.locations.services.revisions.list": lambda s, c: s._page_of(
            c, s.list_revisions(*ids(c.params["parent"], 3)), "revisions"),
        "run.projects.locations.services.revisions.get": lambda s, c: s.get_revision(c.params["name"]),
        "run.projects.locations.operations.get": lambda s, c: s._run_operation(c.params["name"]),
        "run.projects.locations.operations.wait": lambda s, c: s._run_operation(c.params["name"]),
        "run.projects.locations.operations.list": lambda s, c: s._page_of(
            c, s.ops.listing("run", c.params["name"] + "/operations/"), "operations"),
    }

    _services: dict[str, dict[str, Any]]
    _revisions: dict[str, dict[str, dict[str, Any]]]
    _cold_until: dict[str, float]  # service -> clock time its first instance has started (min instances 0)

    def _build_services(self) -> None:
        self._services, self._revisions, self._cold_until = {}, {}, {}
        required = self.params.secrets.required
        services = self.params.cloud_run.services
        f = self.scenario.cloud_run
        egress = f.vpc_egress or self.params.cloud_run.vpc_egress
        legacy = self.domains["legacy"].removeprefix("*.")
        subst = {"frontend": self.domains["frontend"], "api": self.domains["api"], "legacy": legacy}
        for i, svc in enumerate(services):
            if i == 0:
                refs = list(required)
            elif i == len(services) - 1 and len(services) > 2:
                refs = []  # the frontend reads no secrets
            else:
                refs = [s for s in required if re.search(r"jwt|oauth|database", s)]
            env: list[dict[str, Any]] = [
                {"name": "ENVIRONMENT", "value": "staging"},
                {"name": "FRONTEND_URL", "value": f"https://{self.domains['frontend']}"},
                {"name": "API_URL", "value": f"https://{self.domains['api']}"},
            ]
            for key, value in f.env.items():
                env = [e for e in env if e["name"] != key]
                env.append({"name": key, "value": value.format(**subst)})
            env += [{"name": re.sub(r"[^A-Z0-9]", "_", s.upper()),
                     "valueSource": {"secretKeyRef": {"secret": s, "version": "latest"}}} for s in refs]
            name = f"projects/{self.project}/locations/{self.region}/services/{svc}"
            probe: dict[str, Any] = {"timeoutSeconds": f.startup_probe.timeout_s,
                                     "periodSeconds": f.startup_probe.period_s,
                                     "failureThreshold": f.startup_probe.failure_threshold,
                                     "tcpSocket": {"port": 8080}}
            if f.startup_probe.initial_delay_s:
                probe["initialDelaySeconds"] = f.startup_probe.initial_delay_s
            resources: dict[str, Any] = {"cpuIdle": True, "limits": {"cpu": "1000m", "memory": "1Gi"}}
            if f.cpu_boost:
                resources["startupCpuBoost"] = True
            scaling: dict[str, Any] = {"maxInstanceCount": 20}
            if f.min_instances:
                scaling["minInstanceCount"] = f.min_instances
            when = self._rfc3339(6)
            template = {
                "containers": [{
                    "image": f"{self.region}-docker.pkg.dev/{self.project}/staging/{svc}:latest",
                    "ports": [{"containerPort": 8080, "name": "http1"}],
                    "env": env,
                    "resources": resources,
                    "startupProbe": probe,
                }],
                "vpcAccess": {"connector": self.connector_name, "egress": egress},
                "maxInstanceRequestConcurrency": 80,
                "scaling": scaling,
                "serviceAccount": f"{svc}@{self.project}.iam.gserviceaccount.com",
                "timeout": f"{f.timeout_s}s",
            }
            service: dict[str, Any] = {
                "name": name,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                "generation": "42",
                "createTime": when,
                "updateTime": when,
                "creator": ACTOR,
                "lastModifier": ACTOR,
                "ingress": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
                "launchStage": "GA",
                "template": template,
                "traffic": [{"percent": 100, "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"}],
                "observedGeneration": "42",
                "uri": f"https://{svc}-{self.project_number[:10]}.{self.region}.run.app",
                "urls": [f"https://{svc}-{self.project_number[:10]}.{self.region}.run.app"],
            }
            self._services[svc] = service
            self._revisions[svc] = {}
            revision = self._new_revision(svc, 42, ready=True, suffix="abc")
            self._route(svc, revision)

    # --- revisions -----------------------------------------------------------------------------

    def _new_revision(self, svc: str, generation: int, *, ready: bool | None, suffix: str | None = None) -> str:
        service = self._services[svc]
        rid = f"{svc}-{generation:05d}-{suffix or uuid.uuid4().hex[:3]}"
        name = f"{service['name'].split('/services/')[0]}/services/{svc}/revisions/{rid}"
        template = copy.deepcopy(service["template"])
        template.pop("revision", None)
        when = self._rfc3339(6)
        revision: dict[str, Any] = {
            "name": name,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            "generation": "1",
            "createTime": when,
            "updateTime": when,
            "launchStage": "GA",
            "service": service["name"],
            **{k: v for k, v in template.items() if k in ("containers", "vpcAccess", "maxInstanceRequestConcurrency",
                                                          "serviceAccount", "timeout", "scaling")},
            "observedGeneration": "1",
            "logUri": f"https://console.cloud.google.com/logs/viewer?project={self.project}",
            "etag": f'"{fingerprint(name)}"',
        }
        self._set_revision_ready(revision, ready)
        self._revisions[svc][rid] = revision
        service["latestCreatedRevision"] = name
        return rid

    def _set_revision_ready(self, revision: dict[str, Any], ready: bool | None, message: str = "") -> None:
        when = self._rfc3339(6)
        if ready is None:
            revision["reconciling"] = True
            revision["conditions"] = [{"type": "Ready", "state": "CONDITION_RECONCILING",
                                       "lastTransitionTime": when}]
            return
        revision.pop("reconciling", None)
        if ready:
            revision["conditions"] = [
                {"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": when},
                {"type": "ContainerHealthy", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": when},
                {"type": "ResourcesAvailable", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": when},
            ]
        else:
            revision["conditions"] = [
                {"type": "Ready", "state": "CONDITION_FAILED", "message": message,
                 "lastTransitionTime": when, "reason": "REVISION_FAILED"},
                {"type": "ContainerHealthy", "state": "CONDITION_FAILED", "message": message,
                 "lastTransitionTime": when, "reason": "REVISION_FAILED"},
            ]

    @staticmethod
    def revision_ready(revision: dict[str, Any]) -> bool:
        return any(c["type"] == "Ready" and c["state"] == "CONDITION_SUCCEEDED" for c in revision.get("conditions", []))

    def _route(self, svc: str, latest_ready: str | None) -> None:
        """Point the service's status at its revisions after a change (traffic, conditions)."""
        service = self._services[svc]
        prefix = f"{service['name']}/revisions/"
        if latest_ready is not None:
            service["latestReadyRevision"] = prefix + latest_ready
        ready_id = service.get("latestReadyRevision", "").rsplit("/", 1)[-1]
        statuses = []
        for t in service["traffic"]:
            if t.get("type") == "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST":
                statuses.append({"type": t["type"], "percent": t.get("percent", 0), "revision": ready_id})
            else:
                statuses.append({"type": t["type"], "percent": t.get("percent", 0), "revision": t.get("revision")})
        service["trafficStatuses"] = [{k: v for k, v in s.items() if v} for s in statuses]
        when = self._rfc3339(6)
        service.pop("reconciling", None)
        service["terminalCondition"] = {"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": when}
        service["conditions"] = [{"type": "RoutesReady", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": when},
                                 {"type": "ConfigurationsReady", "state": "CONDITION_SUCCEEDED",
                                  "lastTransitionTime": when}]
        service["observedGeneration"] = service["generation"]
        service["etag"] = f'"{fingerprint((service["name"], service["generation"], statuses))}"'

    def serving_revision(self, svc: str) -> dict[str, Any] | None:
        """The revision with most traffic now (what the data plane runs)."""
        service = self._services.get(svc)
        if service is None:
            return None
        statuses = sorted(service.get("trafficStatuses", []), key=lambda s: -s.get("percent", 0))
        rid = statuses[0].get("revision") if statuses else None
        return self._revisions[svc].get(rid or "")

    def cold_start_remaining_s(self) -> float:
        """Seconds until every serving revision has an instance (0 with min instances >= 1)."""
        now = self._clock()
        return max([0.0, *(until - now for until in self._cold_until.values())])

    def startup_time_s(self, revision: dict[str, Any]) -> float:
        """The revision's cold start (real-world seconds): a scenario knob, boosted or not."""
        resources = revision["containers"][0].get("resources", {})
        f = self.scenario.services
        return f.startup_s_boosted if resources.get("startupCpuBoost") else f.startup_s

    @staticmethod
    def probe_window_s(revision_or_template: dict[str, Any]) -> float:
        probe = revision_or_template["containers"][0].get("startupProbe")
        if probe is None:
            return float(PROBE_CAP_S)  # Cloud Run's default TCP startup probe: 240 s x 1
        return probe.get("initialDelaySeconds", 0) + probe.get("failureThreshold", 3) * probe.get("periodSeconds", 10)

    # --- reads ---------------------------------------------------------------------------------

    def list_services(self, project: str, location: str) -> list[dict[str, Any]]:
        with self._lock:
            self._check_project(project)
            self.tick()
            if location not in (self.region, "-"):
                return []
            return copy.deepcopy(list(self._services.values()))

    def get_service(self, project: str, location: str, service: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(project)
            self.tick()
            if location != self.region or service not in self._services:
                raise ApiFault(404, "NOT_FOUND",
                               f"Resource 'projects/{project}/locations/{location}/services/{service}' was not found")
            return copy.deepcopy(self._services[service])

    def list_revisions(self, project: str, location: str, service: str) -> list[dict[str, Any]]:
        with self._lock:
            self.get_service(project, location, service)
            return copy.deepcopy(sorted(self._revisions[service].values(), key=lambda r: r["name"], reverse=True))

    def get_revision(self, name: str) -> dict[str, Any]:
        with self._lock:
            project, location, service = ids(name.split("/revisions/")[0], 3)
            self.get_service(project, location, service)
            rev = self._revisions[service].get(name.rsplit("/", 1)[-1])
            if rev is None:
                raise ApiFault(404, "NOT_FOUND", f"Resource '{name}' was not found")
            return copy.deepcopy(rev)

    def _run_operation(self, name: str) -> dict[str, Any]:
        with self._lock:
            op = self.ops.get("run", name)
            if op is None:
                raise ApiFault(404, "NOT_FOUND", f"Resource '{name}' was not found")
            return op

    # --- services.patch ------------------------------------------------------------------------

    def patch_service(self, name: str, body: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        project, location, svc = ids(name, 3)
        with self._lock:
            current = self.get_service(project, location, svc)
            if self.ops.running("run") and any(p.resource["metadata"].get("name") == name
                                               for p in self.ops.running("run")):
                raise ApiFault(409, "ABORTED", f"Conflict for resource '{svc}': a previous operation is still "
                               "in progress.", "aborted")
            if body.get("etag") and body["etag"] != current.get("etag"):
                raise ApiFault(409, "ABORTED", f"Conflict for resource '{svc}': version '{body['etag']}' was "
                               "specified but current version is a different one.", "aborted")
            mask = [m.strip() for m in str(query.get("updateMask", "")).split(",") if m.strip()]
            new = copy.deepcopy(current)
            if mask:
                for path in mask:
                    _copy_path(body, new, path)
            else:
                for key in WRITABLE:
                    if key in body:
                        new[key] = copy.deepcopy(body[key])
                    elif key in ("template",):
                        raise bad_request("service.template: is required", field="service.template")
            self._validate_template(new["template"], "service.template")
            self._validate_traffic(svc, new.get("traffic", []))
            if query.get("validateOnly"):
                return self.ops.longrunning("run", "UpdateService", name.split("/services/")[0], name, SERVICE_TYPE,
                                            SERVICE_TYPE, lambda: copy.deepcopy(current),
                                            metadata=_meta(current))
            template_changed = _strip(new["template"]) != _strip(current["template"]) or query.get("forceNewRevision")
            live = self._services[svc]
            for key in WRITABLE:
                if key in new:
                    live[key] = new[key]
                else:
                    live.pop(key, None)
            generation = int(live["generation"]) + 1
            live["generation"] = str(generation)
            live["updateTime"] = self._rfc3339(6)
            live["lastModifier"] = ACTOR
            live["reconciling"] = True
            live["terminalCondition"] = {"type": "Ready", "state": "CONDITION_RECONCILING",
                                         "lastTransitionTime": self._rfc3339(6)}
            rid = self._new_revision(svc, generation, ready=None) if template_changed else None

            def apply() -> dict[str, Any]:
                ready_id = None
                if rid is not None:
                    revision = self._revisions[svc][rid]
                    problem = self._start_problem(revision)
                    if problem:
                        self._set_revision_ready(revision, False, problem)
                        self._route(svc, None)
                        live["terminalCondition"] = {
                            "type": "Ready", "state": "CONDITION_FAILED", "reason": "REVISION_FAILED",
                            "message": f"Revision '{rid}' is not ready and cannot serve traffic. {problem}",
                            "lastTransitionTime": self._rfc3339(6)}
                        raise ApiFault(400, "FAILED_PRECONDITION",
                                       f"Revision '{rid}' is not ready and cannot serve traffic. {problem}")
                    self._set_revision_ready(revision, True)
                    ready_id = rid
                    if not revision.get("scaling", {}).get("minInstanceCount"):
                        # no warm instance: the first request waits for a cold start
                        self._cold_until[svc] = self._clock() + self.scaled(self.startup_time_s(revision))
                    else:
                        self._cold_until.pop(svc, None)
                self._route(svc, ready_id)
                return copy.deepcopy(live)

            return self.ops.longrunning("run", "UpdateService", name.split("/services/")[0], name,
                                        SERVICE_TYPE, SERVICE_TYPE, apply, metadata=_meta(live))

    def _start_problem(self, revision: dict[str, Any]) -> str:
        """Why this revision cannot become Ready (empty: it can)."""
        vpc = revision.get("vpcAccess", {}).get("connector")
        if vpc and vpc not in self._connectors:
            return f"VPC connector {vpc} does not exist."
        startup, window = self.startup_time_s(revision), self.probe_window_s(revision)
        if window < startup:
            return ("The user-provided container failed the configured startup probe checks: it was not ready "
                    f"within the probe's {window:g} s window (startup takes {startup:g} s).")
        return ""

    @staticmethod
    def _validate_template(t: dict[str, Any], where: str) -> None:
        timeout = t.get("timeout")
        if timeout is not None and not 1 <= _seconds(timeout) <= 3600:
            raise bad_request(f"{where}.timeout: must be between 1s and 3600s (60 minutes), got {timeout}",
                              field=f"{where}.timeout")
        containers = t.get("containers") or []
        if not containers:
            raise bad_request(f"{where}.containers: at least one container is required", field=f"{where}.containers")
        for i, c in enumerate(containers):
            probe = c.get("startupProbe")
            at = f"{where}.containers[{i}].startupProbe"
            if probe:
                period, delay = probe.get("periodSeconds", 10), probe.get("initialDelaySeconds", 0)
                threshold, timeout_s = probe.get("failureThreshold", 3), probe.get("timeoutSeconds", 1)
                if not 1 <= period <= PROBE_CAP_S:
                    raise bad_request(f"{at}.periodSeconds: must be between 1 and 240 for a startup probe, "
                                      f"got {period}", field=f"{at}.periodSeconds")
                if not 0 <= delay <= PROBE_CAP_S:
                    raise bad_request(f"{at}.initialDelaySeconds: must be between 0 and 240 for a startup probe, "
                                      f"got {delay}", field=f"{at}.initialDelaySeconds")
                if threshold < 1 or threshold * period > PROBE_CAP_S:
                    raise bad_request(f"{at}: failureThreshold * periodSeconds must not exceed 240 seconds for a "
                                      f"startup probe, got {threshold} * {period} = {threshold * period}",
                                      field=f"{at}.failureThreshold")
                if timeout_s > period:
                    raise bad_request(f"{at}.timeoutSeconds: must be less than or equal to periodSeconds "
                                      f"({period}), got {timeout_s}", field=f"{at}.timeoutSeconds")
            for e in c.get("env", []):
                if "value" in e and "valueSource" in e:
                    raise bad_request(f"{where}.containers[{i}].env: {e.get('name')}: value and valueSource are "
                                      "mutually exclusive", field=f"{where}.containers[{i}].env")
        scaling = t.get("scaling", {})
        if scaling.get("minInstanceCount", 0) > scaling.get("maxInstanceCount", 100):
            raise bad_request(f"{where}.scaling: minInstanceCount must not exceed maxInstanceCount",
                              field=f"{where}.scaling.minInstanceCount")

    def _validate_traffic(self, svc: str, traffic: list[dict[str, Any]]) -> None:
        if traffic and sum(t.get("percent", 0) for t in traffic) != 100:
            raise bad_request("service.traffic: percentages must add up to 100", field="service.traffic")
        for t in traffic:
            rev = t.get("revision")
            if rev and rev not in self._revisions[svc]:
                raise bad_request(f"service.traffic: revision {rev} does not exist", field="service.traffic")
            if rev and not self.revision_ready(self._revisions[svc][rev]):
                raise bad_request(f"service.traffic: revision {rev} is not ready", field="service.traffic")


def _strip(template: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in template.items() if k != "revision"}


def _copy_path(src: dict[str, Any], dst: dict[str, Any], path: str) -> None:
    head, _, rest = path.partition(".")
    if not rest:
        if head in src:
            dst[head] = copy.deepcopy(src[head])
        else:
            dst.pop(head, None)
        return
    if head in src:
        _copy_path(src[head], dst.setdefault(head, {}), rest)


def _meta(service: dict[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in service.items() if k in ("name", "uid", "generation", "template")}
