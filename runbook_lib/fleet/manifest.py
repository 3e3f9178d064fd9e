"""The fleet manifest: which targets a fleet run covers, validated before anything starts.

    targets:
      - name: staging                    # unique; becomes the run's target.name (folder names)
        params: staging.example.yaml     # relative to the manifest, or absolute
        overrides:                       # optional dotted keys, as `runbook run -p KEY=VALUE`
          project: netra-staging
          region: us-central1

Unknown keys are rejected, names are unique, and every target's parameters (with its overrides)
are loaded and validated here too, so a typo in the fifth target stops the fleet before the
first target starts. Any problem is one ``ParameterError`` line naming the manifest key.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from runbook_lib.errors import ParameterError
from runbook_lib.params import PATH_KEYS, Params, load_params
from runbook_lib.util.validation import explain

DOTTED = r"^[a-z_][a-z0-9_]*(\.[A-Za-z0-9_-]+)*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FleetTarget(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=48,
                      description="unique in the manifest; the run's target.name, so folder names differ")
    params: str = Field(min_length=1, description="parameters file, relative to the manifest or absolute")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted key -> value")

    @field_validator("overrides")
    @classmethod
    def _dotted(cls, v: dict[str, Any]) -> dict[str, Any]:
        import re

        for key in v:
            if not re.match(DOTTED, key):
                raise ValueError(f"expected dotted parameter keys like cloudsql.probe_samples, got {key!r}")
        if "target.name" in v:
            raise ValueError("target.name is the fleet target's name; rename the target instead")
        return v


class Manifest(_Strict):
    targets: list[FleetTarget] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "Manifest":
        names = [t.name for t in self.targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"targets: expected unique target names, {', '.join(dupes)} repeated")
        return self


class LoadedTarget:
    """One manifest entry with its parameters file resolved and its parameters validated."""

    def __init__(self, index: int, spec: FleetTarget, params_file: Path, overrides: dict[str, Any], params: Params):
        self.index, self.spec, self.params_file, self.overrides, self.params = index, spec, params_file, overrides, params

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def mode(self) -> str:
        return self.params.target.mode

    def cli_overrides(self) -> list[str]:
        """The overrides as ``-p KEY=VALUE`` texts (JSON values are YAML, so types survive)."""
        return [f"{k}={json.dumps(v)}" for k, v in self.overrides.items()]

    def describe(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "mode": self.mode, "params": str(self.params_file),
                "overrides": self.overrides, "scenario": self.params.target.scenario,
                "project": self.params.project, "region": self.params.region}


class Fleet:
    def __init__(self, path: Path, targets: list[LoadedTarget]):
        self.path, self.targets = path, targets

    def by_name(self, name: str) -> LoadedTarget:
        for t in self.targets:
            if t.name == name:
                return t
        raise ParameterError(str(self.path), "targets", f"no target named {name!r} "
                             f"(targets: {', '.join(t.name for t in self.targets)})")

    def by_index(self, index: int) -> LoadedTarget:
        if not 0 <= index < len(self.targets):
            raise ParameterError(str(self.path), "targets", f"no target with index {index} "
                                 f"(the manifest has {len(self.targets)}, indexes 0-{len(self.targets) - 1})")
        return self.targets[index]


def load_manifest(path: str | Path) -> Fleet:
    """Read and validate the manifest and every target's parameters; one line on any problem."""
    path = Path(path)
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParameterError(source, "(file)", "file not found") from None
    except OSError as exc:
        raise ParameterError(source, "(file)", f"cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParameterError(source, where, f"expected valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise ParameterError(source, "(top level)", "expected a mapping with a targets: list")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        key, expected = explain(exc, Manifest)
        raise ParameterError(source, key, expected) from None

    base = path.resolve().parent
    loaded = []
    for i, spec in enumerate(manifest.targets):
        params_file = Path(spec.params).expanduser()
        params_file = params_file if params_file.is_absolute() else (base / params_file).resolve()
        overrides = {**_resolve_path_overrides(spec.overrides, base), "target.name": spec.name}
        try:
            params = load_params(params_file, overrides)
        except ParameterError as err:
            where = f"{source}: targets.{i} ({spec.name})"
            blame = f"override {err.source[3:]}" if err.source.startswith("-p ") else f"in {err.source}"
            raise ParameterError(where, err.key, f"{err.expected} ({blame})") from None
        loaded.append(LoadedTarget(i, spec, params_file, overrides, params))
    return Fleet(path.resolve(), loaded)


def _resolve_path_overrides(overrides: dict[str, Any], base: Path) -> dict[str, Any]:
    """Path-valued overrides are relative to the manifest, like the params file itself."""
    paths = {".".join(k) for k in PATH_KEYS}
    out = {}
    for key, value in overrides.items():
        if key in paths and isinstance(value, str) and value:
            p = Path(value).expanduser()
            value = str(p if p.is_absolute() else (base / p).resolve())
        out[key] = value
    return out
