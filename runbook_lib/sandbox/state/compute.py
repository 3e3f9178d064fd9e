"""Compute Engine v1: the external HTTPS load balancer in front of the services.

Two topologies (scenario ``load_balancer.topology``):

- ``serverless`` (the incident's staging): each backend service has ONE backend, a regional
  serverless NEG (``networkEndpointType: SERVERLESS``, ``cloudRun.service``); no health check and
  no ``timeoutSec`` (Google rejects both on such a backend service, with the texts below); the
  request and WebSocket lifetime is the Cloud Run revision's ``timeout``.
- ``instance-groups``: zonal instance-group backends with health checks and ``timeoutSec``.

Both have the URL map, the target HTTPS proxy and a global forwarding rule with its IP; DNS A
records (sandbox state, not an API) say where the domains point, which decides whether a
Google-managed certificate can provision: PROVISIONING until it is on the proxy and every domain
resolves to the forwarding rule's IP, then ACTIVE after ``certificates.provisioning_s`` (scaled);
a domain that does not resolve there is ``FAILED_NOT_VISIBLE``. ``setSslCertificates`` replaces the
whole list (1 to 15 certificates); its path has no ``global/`` (compute v1 discovery).
"""
from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

from runbook_lib.sandbox.state.common import (
    ACTOR,
    COMPUTE,
    ELSEWHERE_IP,
    LB_IP,
    ApiFault,
    Base,
    Call,
    bad_request,
    fingerprint,
    last,
    merge,
    not_found,
    num_id,
)

# Google's rejections for serverless NEG backend services, as the API words them (quoted in
# terraform-google-modules/terraform-google-lb-http#358 and #149, both "googleapi: Error 400 ..., invalid").
SERVERLESS_TIMEOUT = ("Invalid value for field 'resource.timeoutSec': '{value}'. "
                      "Timeout sec is not supported for a backend service with Serverless network endpoint groups.")
SERVERLESS_HEALTHCHECK = ("Invalid value for field 'resource.healthChecks': ''. "
                          "A backend service cannot have a healthcheck with Serverless network endpoint group backends.")
DEFAULT_TIMEOUT_S = 30  # compute v1 BackendService.timeoutSec: "The default is 30 seconds."
MAX_PROXY_CERTS = 15
GLOBAL = {  # collection -> (list kind, aggregated key)
    "healthChecks": "compute#healthCheckList",
    "backendServices": "compute#backendServiceList",
    "sslCertificates": "compute#sslCertificateList",
    "targetHttpsProxies": "compute#targetHttpsProxyList",
    "urlMaps": "compute#urlMapList",
    "forwardingRules": "compute#forwardingRuleList",
}
AGGREGATED_KIND = {
    "healthChecks": "compute#healthChecksAggregatedList",
    "backendServices": "compute#backendServiceAggregatedList",
    "sslCertificates": "compute#sslCertificateAggregatedList",
    "targetHttpsProxies": "compute#targetHttpsProxyAggregatedList",
    "urlMaps": "compute#urlMapsAggregatedList",
    "forwardingRules": "compute#forwardingRuleAggregatedList",
    "networkEndpointGroups": "compute#networkEndpointGroupAggregatedList",
}


def _global(resource: str, coll: str) -> dict[str, Any]:
    return {
        f"compute.{resource}.list": lambda s, c: s._compute_listing(c, coll),
        f"compute.{resource}.get": lambda s, c: s.compute_get(c.params["project"], coll, c.params[_single(resource)]),
        f"compute.{resource}.aggregatedList": lambda s, c: s._compute_aggregated(c, coll),
    }


def _single(resource: str) -> str:
    return {"globalForwardingRules": "forwardingRule", "healthChecks": "healthCheck",
            "backendServices": "backendService", "sslCertificates": "sslCertificate",
            "targetHttpsProxies": "targetHttpsProxy", "urlMaps": "urlMap"}[resource]


