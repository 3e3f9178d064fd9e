"""Google's API discovery documents as the emulator's contract: routes, parameters, schemas.

The documents ship inside ``google-api-python-client``
(``googleapiclient/discovery_cache/documents/<api>.<version>.json``). From them:

- ``Api.match(verb, path)`` finds the one method whose ``flatPath`` and ``httpMethod`` fit the
  request (the most literal template wins, as ``.../backendServices/listUsable`` beats
  ``.../backendServices/{backendService}``) and extracts the method's own path parameters
  (``{+name}`` as a whole resource name, ``{project}`` as one segment). No match: the caller
  answers 404 as Google's front end does.
- ``Api.check_query(method, query)`` and ``Api.check_body(method, body)`` refuse what Google
  refuses: an unknown query parameter or body field, a wrong JSON type, a value outside an enum,
  a missing required parameter, each as ``ApiFault(400, INVALID_ARGUMENT)`` naming the field the
  way Google's JSON transcoder names it (``Invalid value at 'service.template.timeout'``).
- ``Api.response_problems(schema, body)`` lists where a response differs from the schema (field
  names, JSON types, int64 as strings, enums, ``kind``): the emulator's own conformance test.

Nothing here knows a product: every rule comes from the documents.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook_lib.sandbox.state.common import ApiFault

DOCUMENTS = {
    "compute": "compute.v1",
    "sqladmin": "sqladmin.v1",
    "vpcaccess": "vpcaccess.v1",
    "secretmanager": "secretmanager.v1",
    "run": "run.v2",
    "networkmanagement": "networkmanagement.v1",
}
# System parameters every Google API accepts besides the document's own list: the JSON enum
# encoding selector the GAPIC REST clients send (``$alt=json;enum-encoding=int``).
EXTRA_SYSTEM_PARAMS = frozenset({"$alt", "alt"})
# APIs served through the proto JSON transcoder: enums may be sent as numbers and field names in
# their proto (snake_case) spelling, as google.protobuf.json_format accepts.
PROTO_APIS = frozenset({"run", "vpcaccess", "secretmanager", "networkmanagement", "sqladmin"})
LONG_FORMATS = frozenset({"int64", "uint64"})
DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")


def documents_dir() -> Path:
    import googleapiclient  # the [sandbox] extra; the caller turns ImportError into its message

    return Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


def load_document(api: str) -> dict[str, Any]:
    return json.loads((documents_dir() / f"{DOCUMENTS[api]}.json").read_text())


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@dataclass
class Method:
    api: str
    id: str
    verb: str
    flat_path: str
    path: str
    parameters: dict[str, Any]
    request: str | None
    response: str | None
    flat_re: re.Pattern[str] = field(repr=False, default=None)  # type: ignore[assignment]
    path_re: re.Pattern[str] = field(repr=False, default=None)  # type: ignore[assignment]
    literal: int = 0

    def __post_init__(self) -> None:
        self.flat_re = _template(self.flat_path, flat=True)
        self.path_re = _template(self.path, flat=False)
        self.literal = len(re.sub(r"\{[^}]*\}", "", self.flat_path))


def _template(template: str, *, flat: bool) -> re.Pattern[str]:
    out, pos = [], 0
    for m in re.finditer(r"\{(\+?)([^}]+)\}", template):
        out.append(re.escape(template[pos:m.start()]))
        plus, name = m.group(1), m.group(2)
        group = re.sub(r"\W", "_", name)
        out.append(f"(?P<{group}>.+?)" if plus and not flat else f"(?P<{group}>[^/:]+)")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("^/" + "".join(out) + "$")


class Api:
    """One discovery document: its methods as routes and its schemas as validators."""

    def __init__(self, api: str, document: dict[str, Any] | None = None):
        self.name = api
        self.doc = document if document is not None else load_document(api)
        self.service_path = self.doc.get("servicePath", "")
        self.schemas: dict[str, Any] = self.doc.get("schemas", {})
        self.system_params = set(self.doc.get("parameters", {})) | EXTRA_SYSTEM_PARAMS
        self.methods: dict[str, Method] = {}
        self._walk(self.doc.get("resources", {}))
        self._routes = sorted(self.methods.values(), key=lambda m: -m.literal)

    def _walk(self, resources: dict[str, Any]) -> None:
        for res in resources.values():
            for m in res.get("methods", {}).values():
                path = self.service_path + m["path"]
                flat = self.service_path + m.get("flatPath", m["path"])
                self.methods[m["id"]] = Method(
                    self.name, m["id"], m["httpMethod"], flat, path, m.get("parameters", {}),
                    (m.get("request") or {}).get("$ref"), (m.get("response") or {}).get("$ref"))
            self._walk(res.get("resources", {}))

    # --- routing ---------------------------------------------------------------------------------

    def match(self, verb: str, path: str) -> tuple[Method, dict[str, str]] | None:
        for method in self._routes:
            if method.verb != verb or not method.flat_re.match(path):
                continue
            m = method.path_re.match(path)
            if m is None:
                continue
            return method, {k: v for k, v in m.groupdict().items()}
        return None

    # --- requests --------------------------------------------------------------------------------

    def check_query(self, method: Method, query: list[tuple[str, str]]) -> dict[str, Any]:
        """The query as the method's typed parameters; ``ApiFault`` 400 for what Google refuses."""
        out: dict[str, Any] = {}
        for raw_key, value in query:
            if raw_key in self.system_params:
                continue
            key = raw_key if raw_key in method.parameters else _camel(raw_key)
            spec = method.parameters.get(key)
            if spec is None or spec.get("location") != "query":
                raise ApiFault(400, "INVALID_ARGUMENT",
                               f'Invalid JSON payload received. Unknown name "{raw_key}": Cannot bind query '
                               f"parameter. Field '{raw_key}' could not be found in request message.",
                               "badRequest", field=raw_key)
            typed = self._query_value(key, spec, value)
            if spec.get("repeated"):
                out.setdefault(key, []).append(typed)
            else:
                out[key] = typed
        for key, spec in method.parameters.items():
            if spec.get("location") == "query" and spec.get("required") and key not in out:
                raise ApiFault(400, "INVALID_ARGUMENT", f"Required parameter '{key}' is missing.",
                               "required", field=key)
        return out

    @staticmethod
    def _query_value(key: str, spec: dict[str, Any], value: str) -> Any:
        kind = spec.get("type", "string")

        def bad(what: str) -> ApiFault:
            return ApiFault(400, "INVALID_ARGUMENT",
                            f"Invalid value at '{key}' ({what}), \"{value}\"", "invalidParameter", field=key)

        if kind == "integer" or spec.get("format") in LONG_FORMATS:
            if not re.match(r"^-?\d+$", value):
                raise bad("TYPE_INT64" if spec.get("format") in LONG_FORMATS else "TYPE_INT32")
            number = int(value)
            lo, hi = spec.get("minimum"), spec.get("maximum")
            if (lo is not None and number < int(lo)) or (hi is not None and number > int(hi)):
                raise bad(f"must be between {lo} and {hi}")
            return number if kind == "integer" else value
        if kind == "boolean":
            if value not in ("true", "false", "True", "False", "1", "0"):
                raise bad("TYPE_BOOL")
            return value in ("true", "True", "1")
        if "enum" in spec and value not in spec["enum"]:
            raise bad("TYPE_ENUM")
        if spec.get("format") == "google-fieldmask" and not re.match(r"^[\w.]*(,[\w.]+)*$", value):
            raise bad("google.protobuf.FieldMask")
        return value

    def body_root(self, method: Method) -> str:
        """What Google's error texts call the request body (``resource`` for compute)."""
        if self.name == "compute":
            return "resource"
        schema = method.request or "body"
        schema = re.sub(r"^GoogleCloudRunV2|^Google(Longrunning)?", "", schema)
        return schema[:1].lower() + schema[1:]

    def check_body(self, method: Method, body: Any) -> Any:
        """Validate (and normalise snake_case names to camelCase) the request body."""
        if method.request is None:
            if body not in (None, {}):
                raise ApiFault(400, "INVALID_ARGUMENT",
                               "Invalid JSON payload received. Unknown name \"\": Root element must be a "
                               "message.", "badRequest")
            return {}
        if body is None:
            return {}
        return self._in_value({"$ref": method.request}, body, self.body_root(method))

    def _in_value(self, spec: dict[str, Any], value: Any, where: str) -> Any:
        if "$ref" in spec:
            spec = {**self.schemas[spec["$ref"]], "_ref": spec["$ref"]}
        kind = spec.get("type", "any")
        fmt = spec.get("format")
        if value is None:
            return None  # JSON null: "not set", as the transcoder reads it

        def bad(detail: str) -> ApiFault:
            leaf = where.rsplit(".", 1)[-1]
            return ApiFault(400, "INVALID_ARGUMENT",
                            f"Invalid value at '{where}' ({detail}), {json.dumps(value)[:80]}",
                            "badRequest", field=where, description=f"Invalid value for field '{leaf}'")

        if kind == "object":
            if not isinstance(value, dict):
                raise bad(f"type.googleapis.com/{spec.get('_ref', 'object')}")
            props = spec.get("properties")
            extra = spec.get("additionalProperties")
            if props is None and extra is not None:
                return {k: self._in_value(extra, v, f"{where}[{k}]") for k, v in value.items()}
            if props is None:
                return value
            out = {}
            for key, v in value.items():
                name = key if key in props else _camel(key)
                if name not in props or (name != key and self.name not in PROTO_APIS):
                    raise ApiFault(400, "INVALID_ARGUMENT",
                                   f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                                   "Cannot find field.", "badRequest", field=f"{where}.{key}",
                                   description=f"Invalid JSON payload received. Unknown name \"{key}\" at "
                                               f"'{where}': Cannot find field.")
                out[name] = self._in_value(props[name], v, f"{where}.{name}")
            return out
        if kind == "array":
            if not isinstance(value, list):
                raise bad("TYPE_LIST")
            return [self._in_value(spec.get("items", {}), v, f"{where}[{i}]") for i, v in enumerate(value)]
        if kind == "string":
            if "enum" in spec:
                if isinstance(value, int) and not isinstance(value, bool) and self.name in PROTO_APIS \
                        and 0 <= value < len(spec["enum"]):
                    return spec["enum"][value]
                if value not in spec["enum"]:
                    raise bad("TYPE_ENUM")
                return value
            if fmt in LONG_FORMATS:
                if isinstance(value, bool) or not (isinstance(value, int) or (
                        isinstance(value, str) and re.match(r"^-?\d+$", value))):
                    raise bad("TYPE_INT64")
                return str(value)
            if not isinstance(value, str):
                raise bad("TYPE_STRING")
            if fmt == "google-duration" and not DURATION.match(value):
                raise bad("type.googleapis.com/google.protobuf.Duration), Field "
                          f"'{where.rsplit('.', 1)[-1]}', Illegal duration format; duration must end with 's'")
            return value
        if kind == "integer":
            if isinstance(value, str) and re.match(r"^-?\d+$", value):
                value = int(value)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad("TYPE_INT32" if fmt != "uint32" else "TYPE_UINT32")
            if fmt == "uint32" and value < 0:
                raise bad("TYPE_UINT32")
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise bad("TYPE_DOUBLE")
            return value
        if kind == "boolean":
            if not isinstance(value, bool):
                raise bad("TYPE_BOOL")
            return value
        return value  # "any"

    # --- responses -------------------------------------------------------------------------------

    def response_problems(self, schema: str, body: Any) -> list[str]:
        """Where ``body`` differs from what Google would send for ``schema`` (empty: conforms)."""
        problems: list[str] = []
        self._out_value({"$ref": schema}, body, schema, problems)
        return problems

    def _out_value(self, spec: dict[str, Any], value: Any, where: str, problems: list[str]) -> None:
        ref = spec.get("$ref")
        if ref:
            if ref not in self.schemas:
                problems.append(f"{where}: unknown schema {ref}")
                return
            spec = self.schemas[ref]
        kind = spec.get("type", "any")
        fmt = spec.get("format")
        if value is None:
            problems.append(f"{where}: null (Google leaves unset fields out)")
            return
        if kind == "object":
            if not isinstance(value, dict):
                problems.append(f"{where}: expected an object, got {type(value).__name__}")
                return
            props, extra = spec.get("properties"), spec.get("additionalProperties")
            if props is None and extra is not None:
                for k, v in value.items():
                    self._out_value(extra, v, f"{where}[{k}]", problems)
                return
            if props is None:
                return
            for k, v in value.items():
                if k not in props:
                    if k == "@type":
                        continue
                    problems.append(f"{where}.{k}: not a field of {ref or 'the object'}")
                    continue
                self._out_value(props[k], v, f"{where}.{k}", problems)
            kind_spec = props.get("kind", {})
            if "default" in kind_spec and "kind" in value and value["kind"] != kind_spec["default"]:
                problems.append(f"{where}.kind: {value['kind']!r}, expected {kind_spec['default']!r}")
            return
        if kind == "array":
            if not isinstance(value, list):
                problems.append(f"{where}: expected a list, got {type(value).__name__}")
                return
            for i, v in enumerate(value):
                self._out_value(spec.get("items", {}), v, f"{where}[{i}]", problems)
            return
        if kind == "string":
            if not isinstance(value, str):
                what = "an int64 as a string" if fmt in LONG_FORMATS else "a string"
                problems.append(f"{where}: expected {what}, got {type(value).__name__} {value!r}")
            elif "enum" in spec and value not in spec["enum"]:
                problems.append(f"{where}: {value!r} is not one of the enum values")
            elif fmt in LONG_FORMATS and not re.match(r"^-?\d+$", value):
                problems.append(f"{where}: {value!r} is not an int64")
            elif fmt == "google-duration" and not DURATION.match(value):
                problems.append(f"{where}: {value!r} is not a duration")
            return
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
            return
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{where}: expected a number, got {type(value).__name__}")
            return
        if kind == "boolean" and not isinstance(value, bool):
            problems.append(f"{where}: expected a boolean, got {type(value).__name__}")
