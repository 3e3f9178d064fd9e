"""Sandbox scenarios: which faults the local staging environment starts with.

A scenario describes FAULTS only. Every name (project, connector, instance, domains, secrets…)
comes from the parameters; a scenario refers to them by role: certificate domains are
``frontend``, ``api``, ``wildcard`` or ``legacy`` (the first of ``cloud_run.deprecated_domain_patterns``,
else ``*.<frontend>``), and a missing secret is either a name from ``secrets.required`` or a count
(taken from the end of that list). Fields left out mean "as the parameters say": a healthy value.

Times are real-world seconds; the sandbox applies ``target.time_scale`` to them.

``load_scenario("issue-1278")`` reads ``scenarios/issue-1278.yaml`` from this package;
``load_scenario("path/to/file.yaml")`` reads that file. Any problem is one ``ScenarioError`` line:
``<file>: <key.path>: <what was expected>``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runbook_lib.errors import ScenarioError
from runbook_lib.util.validation import explain

SCENARIO_DIR = Path(__file__).parent / "scenarios"

ConnectorState = Literal["READY", "CREATING", "DELETING", "ERROR", "UPDATING"]
# sqladmin v1 DatabaseInstance.state: there is no STOPPED (a stopped instance is RUNNABLE with
# settings.activationPolicy NEVER).
SqlState = Literal["RUNNABLE", "SUSPENDED", "PENDING_DELETE", "PENDING_CREATE", "MAINTENANCE", "FAILED", "REPAIRING"]
ManagedStatus = Literal["ACTIVE", "PROVISIONING", "PROVISIONING_FAILED", "PROVISIONING_FAILED_PERMANENTLY",
                        "RENEWAL_FAILED"]
DomainStatus = Literal["ACTIVE", "PROVISIONING", "FAILED_NOT_VISIBLE", "FAILED_CAA_CHECKING",
                       "FAILED_CAA_FORBIDDEN", "FAILED_RATE_LIMITED"]
DOMAIN_ROLES = ("frontend", "api", "wildcard", "legacy")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConnectorFaults(Strict):
    state: ConnectorState = "READY"
    # vpcaccess: minInstances >= 2, maxInstances <= 10 and > min (a scenario cannot hold what GCP cannot)
    min_instances: int | None = Field(default=None, ge=2, le=9, description="None: parameters")
    max_instances: int | None = Field(default=None, ge=3, le=10, description="None: parameters")
    network: str | None = Field(default=None, description="None: the parameters' network (wrong-network fault)")
    ip_cidr_range: str | None = None


class CloudSQLFaults(Strict):
    state: SqlState = "RUNNABLE"
    activation_policy: Literal["ALWAYS", "NEVER", "ON_DEMAND"] = "ALWAYS"
    require_ssl: bool = True
    private_network: bool = Field(default=True, description="false: no PRIVATE address (not on the VPC)")
    flags: dict[str, str] | None = Field(default=None, description="None: cloudsql.required_flags")


class ManagedCert(Strict):
    name: str | None = Field(default=None, description="None: load_balancer.certificate_name")
    domains: list[str] = Field(default_factory=lambda: ["frontend", "api"], min_length=1)
    status: ManagedStatus = "ACTIVE"
    domain_status: DomainStatus | None = Field(default=None, description="None: follows status")

    @field_validator("domains")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        return _check_roles(v)


class SelfManagedCert(Strict):
    name: str
    domains: list[str] = Field(min_length=1)
    expired: bool = False

    @field_validator("domains")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        return _check_roles(v)


def _check_roles(v: list[str]) -> list[str]:
    bad = [d for d in v if d not in DOMAIN_ROLES]
    if bad:
        raise ValueError(f"expected domain roles from {', '.join(DOMAIN_ROLES)}, got {', '.join(bad)}")
    return v


class CertificateFaults(Strict):
    managed: list[ManagedCert] = Field(default_factory=lambda: [ManagedCert()])
    self_managed: list[SelfManagedCert] = Field(default_factory=list)
    attached: list[str] | None = Field(default=None, description="names on the target proxy; None: all")
    fallback: Literal["mismatch", "expired"] = Field(
        default="mismatch", description="what a domain no attached certificate covers gets"
    )
    dns_visible: bool = Field(default=True, description="false: inserted managed certs never turn ACTIVE")
    provisioning_s: float = Field(default=60.0, ge=0, description="real-world time to turn ACTIVE")


class HealthCheckFaults(Strict):
    interval_s: int | None = Field(default=None, ge=1, le=300)
    timeout_s: int | None = Field(default=None, ge=1, le=300)
    unhealthy_threshold: int | None = Field(default=None, ge=1, le=10)
    healthy_threshold: int | None = Field(default=None, ge=1, le=10)
    request_path: str | None = Field(default=None, description="None: the path from the parameters")


class LoadBalancerFaults(Strict):
    topology: Literal["serverless", "instance-groups"] = Field(
        default="serverless",
        description="serverless: Cloud Run behind regional serverless NEGs (no health check, no backend "
                    "timeout); instance-groups: the old instance-group backends with health checks")
    backend_timeout_s: int | None = Field(default=None, ge=1, le=86400)
    health_check: HealthCheckFaults = Field(default_factory=HealthCheckFaults)


class ServiceFaults(Strict):
    startup_s: float = Field(default=600.0, ge=0,
                             description="real-world cold start with startup CPU boost off (a scenario knob)")
    startup_s_boosted: float = Field(default=120.0, ge=0,
                                     description="real-world cold start with startup CPU boost on")
    warmup_s: float = Field(default=0.0, ge=0, description="real seconds of 503 after the sandbox starts")


class SecretFaults(Strict):
    missing: list[str] | int = Field(default_factory=list, description="names, or a count from the end")
    disabled: list[str] | int = Field(default_factory=list, description="only a DISABLED version")

    @field_validator("missing", "disabled", mode="before")
    @classmethod
    def _names_or_count(cls, v: Any) -> Any:
        ok = (isinstance(v, int) and not isinstance(v, bool) and v >= 0) or (
            isinstance(v, list) and all(isinstance(x, str) for x in v))
        if not ok:
            raise ValueError(f"expected a list of secret names or a count >= 0, got {v!r}")
        return v


class StartupProbe(Strict):
    """The revision's startup probe; the defaults are Cloud Run's default TCP startup probe."""

    initial_delay_s: int = Field(default=0, ge=0, le=240)
    period_s: int = Field(default=240, ge=1, le=240)
    failure_threshold: int = Field(default=1, ge=1)
    timeout_s: int = Field(default=240, ge=1, le=240)


class OperationFailure(Strict):
    """Make matching operations fail (after their duration) with this Google error."""

    api: Literal["compute", "sqladmin", "vpcaccess", "run", "networkmanagement", "secretmanager"] | None = None
    kind: str | None = Field(default=None, description="compute/sqladmin operationType (patch, UPDATE...) or "
                                                        "the LRO method (UpdateConnector, UpdateService...)")
    count: int = Field(default=1, ge=1)
    status: Literal["INVALID_ARGUMENT", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED", "INTERNAL",
                    "PERMISSION_DENIED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED"] = "RESOURCE_EXHAUSTED"
    reason: str = ""
    message: str = "Operation failed"


class OperationFaults(Strict):
    duration_s: float = Field(default=20.0, ge=0, description="real-world seconds every operation runs")
    fail: list[OperationFailure] = Field(default_factory=list)


class CloudRunFaults(Strict):
    env: dict[str, str] = Field(
        default_factory=dict,
        description="extra env on every service; {frontend}, {api} and {legacy} are substituted",
    )
    vpc_egress: Literal["ALL_TRAFFIC", "PRIVATE_RANGES_ONLY"] | None = None
    timeout_s: int = Field(default=3600, ge=1, le=3600, description="revision request timeout")
    min_instances: int = Field(default=1, ge=0, le=1000)
    cpu_boost: bool = True
    startup_probe: StartupProbe = Field(default_factory=lambda: StartupProbe())

    @field_validator("env")
    @classmethod
    def _placeholders(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            unknown = set(re.findall(r"\{(\w*)\}", value)) - {"frontend", "api", "legacy"}
            if unknown:
                raise ValueError(f"expected placeholders {{frontend}}, {{api}} or {{legacy}} in {key}, "
                                 f"got {{{sorted(unknown)[0]}}}")
        return v


class Scenario(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    connector: ConnectorFaults = Field(default_factory=ConnectorFaults)
    demand_instances: int = Field(default=3, ge=1, le=100, description="connector instances the traffic needs")
    saturated_delay_s: float = Field(
        default=20.0, ge=0, description="real seconds added each way when max_instances < demand"
    )
    cloudsql: CloudSQLFaults = Field(default_factory=CloudSQLFaults)
    certificates: CertificateFaults = Field(default_factory=CertificateFaults)
    load_balancer: LoadBalancerFaults = Field(default_factory=LoadBalancerFaults)
    services: ServiceFaults = Field(default_factory=ServiceFaults)
    secrets: SecretFaults = Field(default_factory=SecretFaults)
    cloud_run: CloudRunFaults = Field(default_factory=CloudRunFaults)
    operations: OperationFaults = Field(default_factory=OperationFaults)
    blackout: bool = Field(default=False, description="nothing answers: every listener accepts and stays silent")

    @model_validator(mode="after")
    def _cross(self) -> "Scenario":
        c = self.connector
        if c.min_instances is not None and c.max_instances is not None and c.min_instances > c.max_instances:
            raise ValueError(f"connector.min_instances: must be <= max_instances ({c.max_instances}), "
                             f"got {c.min_instances}")
        names = [m.name for m in self.certificates.managed] + [s.name for s in self.certificates.self_managed]
        for attached in self.certificates.attached or []:
            if attached not in names:
                raise ValueError(f"certificates.attached: expected names of certificates listed in this "
                                 f"scenario, got {attached!r}")
        return self


def available() -> list[str]:
    """Names of the scenarios shipped with the package."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def describe_scenarios() -> list[tuple[str, str]]:
    """``(name, description)`` of every shipped scenario, for ``runbook sandbox scenarios``."""
    return [(name, load_scenario(name).description) for name in available()]


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, or a scenario file by path; ``ScenarioError`` with one line."""
    text_name = str(name_or_path)
    looks_like_path = isinstance(name_or_path, Path) or "/" in text_name or text_name.endswith((".yaml", ".yml"))
    path = Path(name_or_path) if looks_like_path else SCENARIO_DIR / f"{text_name}.yaml"
    if not path.is_file():
        if looks_like_path:
            raise ScenarioError(f"{path}: (file): file not found")
        raise ScenarioError(
            f"{text_name}: (scenario): unknown scenario, expected one of: {', '.join(available())}"
        )
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise ScenarioError(f"{source}: {where}: expected valid YAML ({getattr(exc, 'problem', exc)})") from None
    except OSError as exc:
        raise ScenarioError(f"{source}: (file): cannot be read ({exc.strerror})") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: (top level): expected a mapping of sections, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    return validate_scenario(data, source)


def validate_scenario(data: dict[str, Any], source: str) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, source) from None


def _one_line(exc: ValidationError, source: str) -> ScenarioError:
    key, expected = explain(exc, Scenario, count_more=False)
    return ScenarioError(f"{source}: {key}: {expected}")
