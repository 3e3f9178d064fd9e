"""Secret Manager (secretmanager v1): metadata only. Values are never read for the evidence.

Reads:

    secretmanager.secrets             GET /v1/projects/{p}/secrets (list, field ``secrets``)
    secretmanager.versions.<secret>   GET /v1/projects/{p}/secrets/{s}/versions (list, ``versions``),
                                      for each required secret that exists

Remediation: create a secret (automatic replication), add a version (the value is supplied by a
person at apply time and travels only inside ``ApiCall.secret``), enable a disabled version.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import SecretStr

from runbook_lib.evidence import ApiRecord
from runbook_lib.gcp.api import ApiCall, Product, Resource, last_segment
from runbook_lib.gcp.timefmt import parse_time
from runbook_lib.params import Params

if TYPE_CHECKING:  # the client only for typing: importing a view imports no I/O
    from runbook_lib.gcp.client import ApiClient

PRODUCT = Product(api="secretmanager", service="secretmanager.googleapis.com", title="Secret Manager API",
                  read_role="roles/secretmanager.viewer", write_role="roles/secretmanager.admin")
API = PRODUCT.api

SECRETS = "secretmanager.secrets"
FORMATS = "secretmanager.valueFormats"  # opt-in verdicts only, never values
VERSIONS = "secretmanager.versions"  # + ".<secret>"

ENABLED, DISABLED, DESTROYED = "ENABLED", "DISABLED", "DESTROYED"


def versions_key(secret: str) -> str:
    return f"{VERSIONS}.{secret}"


def secrets_path(params: Params) -> str:
    return f"/v1/projects/{params.project}/secrets"


async def gather(api: ApiClient, params: Params) -> dict[str, ApiRecord]:
    listed = await api.read(SECRETS, API, secrets_path(params), list_field="secrets")
    out = {SECRETS: listed}
    if not listed.ok:
        return out
    present = {s.name for s in secrets_of(listed.body)}
    wanted = [name for name in params.secrets.required if name in present]
    answers = await asyncio.gather(*(
        api.read(versions_key(name), API, f"{secrets_path(params)}/{name}/versions", list_field="versions")
        for name in wanted
    ))
    out.update({versions_key(name): rec for name, rec in zip(wanted, answers, strict=True)})
    if params.secrets.inspect_values:
        out[FORMATS] = await inspect_formats(api, params, wanted)
    return out


async def inspect_formats(api: ApiClient, params: Params, names: list[str]) -> ApiRecord:
    """Opt-in: read each latest value IN MEMORY, keep only a format verdict (never the value).

    The access response never leaves this function; the record holds shapes and reasons only.
    """
    import base64

    from runbook_lib import redact
    from runbook_lib.errors import ApiError
    from runbook_lib.secret_formats import verdict

    started = time.perf_counter()

    async def one(name: str) -> tuple[str, dict]:
        try:
            answer = await api.request("GET", API, f"{secrets_path(params)}/{name}/versions/latest:access")
            value = base64.b64decode((answer.get("payload") or {}).get("data") or "").decode("utf-8", "replace")
        except ApiError as exc:
            return name, {"error": exc.kind, "reason": str(exc)}
        except ValueError:
            return name, {"ok": False, "shape": "not base64", "reason": "the payload is not valid base64"}
        redact.register(value)
        ok, shape, reason = verdict(name, value, deprecated_patterns=params.cloud_run.deprecated_domain_patterns)
        del value, answer
        return name, {"ok": ok, "shape": shape, "reason": reason}

    results = dict(await asyncio.gather(*(one(n) for n in names)))
    return ApiRecord(key=FORMATS, method="GET", url=f"{secrets_path(params)}/*/versions/latest:access",
                     ok=True, status=200, body={"formats": results},
                     elapsed_s=round(time.perf_counter() - started, 4))


def secrets_of(body: dict | None) -> list["Secret"]:
    return [Secret.from_json(d) for d in (body or {}).get("secrets") or []]


def versions_of(body: dict | None) -> list["SecretVersion"]:
    return [SecretVersion.from_json(d) for d in (body or {}).get("versions") or []]


@dataclass(frozen=True)
class Secret(Resource):
    @property
    def name(self) -> str:
        return last_segment(self.raw.get("name"))

    @property
    def create_time(self) -> datetime | None:
        return parse_time(self.raw.get("createTime"))

    @property
    def expire_time(self) -> datetime | None:
        """Set when the secret has an expiration (``expireTime``; ``ttl`` is input-only)."""
        return parse_time(self.raw.get("expireTime"))

    @property
    def replication(self) -> str:
        rep = self.raw.get("replication") or {}
        return "automatic" if "automatic" in rep else "user-managed" if "userManaged" in rep else ""


@dataclass(frozen=True)
class SecretVersion(Resource):
    @property
    def version(self) -> str:
        return last_segment(self.raw.get("name"))

    @property
    def state(self) -> str:
        return self.raw.get("state") or "STATE_UNSPECIFIED"

    @property
    def create_time(self) -> datetime | None:
        return parse_time(self.raw.get("createTime"))

    @property
    def destroy_time(self) -> datetime | None:
        return parse_time(self.raw.get("destroyTime"))


def latest(versions: list[SecretVersion]) -> SecretVersion | None:
    """The newest version (what the ``latest`` alias resolves to): highest version number."""
    def order(v: SecretVersion):
        return (int(v.version) if v.version.isdigit() else -1, v.create_time.timestamp() if v.create_time else 0.0)

    return max(versions, key=order, default=None)


# -- remediation (pure) ----------------------------------------------------------------------------

def create_secret(params: Params, name: str) -> ApiCall:
    return ApiCall(
        method="POST", api=API, path=secrets_path(params), query={"secretId": name},
        body={"replication": {"automatic": {}}},
        gcloud=f"gcloud secrets create {name} --replication-policy=automatic --project {params.project}",
        description=f"create secret {name} (automatic replication, no value yet)",
    )


def add_version(params: Params, name: str, value: str | None = None) -> ApiCall:
    """A new version of ``name``. ``value`` stays in ``ApiCall.secret`` (never shown, never dumped);
    it may be None while planning and supplied at apply time with ``model_copy(update={"secret": ...})``."""
    return ApiCall(
        method="POST", api=API, path=f"{secrets_path(params)}/{name}:addVersion",
        gcloud=f'printf %s "$VALUE" | gcloud secrets versions add {name} --data-file=- --project {params.project}',
        description=f"add a new version to secret {name} (value supplied by a person, never shown)",
        secret=SecretStr(value) if value is not None else None, secret_name=name,
    )


def enable_version(params: Params, name: str, version: str) -> ApiCall:
    return ApiCall(
        method="POST", api=API, path=f"{secrets_path(params)}/{name}/versions/{version}:enable",
        gcloud=f"gcloud secrets versions enable {version} --secret={name} --project {params.project}",
        description=f"enable version {version} of secret {name}",
    )
