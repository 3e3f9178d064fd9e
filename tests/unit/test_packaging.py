"""One dependency list: environment.yml installs the package from pyproject.toml."""
from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_environment_yml_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert pip == ['-e ".[test,lab]"'] or pip == ["-e .[test,lab]"]
    conda_pkgs = [d for d in deps if isinstance(d, str)]
    assert all(d.split("=")[0] in ("python", "pip") for d in conda_pkgs), "dependencies belong in pyproject.toml"


def test_jupyterlab_is_an_optional_extra_outside_the_test_path():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("jupyterlab") for d in project["dependencies"])
    assert not any(d.startswith("jupyterlab") for d in project["optional-dependencies"]["test"])
    assert any(d.startswith("jupyterlab") for d in project["optional-dependencies"]["lab"])
    assert project["scripts"]["runbook"] == "runbook_lib.cli:main"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
