"""A ``Comparison`` as terminal text, Markdown (summary.md, the issue comment) and HTML (notebooks).

Rendering only: every word comes from the comparison's lists; nothing is decided here.
"""
from __future__ import annotations

import html

from runbook_lib.history.compare import Change, Comparison, Moved
from runbook_lib.util import clock

MAX_LISTED = 25   # per list in Markdown (the issue comment); the terminal and HTML list everything


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.2f}"


def moved_text(m: Moved) -> str:
    unit = f" {m.unit}" if m.unit and m.unit != "%" else m.unit
    return f"{m.check} {m.name}: {_num(m.before)}{unit} -> {_num(m.after)}{unit} ({'+' if m.delta >= 0 else ''}{_num(m.delta)})"


def _change(c: Change, kind: str) -> str:
    if kind == "still_failing":
        since = f"since {clock.readable(c.since or '')}" + (f", {c.runs} runs in a row" if c.runs else "")
        return f"{c.id} {c.after} ({since})"
    return f"{c.id} {c.before or 'not run'} -> {c.after or 'not run'}"


SECTIONS = (("newly_failing", "Newly failing"), ("fixed", "Fixed"), ("still_failing", "Still failing"),
            ("changed", "Other changes"))


def _lists(cmp: Comparison, limit: int | None = None):
    for key, title in SECTIONS:
        items = getattr(cmp, key)
        if items:
            shown = [_change(c, key) for c in items[:limit]]
            if limit is not None and len(items) > limit:
                shown.append(f"... and {len(items) - limit} more")
            yield title, shown
    if cmp.moved:
        yield "Numbers that moved beyond noise", [moved_text(m) for m in cmp.moved[:limit]]


def as_text(cmp: Comparison) -> str:
    out = [cmp.headline()]
    for title, items in _lists(cmp):
        out.append(f"  {title}:")
        out.extend(f"    {line}" for line in items)
    return "\n".join(out) + "\n"


def as_markdown(cmp: Comparison, *, heading: str = "### ") -> list[str]:
    out = [f"{heading}{cmp.headline()}", ""]
    for title, items in _lists(cmp, MAX_LISTED):
        out.append(f"- **{title}:** " + "; ".join(items))
    return out + [""]


def as_html(cmp: Comparison) -> str:
    parts = [f"<p><b>{html.escape(cmp.headline())}</b></p>"]
    for title, items in _lists(cmp):
        parts.append(f"<p>{html.escape(title)}:</p><ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
    return "".join(parts)