class Compute(Base):
    HANDLERS = {
        **_global("healthChecks", "healthChecks"),
        **_global("backendServices", "backendServices"),
        **_global("sslCertificates", "sslCertificates"),
        **_global("targetHttpsProxies", "targetHttpsProxies"),
        **_global("urlMaps", "urlMaps"),
        "compute.globalForwardingRules.list": lambda s, c: s._compute_listing(c, "forwardingRules"),
        "compute.globalForwardingRules.get": lambda s, c: s.compute_get(
            c.params["project"], "forwardingRules", c.params["forwardingRule"]),
        "compute.forwardingRules.aggregatedList": lambda s, c: s._compute_aggregated(c, "forwardingRules"),
        "compute.networkEndpointGroups.aggregatedList": lambda s, c: s._compute_aggregated(c, "networkEndpointGroups"),
        "compute.regionNetworkEndpointGroups.list": lambda s, c: s._neg_listing(c),
        "compute.regionNetworkEndpointGroups.get": lambda s, c: s.get_neg(
            c.params["project"], c.params["region"], c.params["networkEndpointGroup"]),
        "compute.backendServices.patch": lambda s, c: s.compute_patch(
            c.params["project"], "backendServices", c.params["backendService"], c.body),
        "compute.healthChecks.patch": lambda s, c: s.compute_patch(
            c.params["project"], "healthChecks", c.params["healthCheck"], c.body),
        "compute.sslCertificates.insert": lambda s, c: s.insert_ssl_certificate(c.params["project"], c.body),
        "compute.sslCertificates.delete": lambda s, c: s.delete_ssl_certificate(
            c.params["project"], c.params["sslCertificate"]),
        "compute.targetHttpsProxies.setSslCertificates": lambda s, c: s.set_ssl_certificates(
            c.params["project"], c.params["targetHttpsProxy"], c.body),
        "compute.backendServices.getHealth": lambda s, c: s.backend_health(
            c.params["project"], c.params["backendService"], c.body),
        "compute.globalOperations.get": lambda s, c: s.get_compute_operation(c.params["project"], c.params["operation"]),
        "compute.globalOperations.wait": lambda s, c: s.get_compute_operation(c.params["project"], c.params["operation"]),
        "compute.regionOperations.get": lambda s, c: s.get_compute_operation(
            c.params["project"], c.params["operation"], c.params["region"]),
        "compute.regionOperations.wait": lambda s, c: s.get_compute_operation(
            c.params["project"], c.params["operation"], c.params["region"]),
        "compute.globalOperations.list": lambda s, c: s._list_kind(
            c, [o for o in s.ops.listing("compute") if "region" not in o], "compute#operationList",
            f"projects/{c.params['project']}/global/operations"),
    }

    _compute: dict[str, dict[str, dict[str, Any]]]
    _negs: dict[str, dict[str, Any]]
    dns: dict[str, str]

    # --- build ---------------------------------------------------------------------------------

    @property
    def serverless(self) -> bool:
        return self.scenario.load_balancer.topology == "serverless"

    def _run_service_for(self, i: int) -> str:
        services = self.params.cloud_run.services
        return services[min(i, len(services) - 1)]

    def _build_load_balancer(self) -> None:
        self._compute = {k: {} for k in GLOBAL}
        self._negs = {}
        self._cert_timers: dict[str, float] = {}
        lb, f = self.params.load_balancer, self.scenario.load_balancer
        hc = f.health_check
        hc_names = list(lb.health_checks)
        for name, path in lb.health_checks.items():
            self._compute["healthChecks"][name] = {
                "kind": "compute#healthCheck",
                "id": num_id("hc", self.project, name),
                "creationTimestamp": self._compute_time(),
                "name": name,
                "checkIntervalSec": hc.interval_s if hc.interval_s is not None else lb.health_check.interval_s,
                "timeoutSec": hc.timeout_s if hc.timeout_s is not None else lb.health_check.timeout_s,
                "unhealthyThreshold": (hc.unhealthy_threshold if hc.unhealthy_threshold is not None
                                       else lb.health_check.unhealthy_threshold),
                "healthyThreshold": (hc.healthy_threshold if hc.healthy_threshold is not None
                                     else lb.health_check.healthy_threshold),
                "type": "HTTP",
                "httpHealthCheck": {"port": 8080, "portSpecification": "USE_FIXED_PORT",
                                    "requestPath": hc.request_path or path, "proxyHeader": "NONE"},
                "selfLink": self._link("healthChecks", name),
                "logConfig": {"enable": True},
            }
        timeout = f.backend_timeout_s if f.backend_timeout_s is not None else lb.backend_timeout_s
        region_link = f"{COMPUTE}/projects/{self.project}/regions/{self.region}"
        for i, name in enumerate(lb.backend_services):
            bs: dict[str, Any] = {
                "kind": "compute#backendService",
                "id": num_id("bs", self.project, name),
                "creationTimestamp": self._compute_time(),
                "name": name,
                "description": "",
                "selfLink": self._link("backendServices", name),
                "enableCDN": False,
                "sessionAffinity": "NONE",
                "affinityCookieTtlSec": 0,
                "loadBalancingScheme": "EXTERNAL_MANAGED",
                "connectionDraining": {"drainingTimeoutSec": 0},
            }
            if self.serverless:
                svc = self._run_service_for(i)
                neg = f"{svc}-neg"
                self._negs[neg] = {
                    "kind": "compute#networkEndpointGroup",
                    "id": num_id("neg", self.project, neg),
                    "creationTimestamp": self._compute_time(),
                    "selfLink": f"{region_link}/networkEndpointGroups/{neg}",
                    "name": neg,
                    "networkEndpointType": "SERVERLESS",
                    "region": region_link,
                    "cloudRun": {"service": svc},
                    "size": 0,
                }
                # No health check; timeoutSec is the API's default (30), which GET shows but which
                # cannot be changed here (the request lifetime is the Cloud Run revision's timeout).
                bs.update(protocol="HTTPS", port=80, timeoutSec=DEFAULT_TIMEOUT_S, backends=[{
                    "group": f"{region_link}/networkEndpointGroups/{neg}",
                    "balancingMode": "UTILIZATION", "capacityScaler": 1}])
            else:
                group = f"{COMPUTE}/projects/{self.project}/zones/{self.region}-b/instanceGroups/{name}-ig"
                bs.update(protocol="HTTP", port=80, portName="http", timeoutSec=timeout,
                          healthChecks=[self._link("healthChecks", hc_names[i % len(hc_names)])],
                          backends=[{"group": group, "balancingMode": "UTILIZATION", "capacityScaler": 1}])
            bs["fingerprint"] = fingerprint(bs)
            self._compute["backendServices"][name] = bs
        self._build_url_map()
        self._build_certificates()
        self.dns = {}
        visible = self.scenario.certificates.dns_visible
        for role in ("frontend", "api"):
            self.dns[self.domains[role]] = LB_IP if visible else ELSEWHERE_IP

    def _build_url_map(self) -> None:
        lb = self.params.load_balancer
        links = [self._link("backendServices", b) for b in lb.backend_services]
        name = getattr(lb, "url_map", "staging-url-map")
        um: dict[str, Any] = {
            "kind": "compute#urlMap",
            "id": num_id("um", self.project, name),
            "creationTimestamp": self._compute_time(),
            "name": name,
            "selfLink": self._link("urlMaps", name),
            "defaultService": links[0],
            "hostRules": [{"hosts": [self.domains["api"]], "pathMatcher": "api"},
                          {"hosts": [self.domains["frontend"]], "pathMatcher": "frontend"}],
            "pathMatchers": [
                {"name": "api", "defaultService": links[0],
                 "pathRules": [{"paths": ["/auth", "/auth/*"], "service": links[-1]}]},
                {"name": "frontend", "defaultService": links[0]},
            ],
        }
        um["fingerprint"] = fingerprint(um)
        self._compute["urlMaps"][name] = um
        rule = getattr(lb, "forwarding_rule", "staging-https-rule")
        self._compute["forwardingRules"][rule] = {
            "kind": "compute#forwardingRule",
            "id": num_id("fr", self.project, rule),
            "creationTimestamp": self._compute_time(),
            "name": rule,
            "IPAddress": LB_IP,
            "IPProtocol": "TCP",
            "portRange": "443-443",
            "target": self._link("targetHttpsProxies", lb.https_proxy),
            "selfLink": self._link("forwardingRules", rule),
            "loadBalancingScheme": "EXTERNAL_MANAGED",
            "networkTier": "PREMIUM",
            "labelFingerprint": "42WmSpB8rSM=",
            "fingerprint": fingerprint(("fr", rule)),
            "ipVersion": "IPV4",
        }

    def _build_certificates(self) -> None:
        lb, certs = self.params.load_balancer, self.scenario.certificates
        for m in certs.managed:
            name = m.name or lb.certificate_name
            domains = [self.domains[r] for r in m.domains]
            domain_status = m.domain_status or ("ACTIVE" if m.status == "ACTIVE" else "PROVISIONING")
            self._compute["sslCertificates"][name] = self._managed_cert_json(
                name, domains, m.status, {d: domain_status for d in domains})
        for s in certs.self_managed:
            domains = [self.domains[r] for r in s.domains]
            self._compute["sslCertificates"][s.name] = self._self_managed_cert_json(s.name, domains, s.expired)
        attached = certs.attached if certs.attached is not None else list(self._compute["sslCertificates"])
        name = lb.https_proxy
        proxy = {
            "kind": "compute#targetHttpsProxy",
            "id": num_id("thp", self.project, name),
            "creationTimestamp": self._compute_time(),
            "name": name,
            "selfLink": self._link("targetHttpsProxies", name),
            "urlMap": self._link("urlMaps", getattr(lb, "url_map", "staging-url-map")),
            "sslCertificates": [self._link("sslCertificates", n) for n in attached],
            "quicOverride": "NONE",
            "tlsEarlyData": "DISABLED",
        }
        proxy["fingerprint"] = fingerprint(proxy)
        self._compute["targetHttpsProxies"][name] = proxy
        for n in attached:
            cert = self._compute["sslCertificates"][n]
            if cert["type"] == "MANAGED" and cert["managed"]["status"] == "PROVISIONING":
                self._cert_timers[n] = self._clock()

    def _managed_cert_json(self, name: str, domains: list[str], status: str,
                           domain_status: dict[str, str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "compute#sslCertificate",
            "id": num_id("cert", self.project, name, str(self._clock())),
            "creationTimestamp": self._compute_time(),
            "name": name,
            "selfLink": self._link("sslCertificates", name),
            "managed": {"domains": domains, "status": status, "domainStatus": domain_status},
            "type": "MANAGED",
        }
        if status == "ACTIVE":
            self._activate(body)
        return body

    def _activate(self, cert: dict[str, Any]) -> None:
        cert["managed"]["status"] = "ACTIVE"
        cert["managed"]["domainStatus"] = {d: "ACTIVE" for d in cert["managed"]["domains"]}
        cert["subjectAlternativeNames"] = list(cert["managed"]["domains"])
        cert["expireTime"] = (self._now() + dt.timedelta(days=90)).isoformat(timespec="milliseconds")

    def _self_managed_cert_json(self, name: str, domains: list[str], expired: bool) -> dict[str, Any]:
        expires = self._now() + (dt.timedelta(days=-1) if expired else dt.timedelta(days=365))
        return {
            "kind": "compute#sslCertificate",
            "id": num_id("cert", self.project, name),
            "creationTimestamp": (self._now() - dt.timedelta(days=400)).isoformat(timespec="milliseconds"),
            "name": name,
            "selfLink": self._link("sslCertificates", name),
            "subjectAlternativeNames": domains,
            "expireTime": expires.isoformat(timespec="milliseconds"),
            "type": "SELF_MANAGED",
        }

    # --- certificates over time ------------------------------------------------------------------

    def _attached_names(self) -> set[str]:
        return {last(link) for p in self._compute["targetHttpsProxies"].values() for link in p["sslCertificates"]}

    def _tick_certificates(self) -> None:
        """A managed cert provisions only while attached and every domain's A record is the LB IP."""
        attached = self._attached_names()
        lb_ips = {r["IPAddress"] for r in self._compute["forwardingRules"].values()}
        for name, cert in self._compute["sslCertificates"].items():
            if cert["type"] != "MANAGED" or cert["managed"]["status"] != "PROVISIONING":
                continue
            if name not in attached:
                self._cert_timers.pop(name, None)
                cert["managed"]["domainStatus"] = {d: "PROVISIONING" for d in cert["managed"]["domains"]}
                continue
            started = self._cert_timers.setdefault(name, self._clock())
            if self._clock() - started < self.scaled(self.scenario.certificates.provisioning_s):
                continue
            visible = {d: self.dns.get(d) in lb_ips for d in cert["managed"]["domains"]}
            if all(visible.values()):
                self._activate(cert)
                self._cert_timers.pop(name, None)
            else:
                cert["managed"]["domainStatus"] = {d: "ACTIVE" if ok else "FAILED_NOT_VISIBLE"
                                                   for d, ok in visible.items()}

    def set_dns(self, domain: str, ip: str) -> None:
        """Sandbox-only: point a domain's A record somewhere (what a person does in Cloud DNS)."""
        with self._lock:
            self.dns[domain] = ip
            for name in list(self._cert_timers):
                self._cert_timers[name] = self._clock()

    # --- reads ---------------------------------------------------------------------------------

    def _compute_listing(self, c: Call, coll: str) -> dict[str, Any]:
        project = c.params["project"]
        return self._list_kind(c, self.compute_list(project, coll), GLOBAL[coll], f"projects/{project}/global/{coll}")

    def _list_kind(self, c: Call, items: list[dict[str, Any]], kind: str, path: str) -> dict[str, Any]:
        page = self._page_of(c, items, "items", size="maxResults", limit=500)
        return {"kind": kind, "id": f"{path}/", **page, "selfLink": f"{COMPUTE}/{path}/"}

    def _neg_listing(self, c: Call) -> dict[str, Any]:
        project, region = c.params["project"], c.params["region"]
        with self._lock:
            self._check_project(project)
            items = [n for n in self._negs.values() if region == self.region]
        return self._list_kind(c, copy.deepcopy(items), "compute#networkEndpointGroupList",
                               f"projects/{project}/regions/{region}/networkEndpointGroups")

    def get_neg(self, project: str, region: str, name: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(project)
            if region != self.region or name not in self._negs:
                raise not_found(f"projects/{project}/regions/{region}/networkEndpointGroups/{name}")
            return copy.deepcopy(self._negs[name])

    def _compute_aggregated(self, c: Call, coll: str) -> dict[str, Any]:
        project = c.params["project"]
        with self._lock:
            self._check_project(project)
            self.tick()
            items: dict[str, Any] = {}
            if coll == "networkEndpointGroups":
                if self._negs:
                    items[f"regions/{self.region}"] = {"networkEndpointGroups": copy.deepcopy(list(self._negs.values()))}
            elif self._compute[coll]:
                items["global"] = {coll: copy.deepcopy(list(self._compute[coll].values()))}
        path = f"projects/{project}/aggregated/{coll}"
        return {"kind": AGGREGATED_KIND[coll], "id": path, "items": items, "selfLink": f"{COMPUTE}/{path}"}

    def compute_list(self, project: str, collection: str) -> list[dict[str, Any]]:
        with self._lock:
            self._check_project(project)
            self.tick()
            return copy.deepcopy(list(self._compute[collection].values()))

    def compute_get(self, project: str, collection: str, name: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(project)
            self.tick()
            item = self._compute[collection].get(name)
            if item is None:
                raise not_found(f"projects/{project}/global/{collection}/{name}")
            return copy.deepcopy(item)

    # --- mutations -----------------------------------------------------------------------------

    def _operation(self, kind: str, target: dict[str, Any], apply: Any) -> dict[str, Any]:
        return self.ops.compute(kind, target["selfLink"], target["id"],
                                f"{COMPUTE}/projects/{self.project}/global/operations", ACTOR, apply)

    def compute_patch(self, project: str, collection: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            current = self.compute_get(project, collection, name)
            if "fingerprint" in body and body["fingerprint"] != current.get("fingerprint", body["fingerprint"]):
                raise ApiFault(412, "FAILED_PRECONDITION",
                               "Supplied fingerprint does not match current resource fingerprint.", "conditionNotMet")
            readonly = {"kind", "id", "creationTimestamp", "selfLink", "name", "fingerprint"}
            changes = {k: v for k, v in body.items() if k not in readonly}
            merged = merge(copy.deepcopy(current), changes)
            if collection == "healthChecks":
                self._validate_health_check(merged)
            else:
                self._validate_backend(merged, current)
            merged["fingerprint"] = fingerprint({k: v for k, v in merged.items() if k != "fingerprint"})

            def apply() -> None:
                self._compute[collection][name] = merged

            return self._operation("patch", current, apply)

    @staticmethod
    def _validate_health_check(hc: dict[str, Any]) -> None:
        for key, lo, hi in (("checkIntervalSec", 1, 300), ("timeoutSec", 1, 300),
                            ("unhealthyThreshold", 1, 10), ("healthyThreshold", 1, 10)):
            v = hc.get(key)
            if not isinstance(v, int) or not lo <= v <= hi:
                raise bad_request(f"Invalid value for field 'resource.{key}': '{v}'. "
                                  f"Must be between {lo} and {hi}.", "invalid", field=f"resource.{key}")
        if hc["timeoutSec"] > hc["checkIntervalSec"]:
            raise bad_request(f"Invalid value for field 'resource.timeoutSec': '{hc['timeoutSec']}'. "
                              "TimeoutSec should be less than checkIntervalSec.", "invalid", field="resource.timeoutSec")
        path = (hc.get("httpHealthCheck") or hc.get("httpsHealthCheck") or {}).get("requestPath", "/")
        if not path.startswith("/"):
            raise bad_request(f"Invalid value for field 'resource.httpHealthCheck.requestPath': '{path}'.",
                              field="resource.httpHealthCheck.requestPath")

    def _is_serverless(self, bs: dict[str, Any]) -> bool:
        return any("/networkEndpointGroups/" in b.get("group", "") and
                   self._negs.get(last(b["group"]), {}).get("networkEndpointType") == "SERVERLESS"
                   for b in bs.get("backends", []))

    def _validate_backend(self, bs: dict[str, Any], current: dict[str, Any] | None = None) -> None:
        if self._is_serverless(bs):
            if bs.get("timeoutSec", DEFAULT_TIMEOUT_S) != (current or {}).get("timeoutSec", DEFAULT_TIMEOUT_S):
                raise bad_request(SERVERLESS_TIMEOUT.format(value=bs["timeoutSec"]), field="resource.timeoutSec")
            if bs.get("healthChecks"):
                raise bad_request(SERVERLESS_HEALTHCHECK, field="resource.healthChecks")
            return
        t = bs.get("timeoutSec", 30)
        if not 1 <= t <= 86400:
            raise bad_request(f"Invalid value for field 'resource.timeoutSec': '{t}'. Must be between 1 and 86400.",
                              field="resource.timeoutSec")
        for i, link in enumerate(bs.get("healthChecks") or []):
            if last(link) not in self._compute["healthChecks"]:
                raise bad_request(f"Invalid value for field 'resource.healthChecks[{i}]': '{link}'. "
                                  "The URL is malformed or the resource does not exist.",
                                  field=f"resource.healthChecks[{i}]")

    def insert_ssl_certificate(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not re.match(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", name):
            raise bad_request(f"Invalid value for field 'resource.name': '{name}'. Must be a match of regex "
                              "'(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'", field="resource.name")
        if body.get("type", "MANAGED") != "MANAGED" or "certificate" in body:
            raise bad_request("The sandbox accepts Google-managed certificates only (type MANAGED).",
                              field="resource.type")
        domains = (body.get("managed") or {}).get("domains")
        if not domains:
            raise bad_request("Invalid value for field 'resource.managed.domains': at least one domain is required.",
                              field="resource.managed.domains")
        for d in domains:
            if d.startswith("*"):
                raise bad_request(f"Invalid value for field 'resource.managed.domains': '{d}'. "
                                  "Wildcard domains are not supported for Google-managed certificates.",
                                  field="resource.managed.domains")
        with self._lock:
            self._check_project(project)
            if name in self._compute["sslCertificates"]:
                raise ApiFault(409, "ALREADY_EXISTS",
                               f"The resource 'projects/{project}/global/sslCertificates/{name}' already exists",
                               "alreadyExists")
            cert = self._managed_cert_json(name, list(domains), "PROVISIONING", {d: "PROVISIONING" for d in domains})

            def apply() -> None:
                self._compute["sslCertificates"][name] = cert

            return self._operation("insert", cert, apply)

    def delete_ssl_certificate(self, project: str, name: str) -> dict[str, Any]:
        with self._lock:
            cert = self.compute_get(project, "sslCertificates", name)
            for proxy in self._compute["targetHttpsProxies"].values():
                if cert["selfLink"] in proxy["sslCertificates"]:
                    raise ApiFault(400, "FAILED_PRECONDITION",
                                   f"The ssl_certificate resource '{cert['selfLink']}' is already being used by "
                                   f"'{proxy['selfLink']}'", "resourceInUseByAnotherResource")

            def apply() -> None:
                self._compute["sslCertificates"].pop(name, None)

            return self._operation("delete", cert, apply)

    def set_ssl_certificates(self, project: str, proxy_name: str, body: dict[str, Any]) -> dict[str, Any]:
        links = body.get("sslCertificates") or []
        if not links:
            raise bad_request("Invalid value for field 'sslCertificates': at least one certificate is required.",
                              field="sslCertificates")
        if len(links) > MAX_PROXY_CERTS:
            raise bad_request(f"Invalid value for field 'sslCertificates': the target HTTPS proxy can have at most "
                              f"{MAX_PROXY_CERTS} SSL certificates, got {len(links)}.", field="sslCertificates")
        with self._lock:
            self._check_project(project)
            proxy = self._compute["targetHttpsProxies"].get(proxy_name)
            if proxy is None:
                raise not_found(f"projects/{project}/global/targetHttpsProxies/{proxy_name}")
            resolved = []
            for i, link in enumerate(links):
                cert_name = last(link)
                if cert_name not in self._compute["sslCertificates"]:
                    raise bad_request(f"Invalid value for field 'sslCertificates[{i}]': '{link}'. "
                                      "The URL is malformed or the resource does not exist.",
                                      field=f"sslCertificates[{i}]")
                resolved.append(self._link("sslCertificates", cert_name))

            def apply() -> None:
                proxy["sslCertificates"] = resolved  # the whole list is replaced
                proxy["fingerprint"] = fingerprint({k: v for k, v in proxy.items() if k != "fingerprint"})

            return self._operation("setSslCertificates", proxy, apply)

    def backend_health(self, project: str, backend: str, body: dict[str, Any]) -> dict[str, Any]:
        group = body.get("group")
        with self._lock:
            bs = self.compute_get(project, "backendServices", backend)
            groups = [b["group"] for b in bs.get("backends", [])]
            if group not in groups:
                raise bad_request(f"Invalid value for field 'resourceGroupReference.group': '{group}'. "
                                  "Group is not a backend of this backend service.",
                                  field="resourceGroupReference.group")
            if self._is_serverless(bs):
                # Serverless NEGs have no health status: Google answers with the kind only.
                return {"kind": "compute#backendServiceGroupHealth"}
            state = "HEALTHY" if not self._health_problems(bs) else "UNHEALTHY"
            zone_base = group.split("/instanceGroups/")[0]
            return {
                "kind": "compute#backendServiceGroupHealth",
                "healthStatus": [
                    {"ipAddress": f"10.128.0.{10 + i}", "port": 8080,
                     "instance": f"{zone_base}/instances/{backend}-{i}", "healthState": state}
                    for i in range(2)
                ],
            }

    def _health_problems(self, bs: dict[str, Any]) -> list[str]:
        """Why the backends of ``bs`` fail their health check now (empty: healthy)."""
        if self._is_serverless(bs):
            return []
        problems = []
        expected = self.params.load_balancer.health_checks
        startup = self.scenario.services.startup_s
        for link in bs.get("healthChecks") or []:
            name = last(link)
            hc = self._compute["healthChecks"].get(name)
            if hc is None:
                problems.append(f"health check {name} does not exist")
                continue
            tolerance = hc["checkIntervalSec"] * hc["unhealthyThreshold"]
            if tolerance < startup:
                problems.append(f"{name} gives up after {tolerance} s, startup takes {startup:g} s")
            path = (hc.get("httpHealthCheck") or hc.get("httpsHealthCheck") or {}).get("requestPath")
            if name in expected and path != expected[name]:
                problems.append(f"{name} requests {path}, the service answers on {expected[name]}")
        if not bs.get("healthChecks"):
            problems.append("no health check attached")
        if self.startup_remaining_s() > 0:
            problems.append("services are still starting")
        return problems

    def get_compute_operation(self, project: str, name: str, region: str | None = None) -> dict[str, Any]:
        with self._lock:
            self._check_project(project)
            op = self.ops.get("compute", name)
            if op is None or (region is not None) != ("region" in op):
                scope = f"regions/{region}" if region else "global"
                raise not_found(f"projects/{project}/{scope}/operations/{name}")
            return op

    def startup_remaining_s(self) -> float:  # implemented by the data-plane mixin
        raise NotImplementedError
