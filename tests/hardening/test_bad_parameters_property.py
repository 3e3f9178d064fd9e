"""Bad parameters, generated: every malformed file or ``-p`` override gives exit 2 and one line on
stderr naming the key (or the file, for text that is not a parameters mapping), never a
traceback, and nothing starts: no kernel, no sandbox, no target, no report folder.

Values are invalid by construction: a value of the wrong *shape* for the field's type (a mapping
where a number is expected, a list where a section is expected...), an unknown key inside a
section, or text that is no parameters file at all. The field types come from the ``Params``
model, the key paths from parameters/staging.example.yaml.
"""
from __future__ import annotations

import contextlib
import io
import json
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import papermill
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from runbook_lib import cli
from runbook_lib.params import Params
from tests.plugins.runs import ROOT

EXAMPLE = ROOT / "parameters" / "staging.example.yaml"
EXAMPLE_DATA: dict = yaml.safe_load(EXAMPLE.read_text())
COMMANDS = ("run", "check", "plan", "params")
BOOL_WORDS = {"y", "n", "t", "f", "yes", "no", "on", "off", "true", "false"}
SETTINGS = settings(max_examples=50, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --- what the model expects where ------------------------------------------------------------------

def shape(annotation: Any) -> str:
    """model | list | dict | bool | int | float | scalar (str, Literal), Optional unwrapped."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = inner[0] if len(inner) == 1 else annotation
    origin = typing.get_origin(annotation)
    if origin is list:
        return "list"
    if origin is dict:
        return "dict"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model"
    return {bool: "bool", int: "int", float: "float"}.get(annotation, "scalar")


def known_paths(data: dict, model: type[BaseModel] = Params, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, shape) of every key in the example file, sections included."""
    for key, value in data.items():
        kind = shape(model.model_fields[key].annotation)
        path = f"{prefix}{key}"
        yield path, kind
        if kind == "model" and isinstance(value, dict):
            sub = model.model_fields[key].annotation
            yield from known_paths(value, sub, path + ".")


def sections(model: type[BaseModel] = Params, prefix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """Every section (nested model) path, the top level as ''."""
    yield prefix.rstrip("."), model
    for key, field in model.model_fields.items():
        if shape(field.annotation) == "model":
            ann = field.annotation
            if typing.get_origin(ann) in (typing.Union, types.UnionType):
                ann = next(a for a in typing.get_args(ann) if a is not type(None))
            yield from sections(ann, f"{prefix}{key}.")


LEAVES = sorted(known_paths(EXAMPLE_DATA))
SECTIONS = sorted(sections())
SCALAR_LEAVES = [p for p, kind in LEAVES if kind not in ("model", "list", "dict")]

# --- invalid values by construction ----------------------------------------------------------------

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
# Text on one line (a line break inside a -p value: its own test at the end).
one_line = st.text(st.characters(blacklist_categories=("Cs",)).filter(lambda c: len(f"a{c}a".splitlines()) == 1),
                   max_size=20)
scalars = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                    st.booleans(), one_line, st.none())
yaml_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(names, inner, max_size=3)),
                           max_leaves=6)
mappings = st.dictionaries(names, yaml_values, min_size=1, max_size=3)
lists = st.lists(yaml_values, max_size=3)
letters = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10)


def wrong_value(kind: str) -> st.SearchStrategy:
    """A value that no field of this shape accepts."""
    wrong = {
        "model": st.one_of(lists, st.integers(), letters, st.booleans()),
        "list": st.one_of(mappings, st.integers(), letters),
        "dict": st.one_of(lists, st.integers(), letters),
        "int": st.one_of(mappings, lists, letters, st.floats(0.1, 0.9)),
        "bool": st.one_of(mappings, lists, st.integers().filter(lambda n: n not in (0, 1)),
                          letters.filter(lambda s: s.lower() not in BOOL_WORDS)),
        "float": st.one_of(mappings, lists),
        "scalar": st.one_of(mappings, lists),
    }
    return wrong[kind]


def unknown_key(section: str) -> st.SearchStrategy[str]:
    fields = dict(SECTIONS)[section].model_fields
    return names.filter(lambda n: n not in fields and n != "extends")


@st.composite
def bad_files(draw) -> tuple[dict, str]:
    """(parameters data, the key path the error must name)."""
    data = json.loads(json.dumps(EXAMPLE_DATA))
    if draw(st.booleans()):
        path, kind = draw(st.sampled_from(LEAVES))
        value = draw(wrong_value(kind))
        named = path
    else:
        section, _ = draw(st.sampled_from(SECTIONS))
        key = draw(unknown_key(section))
        path = f"{section}.{key}" if section else key
        value = draw(yaml_values)
        named = path
    node = data
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data, named


@st.composite
def bad_overrides(draw) -> tuple[list[str], str]:
    """(-p arguments, text the error line must contain)."""
    how = draw(st.sampled_from(["wrong type", "unknown key", "below a value", "no equals sign"]))
    if how == "wrong type":
        path, kind = draw(st.sampled_from(LEAVES))
        return [f"{path}={json.dumps(draw(wrong_value(kind)))}"], path
    if how == "unknown key":
        section, _ = draw(st.sampled_from(SECTIONS))
        key = draw(unknown_key(section))
        path = f"{section}.{key}" if section else key
        return [f"{path}={json.dumps(draw(scalars))}"], path
    if how == "below a value":
        path = draw(st.sampled_from(SCALAR_LEAVES))
        return [f"{path}.{draw(names)}=1"], path
    text = draw(names)
    return [text], text


# --- the invocation ----------------------------------------------------------------------------------

def _refuse(what: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"bad parameters reached {what}")
    return fail


def invoke(argv: list[str]) -> tuple[int, str, str]:
    """``runbook ARGV`` in-process, with anything that would start a kernel, sandbox or target refused."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(papermill, "execute_notebook", _refuse("papermill (a kernel)")))
        stack.enter_context(mock.patch("runbook_lib.sandbox.manager.up", _refuse("a sandbox start")))
        stack.enter_context(mock.patch("runbook_lib.run.headless.open_environment", _refuse("the target")))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse refusing the command line is not what we test here
            raise AssertionError(f"argparse exited ({exc.code}): {err.getvalue()}") from None
    return code, out.getvalue(), err.getvalue()


def check_refused(command: str, params_file: Path, overrides: list[str], named: str) -> None:
    with tempfile.TemporaryDirectory(prefix="runbook-badparams-") as tmp:
        reports = Path(tmp) / "reports"
        argv = [command, "--params", str(params_file)] + [f"-p{o}" for o in overrides]
        if command == "run":
            argv += ["--out", str(reports), "--no-progress"]
        code, stdout, stderr = invoke(argv)
        assert code == 2, (argv, stdout, stderr)
        assert "Traceback" not in stderr and stdout == "", (argv, stdout, stderr)
        lines = stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("runbook: "), (argv, stderr)
        assert named in lines[0], (argv, named, lines[0])
        assert not reports.exists() or not any(reports.iterdir()), "a report folder was created"


@SETTINGS
@given(case=bad_files(), command=st.sampled_from(COMMANDS))
def test_malformed_parameter_files_are_refused_in_one_line(case, command):
    data, named = case
    with tempfile.TemporaryDirectory(prefix="runbook-badfile-") as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        check_refused(command, path, [], named)


@SETTINGS
@given(case=bad_overrides(), command=st.sampled_from(COMMANDS))
def test_malformed_overrides_are_refused_in_one_line(case, command):
    overrides, named = case
    check_refused(command, EXAMPLE, overrides, named)


# Characters YAML allows in a stream (control characters: their own test below).
yaml_printable = st.one_of(st.sampled_from("\t\n\r"),
                           st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"))


@SETTINGS
@given(text=st.text(yaml_printable, max_size=300).filter(lambda t: "extends" not in t),
       command=st.sampled_from(COMMANDS))
def test_text_that_is_no_parameters_file_is_refused_naming_the_file(text, command):
    with tempfile.TemporaryDirectory(prefix="runbook-garbage-") as tmp:
        path = Path(tmp) / "garbage.yaml"
        path.write_text(text, encoding="utf-8")
        check_refused(command, path, [], str(path))


def test_the_generators_cover_every_shape():
    """Guard against a model change silently shrinking what is generated."""
    kinds = {kind for _, kind in LEAVES}
    assert kinds == {"model", "list", "dict", "bool", "int", "float", "scalar"}
    assert len(SECTIONS) >= 15 and len(LEAVES) >= 80


def test_an_unknown_key_from_an_override_is_blamed_on_the_override():
    code, _, stderr = invoke(["params", "--params", str(EXAMPLE), "-pconnector.zz.yy=1"])
    assert code == 2 and stderr.startswith("runbook: -p connector.zz.yy=1: connector.zz:"), stderr


def test_a_control_character_in_the_file_is_one_line_too(tmp_path):
    path = tmp_path / "garbage.yaml"
    path.write_text("target:\n  name: \x08\n")
    code, _, stderr = invoke(["params", "--params", str(path)])
    assert code == 2 and len(stderr.splitlines()) == 1 and str(path) in stderr, stderr


def test_a_line_break_in_an_override_value_stays_one_line():
    code, _, stderr = invoke(["params", "--params", str(EXAMPLE), '-pnosuch="first\\nsecond"'])  # YAML reads \n as a line break
    assert code == 2 and len(stderr.splitlines()) == 1 and "nosuch" in stderr, stderr
