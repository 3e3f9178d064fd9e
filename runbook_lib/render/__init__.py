"""Rendering: tables, plots, the Markdown summary, HTML. Renderers never decide a status."""
