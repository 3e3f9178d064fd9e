"""Notebook -> HTML for the report: code hidden, outputs (tables, embedded plots, errors) kept."""
from __future__ import annotations

from pathlib import Path

import nbformat

from ..evidence import atomic_write_text


def notebook_to_html(notebook: Path, html: Path | None = None) -> Path:
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    exporter = HTMLExporter()
    exporter.exclude_input = True          # a reviewer reads narrative and results, not code
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    html = html or notebook.with_suffix(".html")
    atomic_write_text(html, body)
    return html
