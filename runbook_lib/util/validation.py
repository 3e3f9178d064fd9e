"""Turn a pydantic ``ValidationError`` into one line a person can act on: the key path and what
was expected. Shared by the parameters and the sandbox scenarios (both reject unknown keys)."""
from __future__ import annotations

import re

from pydantic import BaseModel, ValidationError


def explain(exc: ValidationError, root: type[BaseModel], *, count_more: bool = True) -> tuple[str, str]:
    """``(key.path, expectation)`` for the first error, e.g. ``("connector.min_instances", "must be <= ...")``."""
    err = exc.errors()[0]
    # Drop pydantic's union-branch markers ("list[str]", "int") from the location.
    loc = [str(x) for x in err["loc"] if not (isinstance(x, str) and ("[" in x or x in ("int", "str")))]
    msg = err["msg"]
    if err["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
        # Our validators say "field: message" to point at the precise key of a cross-field rule.
        head, sep, rest = msg.partition(": ")
        if sep and re.match(r"^[a-z_.]+$", head):
            loc = head.split(".") if "." in head else loc + [head]
            msg = rest
        expected = msg
    elif err["type"] == "extra_forbidden":
        expected = "unknown key" + _known_keys_hint(root, loc)
    elif err["type"] == "missing":
        expected = "required key is missing"
    else:
        expected = msg.replace("Input should be", "expected").replace("String should", "expected to")
        if "input" in err and not isinstance(err["input"], (dict, list)):
            expected += f", got {err['input']!r}"
    more = len(exc.errors()) - 1
    if count_more and more:
        expected += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ".".join(loc) or "(top level)", expected


def _known_keys_hint(root: type[BaseModel], loc: list[str]) -> str:
    model: type[BaseModel] = root
    for part in loc[:-1]:
        if part.isdigit():
            continue
        ann = getattr(model.model_fields.get(part), "annotation", None)
        nested = next((a for a in (ann, *getattr(ann, "__args__", ()))
                       if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is None:
            return ""
        model = nested
    return f" (expected one of: {', '.join(model.model_fields)})"
