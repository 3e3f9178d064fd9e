"""Secret Manager v1: secrets and versions (synchronous methods: no operations).

Payloads are kept apart from the resources and never serialised by a read other than
``versions.access``.
"""
from __future__ import annotations

import base64
import copy
import re
import secrets as pysecrets
import time
from typing import Any, Iterable

from runbook_lib.errors import RunbookError
from runbook_lib.sandbox.state.common import SQL_PRIVATE_IP, ApiFault, Base, bad_request, ids


def canary_value(secret_id: str) -> str:
    """A random value shaped like the secret, with a distinctive token that leak tests can grep for."""
    token = f"rbkcanary{pysecrets.token_hex(12)}"
    if "database" in secret_id and "url" in secret_id:
        return f"postgresql://app:{token}@{SQL_PRIVATE_IP}:5432/app"
    if "redis" in secret_id:
        return f"redis://:{token}@10.103.1.4:6379/0"
    if "cors" in secret_id:
        return f"https://{token}.example.com,https://console.example.com"
    return token


class SecretManager(Base):
    HANDLERS = {
        "secretmanager.projects.secrets.list": lambda s, c: s._page_of(
            c, s.list_secrets(ids(c.params["parent"], 1)[0]), "secrets", total=True),
        "secretmanager.projects.secrets.create": lambda s, c: s.create_secret(
            ids(c.params["parent"], 1)[0], c.query.get("secretId"), c.body),
        "secretmanager.projects.secrets.get": lambda s, c: s.get_secret(*ids(c.params["name"], 2)),
        "secretmanager.projects.secrets.addVersion": lambda s, c: s.add_version(*ids(c.params["parent"], 2), c.body),
        "secretmanager.projects.secrets.versions.list": lambda s, c: s._page_of(
            c, s.list_versions(*ids(c.params["parent"], 2)), "versions", total=True),
        "secretmanager.projects.secrets.versions.get": lambda s, c: s.get_version(*ids(c.params["name"], 3)),
        "secretmanager.projects.secrets.versions.access": lambda s, c: s.access_version(*ids(c.params["name"], 3)),
        "secretmanager.projects.secrets.versions.enable": lambda s, c: s.set_version_state(
            *ids(c.params["name"], 3), "enable"),
        "secretmanager.projects.secrets.versions.disable": lambda s, c: s.set_version_state(
            *ids(c.params["name"], 3), "disable"),
        "secretmanager.projects.secrets.versions.destroy": lambda s, c: s.set_version_state(
            *ids(c.params["name"], 3), "destroy"),
    }

    _secrets: dict[str, dict[str, Any]]
    _versions: dict[str, list[dict[str, Any]]]
    _payloads: dict[tuple[str, int], bytes]

    def _build_secrets(self, values: dict[str, str]) -> None:
        self._secrets, self._versions, self._payloads = {}, {}, {}
        required = list(self.params.secrets.required)
        missing = self._pick(self.scenario.secrets.missing, required, "missing", exclude=())
        disabled = self._pick(self.scenario.secrets.disabled, required, "disabled", exclude=missing)
        for sid in required:
            if sid in missing:
                continue
            self._create_secret(sid, {"replication": {"automatic": {}}}, labels={"env": "staging"})
            self._add_version(sid, values[sid].encode(), state="DISABLED" if sid in disabled else "ENABLED")

    def _pick(self, spec: list[str] | int, required: list[str], key: str, exclude: Iterable[str]) -> list[str]:
        if isinstance(spec, int):
            pool = [s for s in required if s not in set(exclude)]
            if spec > len(pool):
                raise RunbookError(f"scenario {self.scenario.name}: secrets.{key}: expected at most "
                                   f"{len(pool)} secrets, got {spec}")
            return pool[len(pool) - spec:] if spec else []
        unknown = [s for s in spec if s not in required]
        if unknown:
            raise RunbookError(f"scenario {self.scenario.name}: secrets.{key}: expected names from "
                               f"secrets.required, got {', '.join(unknown)}")
        return list(spec)

    def _secret_name(self, sid: str) -> str:
        return f"projects/{self.project_number}/secrets/{sid}"

    def list_secrets(self, project: str) -> list[dict[str, Any]]:
        with self._lock:
            self._check_project(project, numbers=True)
            return copy.deepcopy(list(self._secrets.values()))

    def get_secret(self, project: str, sid: str) -> dict[str, Any]:
        with self._lock:
            self._check_project(project, numbers=True)
            if sid not in self._secrets:
                raise ApiFault(404, "NOT_FOUND", f"Secret [{self._secret_name(sid)}] not found or has no versions.")
            return copy.deepcopy(self._secrets[sid])

    def create_secret(self, project: str, sid: str | None, body: dict[str, Any]) -> dict[str, Any]:
        if not sid or not re.match(r"^[A-Za-z0-9_-]{1,255}$", sid):
            raise bad_request(f"Secret ID must be 1-255 letters, digits, hyphens and underscores, got {sid!r}.")
        replication = body.get("replication")
        if not isinstance(replication, dict) or not ({"automatic", "userManaged"} & set(replication)):
            raise bad_request("Secret.replication must be set (automatic or userManaged).")
        labels = body.get("labels")
        if labels is not None and not (isinstance(labels, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
            raise bad_request("Invalid value for Secret.labels: expected a map of strings.")
        with self._lock:
            self._check_project(project, numbers=True)
            if sid in self._secrets:
                raise ApiFault(409, "ALREADY_EXISTS", f"Secret [{self._secret_name(sid)}] already exists.")
            return copy.deepcopy(self._create_secret(sid, body, labels=body.get("labels")))

    def _create_secret(self, sid: str, body: dict[str, Any], labels: dict[str, str] | None) -> dict[str, Any]:
        secret: dict[str, Any] = {
            "name": self._secret_name(sid),
            "replication": copy.deepcopy(body["replication"]),
            "createTime": self._rfc3339(6),
            "etag": f'"{int(time.time() * 1e6):x}"',
        }
        if labels:
            secret["labels"] = dict(labels)
        self._secrets[sid] = secret
        self._versions[sid] = []
        return secret

    def list_versions(self, project: str, sid: str) -> list[dict[str, Any]]:
        with self._lock:
            self.get_secret(project, sid)
            return copy.deepcopy(sorted(self._versions[sid], key=self._version_number, reverse=True))

    @staticmethod
    def _version_number(v: dict[str, Any]) -> int:
        return int(v["name"].rsplit("/", 1)[-1])

    def get_version(self, project: str, sid: str, version: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._find_version(project, sid, version))

    def _find_version(self, project: str, sid: str, version: str) -> dict[str, Any]:
        self.get_secret(project, sid)
        versions = self._versions[sid]
        if version == "latest":
            if not versions:
                raise ApiFault(404, "NOT_FOUND", f"Secret [{self._secret_name(sid)}] not found or has no versions.")
            return max(versions, key=self._version_number)
        for v in versions:
            if v["name"].rsplit("/", 1)[-1] == version:
                return v
        raise ApiFault(404, "NOT_FOUND", f"Secret Version [{self._secret_name(sid)}/versions/{version}] not found.")

    def add_version(self, project: str, sid: str, body: dict[str, Any]) -> dict[str, Any]:
        payload = body.get("payload")
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, str):
            raise bad_request("SecretPayload.data is required (base64).")
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            raise bad_request("Invalid value at 'payload.data' (TYPE_BYTES), Base64 decoding failed.") from None
        if len(raw) > 65536:
            raise bad_request("Secret payload exceeds the 64 KiB limit.")
        with self._lock:
            self.get_secret(project, sid)
            version = self._add_version(sid, raw, state="ENABLED")
            if isinstance(payload, dict) and "dataCrc32c" in payload:
                version["clientSpecifiedPayloadChecksum"] = True
            return copy.deepcopy(version)

    def _add_version(self, sid: str, raw: bytes, state: str) -> dict[str, Any]:
        number = 1 + max((self._version_number(v) for v in self._versions[sid]), default=0)
        version = {
            "name": f"{self._secret_name(sid)}/versions/{number}",
            "createTime": self._rfc3339(6),
            "state": state,
            "replicationStatus": {"automatic": {}},
            "etag": f'"{int(time.time() * 1e6):x}"',
            "clientSpecifiedPayloadChecksum": False,
        }
        self._versions[sid].append(version)
        self._payloads[(sid, number)] = raw
        return version

    def set_version_state(self, project: str, sid: str, version: str, action: str) -> dict[str, Any]:
        with self._lock:
            v = self._find_version(project, sid, version)
            if v["state"] == "DESTROYED":
                raise ApiFault(400, "FAILED_PRECONDITION", f"Secret Version [{v['name']}] is in DESTROYED state.")
            v["state"] = {"enable": "ENABLED", "disable": "DISABLED", "destroy": "DESTROYED"}[action]
            if action == "destroy":
                v["destroyTime"] = self._rfc3339(6)
                self._payloads.pop((sid, self._version_number(v)), None)
            v["etag"] = f'"{int(time.time() * 1e6):x}"'
            return copy.deepcopy(v)

    def access_version(self, project: str, sid: str, version: str) -> dict[str, Any]:
        """The payload (the real API's ``:access``); only a client that opted in calls it."""
        with self._lock:
            v = self._find_version(project, sid, version)
            if v["state"] != "ENABLED":
                raise ApiFault(400, "FAILED_PRECONDITION", f"Secret Version [{v['name']}] is in {v['state']} state.")
            raw = self._payloads[(sid, self._version_number(v))]
            return {"name": v["name"], "payload": {"data": base64.b64encode(raw).decode(),
                                                   "dataCrc32c": str(_crc32c(raw))}}





def _crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as Secret Manager reports ``dataCrc32c``."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF
