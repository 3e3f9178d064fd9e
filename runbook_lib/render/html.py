"""Notebook -> HTML for the report: code hidden, outputs (tables, embedded plots, errors) kept.

The pages are self-contained: the ``runbook`` template (templates/runbook) is JupyterLab's
without require.js, MathJax, mermaid or widget scripts from a CDN, so a report opens offline, in a
CI artifact viewer or behind a proxy. Plots are embedded PNGs; CSS is inlined.
"""
from __future__ import annotations

import html as _html
from pathlib import Path

import nbformat

from runbook_lib.evidence import atomic_write_text

TEMPLATES = Path(__file__).resolve().parent / "templates"

PAGE_CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;
line-height:1.45;padding:0 1em}code,pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;
padding:.1em .3em;border-radius:4px}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.3em .6em;
text-align:left;vertical-align:top}details{margin:.6em 0}summary{cursor:pointer;font-weight:600}"""


def exporter():
    from nbconvert import HTMLExporter

    exp = HTMLExporter(extra_template_basedirs=[str(TEMPLATES)], template_name="runbook")
    exp.exclude_input = True          # a reviewer reads narrative and results, not code
    exp.exclude_input_prompt = True
    exp.exclude_output_prompt = True
    return exp


def notebook_to_html(notebook: Path, html: Path | None = None) -> Path:
    nb = nbformat.read(notebook, as_version=4)
    body, _ = exporter().from_notebook_node(nb)
    html = html or notebook.with_suffix(".html")
    atomic_write_text(html, body)
    return html


def markdown_page(text: str, *, title: str) -> str:
    """A Markdown document (summary.md) as a standalone HTML page, with no external resources."""
    import mistune  # nbconvert's own Markdown renderer, always installed with it

    body = mistune.create_markdown(escape=False, plugins=["table", "strikethrough"])(text)
    return (f"<!doctype html><html lang=en><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            f"<title>{_html.escape(title)}</title><style>{PAGE_CSS}</style><body>{body}</body></html>\n")
