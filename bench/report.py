"""Result rows, and the two outputs: ``<date>.json`` (everything) and ``<date>.md`` (the table)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Row:
    section: str
    measurement: str
    value: str
    target: str
    met: bool | None          # None: no target, reported for information
    explanation: str = ""
    profile: str = ""         # the profile (bench.profiling.PROFILERS) that explains a miss

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "—"}[self.met]


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def rows_table(rows: list[Row]) -> str:
    out = ["| section | measurement | value | target | met | explanation |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| " + " | ".join(_cell(x) for x in (r.section, r.measurement, r.value, r.target, r.verdict,
                                                          r.explanation)) + " |")
    return "\n".join(out)


def table(header: list[str], lines: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(x) for x in line) + " |" for line in lines]
    return "\n".join(out)


def rows_to_dicts(rows: list[Row]) -> list[dict[str, Any]]:
    return [{k: v for k, v in asdict(r).items() if k != "profile"} for r in rows]
