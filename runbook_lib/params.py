"""Parameters: one YAML file per target, validated before any kernel starts.

Every name from the incident is a parameter. Unknown keys are rejected (papermill would only
warn), types are checked, and cross-field rules hold. Any problem becomes one ``ParameterError``
line: ``<file>: <key.path>: <what was expected>``.

Relative paths inside a file (evidence folder, CA bundle, password and secret-value files) are
resolved against the file's own folder, so a parameters file means the same from anywhere.
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runbook_lib.errors import ParameterError
from runbook_lib.util import safeio
from runbook_lib.util.validation import explain

PARAMS_FILE_LIMIT = 1 * safeio.MiB  # a parameters file is a few KiB; 1 MiB is generous, 50 MB is a mistake

NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"  # GCP resource names
DOMAIN = r"^(\*\.)?([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}$"


class Strict(BaseModel):
    # allow_inf_nan=False: an infinite threshold or wait passes every comparison and never ends
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class Target(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=63, description="appears in report folder names")
    mode: Literal["live", "sandbox", "replay"]
    scenario: str | None = None
    evidence_dir: str | None = None
    time_scale: float = Field(default=1.0, ge=0.001, le=1)

    @model_validator(mode="after")
    def _mode_needs(self) -> "Target":
        if self.mode == "sandbox" and not self.scenario:
            raise ValueError("scenario: a sandbox target needs a scenario (e.g. issue-1278)")
        if self.mode == "replay" and not self.evidence_dir:
            raise ValueError("evidence_dir: a replay target needs the folder of recorded evidence")
        if self.mode == "live" and self.time_scale != 1.0:
            raise ValueError("time_scale: a live target runs in real time (time_scale: 1.0)")
        return self


class Endpoints(Strict):
    """Where the Google APIs are. Live defaults; ``runbook sandbox up`` points them at the emulator."""

    vpcaccess: str = "https://vpcaccess.googleapis.com"
    sqladmin: str = "https://sqladmin.googleapis.com"
    compute: str = "https://compute.googleapis.com"
    secretmanager: str = "https://secretmanager.googleapis.com"
    run: str = "https://run.googleapis.com"
    networkmanagement: str = "https://networkmanagement.googleapis.com"
    monitoring: str = "monitoring.googleapis.com:443"
    monitoring_insecure: bool = False
    credentials: Literal["adc", "anonymous"] = "adc"

    @field_validator("vpcaccess", "sqladmin", "compute", "secretmanager", "run", "networkmanagement")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+$", v):
            raise ValueError("expected a base URL like https://HOST[:PORT] with no path")
        return v


class Network(Strict):
    """How probes reach the domains: ``connect_to`` works like ``curl --connect-to``."""

    connect_to: dict[str, str] = Field(default_factory=dict)
    ca_bundle: str | None = None
    vantage: Literal["auto", "inside_vpc", "outside_vpc"] = Field(
        default="auto", description="where the probes run: auto decides from the route and the platform")

    @field_validator("connect_to")
    @classmethod
    def _pairs(cls, v: dict[str, str]) -> dict[str, str]:
        for k, target in v.items():
            for part in (k, target):
                if not re.match(r"^[A-Za-z0-9.*\-\[\]:]+:\d{1,5}$", part):
                    raise ValueError(f"expected HOST:PORT -> ADDR:PORT entries, got {k!r}: {target!r}")
        return v


class Deadlines(Strict):
    api_s: float = Field(default=10.0, gt=0, le=300)
    probe_s: float = Field(default=10.0, gt=0, le=300)
    monitoring_s: float = Field(default=10.0, gt=0, le=300)
    operation_s: float = Field(default=300.0, gt=0, le=3600)
    retries: int = Field(default=3, ge=0, le=10)


class Connector(Strict):
    name: str = Field(pattern=NAME)
    network: str = Field(pattern=NAME)
    ip_cidr_range: str
    machine_type: str = "e2-micro"
    min_instances: int = Field(default=2, ge=2, le=9)
    max_instances: int = Field(default=10, ge=3, le=10)
    subnet: str | None = None

    @field_validator("ip_cidr_range")
    @classmethod
    def _cidr(cls, v: str) -> str:
        try:
            net = ipaddress.ip_network(v, strict=True)
        except ValueError:
            raise ValueError(f"expected an IPv4 range like 10.8.0.0/28, got {v!r}") from None
        if net.prefixlen != 28:
            raise ValueError(f"expected a /28 range (Serverless VPC Access requires it), got {v!r}")
        return v

    @model_validator(mode="after")
    def _min_le_max(self) -> "Connector":
        if self.min_instances > self.max_instances:
            raise ValueError(
                f"min_instances: must be <= max_instances ({self.max_instances}), got {self.min_instances}"
            )
        return self


class CloudSQL(Strict):
    instance: str = Field(pattern=NAME)
    network: str = Field(pattern=NAME)
    database: str = "postgres"
    user: str = "postgres"
    password_env: str | None = None
    password_file: str | None = None
    host: str | None = None
    port: int = Field(default=5432, ge=1, le=65535)
    sslmode: Literal["disable", "require", "verify-ca", "verify-full"] = "require"
    probe_samples: int = Field(default=10, ge=1, le=1000)
    probe_concurrency: int = Field(default=5, ge=1, le=100)
    min_max_connections: int = Field(default=100, ge=1, le=262143)
    required_flags: dict[str, str] = Field(
        default_factory=lambda: {"statement_timeout": "30000", "lock_timeout": "10000"}
    )


class CloudRun(Strict):
    services: list[str] = Field(min_length=1)
    vpc_egress: Literal["ALL_TRAFFIC", "PRIVATE_RANGES_ONLY"] = "ALL_TRAFFIC"
    deprecated_domain_patterns: list[str] = Field(default_factory=list)
    # What the revision must tolerate (issue 10). Cloud Run caps the request timeout at 3600 s.
    request_timeout_s: int = Field(default=600, ge=1, le=3600,
                                   description="the longest request / WebSocket lifetime the services need")
    startup_s: int = Field(default=600, ge=0, le=3600,
                           description="startup time the incident states; used when no startup_latencies metric")
    min_instances: int = Field(default=1, ge=0, le=1000, description="warm instances each service keeps")
    startup_cpu_boost: bool = Field(default=True, description="require startup CPU boost on every service")
    domain_replacements: dict[str, str] = Field(
        default_factory=dict, description="deprecated host -> its replacement, in environment values")

    @field_validator("domain_replacements")
    @classmethod
    def _hosts(cls, v: dict[str, str]) -> dict[str, str]:
        for old, new in v.items():
            for host in (old, new):
                if not re.match(DOMAIN, host) or host.startswith("*."):
                    raise ValueError(f"expected host -> host (e.g. api.staging.example.com: api-staging.example.com), "
                                     f"got {old!r}: {new!r}")
        return v


class HealthCheckPolicy(Strict):
    timeout_s: int = Field(default=60, ge=1, le=300)
    interval_s: int = Field(default=60, ge=1, le=300)
    unhealthy_threshold: int = Field(default=10, ge=1, le=10)
    healthy_threshold: int = Field(default=2, ge=1, le=10)

    @model_validator(mode="after")
    def _timeout_le_interval(self) -> "HealthCheckPolicy":
        if self.timeout_s > self.interval_s:
            raise ValueError(
                f"timeout_s: must be <= interval_s ({self.interval_s}), got {self.timeout_s}"
            )
        return self


class LoadBalancer(Strict):
    https_proxy: str = Field(pattern=NAME)
    certificate_name: str = Field(default="staging-managed-cert", pattern=NAME)
    backend_services: list[str] = Field(min_length=1)
    health_checks: dict[str, str] = Field(min_length=1, description="health check name -> request path")
    backend_timeout_s: int = Field(default=600, ge=1, le=86400)
    startup_s: int = Field(default=600, ge=0, le=3600)
    health_check: HealthCheckPolicy = Field(default_factory=HealthCheckPolicy)
    url_map: str = Field(default="staging-url-map", pattern=NAME)
    forwarding_rule: str = Field(default="staging-https-rule", pattern=NAME)

    @field_validator("health_checks")
    @classmethod
    def _paths(cls, v: dict[str, str]) -> dict[str, str]:
        for name, path in v.items():
            if not path.startswith("/"):
                raise ValueError(f"expected a request path starting with '/' for {name}, got {path!r}")
        return v


class Domains(Strict):
    frontend: str
    api: str
    wildcard: str = Field(default="", description="the certificate name family, e.g. *.netrasystems.ai")
    health_paths: list[str] = Field(default_factory=lambda: ["/health", "/auth/health"])
    expiry_warn_days: int = Field(default=30, ge=0, le=3650)
    expiry_fail_days: int = Field(default=7, ge=0, le=3650)

    @field_validator("frontend", "api")
    @classmethod
    def _domain(cls, v: str) -> str:
        if not re.match(DOMAIN, v) or v.startswith("*."):
            raise ValueError(f"expected a DNS name like api-staging.example.com, got {v!r}")
        return v

    @model_validator(mode="after")
    def _fail_before_warn(self) -> "Domains":
        if self.expiry_fail_days > self.expiry_warn_days:
            raise ValueError(
                f"expiry_fail_days: must be <= expiry_warn_days ({self.expiry_warn_days}), "
                f"got {self.expiry_fail_days}"
            )
        return self


class Secrets(Strict):
    required: list[str] = Field(min_length=1)
    inspect_values: bool = False
    expiry_warn_days: int = Field(default=30, ge=0, le=3650)

    @field_validator("required")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({s for s in v if v.count(s) > 1})
        if dupes:
            raise ValueError(f"expected unique secret names, {', '.join(dupes)} repeated")
        for s in v:
            if not re.match(r"^[A-Za-z0-9_-]{1,255}$", s):
                raise ValueError(f"expected secret ids of letters, digits, - and _, got {s!r}")
        return v


class Thresholds(Strict):
    """Real-world limits (seconds). Sandbox measurements are compared after ``time_scale``."""

    db_connect_s: float = Field(default=35.0, gt=0, le=3600)
    api_response_s: float = Field(default=5.0, gt=0, le=3600)
    health_response_s: float = Field(default=10.0, gt=0, le=3600)
    ws_connect_s: float = Field(default=10.0, gt=0, le=3600)
    startup_s: float = Field(default=300.0, gt=0, le=3600)
    error_rate_pct: float = Field(default=1.0, ge=0, le=100)
    clock_skew_s: float = Field(default=60.0, gt=0, le=86400, description="local clock vs API Date headers")


class Connectivity(Strict):
    """Network Management Connectivity Tests (Cloud Run revision -> Cloud SQL): created, read, deleted."""

    enabled: bool = True
    deadline_s: float = Field(default=120.0, gt=0, le=900, description="create + analysis, polled with backoff")


class Monitoring(Strict):
    enabled: bool = True
    lookback_minutes: int = Field(default=60, ge=1, le=10080)


class SecretValues(Strict):
    """Where a person puts secret values for remediation. Never the values themselves."""

    env: dict[str, str] = Field(default_factory=dict, description="secret id -> environment variable")
    file: str | None = Field(default=None, description="a KEY=VALUE file, one secret per line")


class Remediation(Strict):
    apply: bool = False
    state_dir: str | None = Field(default=None, description="per-target apply lock and last audit "
                                                            "(default: ~/.cache/runbook)")
    confirm: str = ""
    skip: list[str] = Field(default_factory=list, description="action ids to leave out of the plan")
    secret_values: SecretValues = Field(default_factory=SecretValues)
    wait_s: float = Field(default=120.0, gt=0, le=3600, description="how long to wait for certificates to turn ACTIVE")


class GoldenPath(Strict):
    user: str = "demo@netrasystems.ai"
    password_env: str | None = None
    password_file: str | None = None
    message: str = "Is staging back?"
    requests: int = Field(default=50, ge=1, le=10000)
    events: list[str] = Field(
        default_factory=lambda: [
            "agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed",
        ],
        min_length=1,
    )


class Impact(Strict):
    name: str
    arr_usd: int = Field(ge=0, le=10**15)
    staging_dependency_pct: float = Field(ge=0, le=100)


class LabelChange(Strict):
    add: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)


class Handback(Strict):
    repo: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    issue: int | None = Field(default=None, ge=1)
    incident: str = "Issue #1278"
    labels_when_healthy: LabelChange = Field(default_factory=LabelChange)
    labels_when_unhealthy: LabelChange = Field(default_factory=LabelChange)
    business_impact: list[Impact] = Field(default_factory=list)


class Params(Strict):
    target: Target
    project: str
    region: str
    endpoints: Endpoints = Field(default_factory=Endpoints)
    network: Network = Field(default_factory=Network)
    deadlines: Deadlines = Field(default_factory=Deadlines)
    connector: Connector
    cloudsql: CloudSQL
    cloud_run: CloudRun
    load_balancer: LoadBalancer
    domains: Domains
    secrets: Secrets
    thresholds: Thresholds = Field(default_factory=Thresholds)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    connectivity: Connectivity = Field(default_factory=Connectivity)
    remediation: Remediation = Field(default_factory=Remediation)
    golden_path: GoldenPath = Field(default_factory=GoldenPath)
    handback: Handback = Field(default_factory=Handback)

    @field_validator("project")
    @classmethod
    def _project(cls, v: str) -> str:
        if not re.match(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$", v):
            raise ValueError(f"expected a GCP project id (6-30 lowercase letters, digits, hyphens), got {v!r}")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not re.match(r"^[a-z]+-[a-z]+\d+$", v):
            raise ValueError(f"expected a GCP region like us-central1, got {v!r}")
        return v

    @model_validator(mode="after")
    def _cross(self) -> "Params":
        if self.remediation.apply and not self.remediation.confirm:
            raise ValueError(
                "remediation.confirm: applying needs the plan id shown by the dry run (confirm: <plan id>)"
            )
        unknown = sorted(set(self.remediation.secret_values.env) - set(self.secrets.required))
        if unknown:
            raise ValueError(
                f"remediation.secret_values.env: expected ids from secrets.required, got {', '.join(unknown)}"
            )
        return self

    # Thresholds measured on the wire scale with the target's clock (sandbox time runs faster).
    def scaled(self, seconds: float) -> float:
        return seconds * self.target.time_scale


# --- loading -------------------------------------------------------------------------------

PATH_KEYS = (
    ("target", "evidence_dir"),
    ("network", "ca_bundle"),
    ("cloudsql", "password_file"),
    ("golden_path", "password_file"),
    ("remediation", "secret_values", "file"),
    ("remediation", "state_dir"),
)


def load_params(
    path: str | Path, overrides: Sequence[str] | Mapping[str, Any] = (), *, label: str | None = None,
    archived: bool = False,
) -> Params:
    """Read, override and validate a parameters file; raise ``ParameterError`` with one line.

    ``archived``: a report's own parameters.yaml, valid when it was written: keys removed since
    are dropped (the report must still attach), not refused."""
    path = Path(path)
    source = label or str(path)
    data = _read_layered(path, source, seen=())
    items = list(overrides.items()) if isinstance(overrides, Mapping) else [_split_override(o) for o in overrides]
    for key, value in items:
        _set_path(data, key, value, source=f"-p {key}")
        _resolve_paths(data, Path.cwd(), only=key)
    try:
        return validate(data, source, drop_removed=archived)
    except ParameterError as err:
        # Blame the override when the bad key is one the command line set.
        for key, value in items:
            related = err.key == key or err.key.startswith(key + ".") or key.startswith(err.key + ".")
            if related:
                raise ParameterError(f"-p {key}={value}", err.key, err.expected) from None
        raise


def _read_layered(path: Path, source: str, seen: tuple[Path, ...]) -> dict:
    """Read one file; ``extends: other.yaml`` layers it over another (deep merge, this file wins)."""
    try:
        text = safeio.read_text(path, PARAMS_FILE_LIMIT)  # regular files only: a FIFO would block forever
    except FileNotFoundError:
        raise ParameterError(source, "(file)", "file not found") from None
    except ValueError as exc:
        raise ParameterError(source, "(file)", str(exc)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise ParameterError(source, where, f"expected valid YAML ({problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParameterError(source, "(top level)", f"expected a mapping of sections, got {type(data).__name__}")
    _resolve_paths(data, path.parent)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ParameterError(source, "extends", f"expected the path of a parameters file, got {parent!r}")
    base_path = (path.parent / parent).resolve()
    if base_path in seen:
        raise ParameterError(source, "extends", f"expected no cycle, {parent} extends this file again")
    base = _read_layered(base_path, f"{source} (extends {parent})", seen + (path.resolve(),))
    return _deep_merge(base, data)


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# Keys that were parameters once: a file or override still setting one gets one line saying what
# to do instead, not "unknown key".
REMOVED = {
    ("cloudsql", "connect_threshold_s"): "was removed (no check read it): the database connect limit "
                                         "is thresholds.db_connect_s",
}


def validate(data: dict, source: str, *, drop_removed: bool = False) -> Params:
    for keys, why in REMOVED.items():
        node: Any = data
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and keys[-1] in node:
            if not drop_removed:
                raise ParameterError(source, ".".join(keys), why)
            del node[keys[-1]]
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, source) from None


def _split_override(text: str) -> tuple[str, Any]:
    if any("\udc80" <= ch <= "\udcff" for ch in text):  # bytes that were not UTF-8 (surrogateescape)
        shown = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise ParameterError(f"-p {shown}", "(override)", "expected UTF-8 text")
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ParameterError(f"-p {text}", "(override)", "expected KEY.PATH=VALUE, e.g. -p cloudsql.probe_samples=20")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, (int, float)) and not isinstance(value, bool) and _is_text_field(key.strip()):
        value = raw.strip()  # a plan id of digits (0012345678, 123456789012) stays the text that was typed
    return key.strip(), value


def _is_text_field(dotted: str) -> bool:
    """True when ``dotted`` names a plain-text parameter (``remediation.confirm``, ``target.name``)."""
    model: Any = Params
    annotation: Any = None
    for part in dotted.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return False
        annotation = fields[part].annotation
        model = annotation
    return annotation is str or annotation == (str | None)


def _set_path(data: dict, dotted: str, value: Any, *, source: str) -> None:
    parts = dotted.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ParameterError(source, ".".join(parts[: i + 1]), "is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def _resolve_paths(data: dict, base: Path, only: str | None = None) -> None:
    for keys in PATH_KEYS:
        if only is not None and ".".join(keys) != only:
            continue
        node = data
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(keys[-1]), str):
            p = Path(node[keys[-1]]).expanduser()
            node[keys[-1]] = str(p if p.is_absolute() else (base / p).resolve())


def _one_line(exc: ValidationError, source: str) -> ParameterError:
    key, expected = explain(exc, Params)
    return ParameterError(source, key, expected)


def dump_params(params: Params) -> str:
    """YAML of the effective parameters (no secret values ever live in parameters)."""
    return yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False)
