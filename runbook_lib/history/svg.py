"""Inline SVG line charts for reports/index.html: no scripts, no external files, no matplotlib.

One chart = series of (run index, value) points over the same runs, plus optional horizontal
reference lines (the 35 s database threshold). A missing value is a gap, not a zero.
"""
from __future__ import annotations

import html
from typing import Sequence

COLORS = ("#1a73e8", "#d93025", "#188038", "#e37400", "#9334e6", "#12b5cb", "#5f6368")
W, H, LEFT, RIGHT, TOP, BOTTOM = 520, 210, 48, 12, 36, 28


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.1f}"


def line_chart(title: str, labels: Sequence[str], series: dict[str, list[float | None]],
               lines: dict[str, float] | None = None, unit: str = "") -> str:
    lines = lines or {}
    values = [v for vs in series.values() for v in vs if v is not None] + list(lines.values())
    if not values or not labels:
        return ""
    lo, hi = min(0.0, min(values)), max(values)
    hi = hi if hi > lo else lo + 1
    hi += (hi - lo) * 0.08
    n = len(labels)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return TOP + ph - (v - lo) / (hi - lo) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" '
           f'aria-label="{html.escape(title)}" style="font:11px system-ui,sans-serif">',
           f'<text x="{LEFT}" y="14" font-weight="600">{html.escape(title)}</text>',
           f'<line x1="{LEFT}" y1="{TOP + ph}" x2="{W - RIGHT}" y2="{TOP + ph}" stroke="#999"/>',
           f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}" stroke="#999"/>']
    for v in (lo, (lo + hi) / 2, hi):
        out.append(f'<text x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#555">{_fmt(v)}{html.escape(unit)}</text>')
    out.append(f'<text x="{LEFT}" y="{H - 8}" fill="#555">{html.escape(labels[0])}</text>')
    if n > 1:
        out.append(f'<text x="{W - RIGHT}" y="{H - 8}" text-anchor="end" fill="#555">{html.escape(labels[-1])}</text>')
    for name, v in lines.items():
        out.append(f'<line x1="{LEFT}" y1="{y(v):.1f}" x2="{W - RIGHT}" y2="{y(v):.1f}" stroke="#c5221f" '
                   f'stroke-dasharray="5 4"/><text x="{W - RIGHT}" y="{y(v) - 3:.1f}" text-anchor="end" '
                   f'fill="#c5221f">{html.escape(name)}</text>')
    legend_x = LEFT + 8
    for k, (name, vs) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        run: list[str] = []
        segments: list[list[str]] = []
        for i, v in enumerate(vs):
            if v is None:
                if run:
                    segments.append(run)
                run = []
                continue
            run.append(f"{x(i):.1f},{y(v):.1f}")
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}"/>')
        if run:
            segments.append(run)
        for seg in segments:
            if len(seg) > 1:
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{" ".join(seg)}"/>')
        latest = next((v for v in reversed(vs) if v is not None), None)
        # the series' title: every value, oldest first (a hover shows them; no script needed)
        values = " ".join("-" if v is None else _fmt(v) for v in vs)
        text = f"■ {name}" + ("" if latest is None else f" {_fmt(latest)}{unit}")
        out.append(f'<text x="{legend_x}" y="{TOP - 8}" fill="{color}">{html.escape(text)}'
                   f'<title>{html.escape(name)}: {values}</title></text>')
        legend_x += 7 * len(text) + 14
    out.append("</svg>")
    return "".join(out)
