"""Plots for the reports. Figures are built without pyplot so each shows exactly once.

Durations are drawn in real-world seconds (sandbox measurements divided by the time scale), so
the 35 s database threshold is the same line on every target.
"""
from __future__ import annotations

from matplotlib.figure import Figure

from runbook_lib.evidence import Evidence
from runbook_lib.params import Params


def enable_notebook_display(dpi: int = 110) -> None:
    """Let a notebook show the ``Figure`` objects we return as PNG (embedded in the HTML report).

    Figures built without pyplot have no display formatter until one is registered; doing it here
    keeps notebooks free of ``%matplotlib`` magic. Outside IPython this does nothing.
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        select_figure_formats(shell, {"png"}, bbox_inches="tight", dpi=dpi)


PHASE_COLOURS = {"resolve": "#9aa0a6", "connect": "#4285f4", "tls": "#a142f4", "auth": "#f29900",
                 "processing": "#f29900", "query": "#34a853", "transfer": "#34a853",
                 "upgrade": "#f29900", "first_message": "#34a853"}


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def db_latency(ev: Evidence, params: Params) -> Figure:
    """Database connection time: distribution against the threshold, and per sample over time."""
    scale = ev.meta.time_scale or 1.0
    samples = ev.probes.get("postgres.connect", [])
    threshold = params.thresholds.db_connect_s
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    fig.suptitle(f"Database connections via {params.connector.name} ({len(samples)} samples"
                 + (f", time scale {scale:g}" if scale != 1 else "") + ")")
    if not samples:
        _note(ax1, "no connection samples (no database address, or probing was skipped)")
        _note(ax2, "")
        return fig
    ok = [s.total_s / scale for s in samples if s.ok]
    bad = [s for s in samples if not s.ok]
    top = max([threshold * 1.15] + [s.total_s / scale * 1.05 for s in samples])
    bins = [top * i / 40 for i in range(41)]  # one scale for both, so the threshold sits in context
    if ok:
        ax1.hist(ok, bins=bins, color="#4285f4", label=f"connected ({len(ok)})")
    if bad:
        ax1.hist([s.total_s / scale for s in bad], bins=bins, color="#ea4335", alpha=0.8,
                 label=f"failed ({len(bad)}): " + ", ".join(sorted({s.reason.value for s in bad if s.reason})))
    ax1.set_xlim(0, top)
    ax1.axvline(threshold, color="#c5221f", linestyle="--", label=f"threshold {threshold:g} s")
    ax1.set_xlabel("time to connect, TLS, authenticate and first query (real-world s)")
    ax1.set_ylabel("samples")
    ax1.legend(fontsize=8)
    for s in samples:
        colour = "#4285f4" if s.ok else "#ea4335"
        ax2.scatter(s.started_s / scale, s.total_s / scale, c=colour, marker="o" if s.ok else "x", s=28)
    ax2.axhline(threshold, color="#c5221f", linestyle="--")
    ax2.set_xlabel("sample start (real-world s into the probe)")
    ax2.set_ylabel("duration (real-world s)")
    ax2.set_title("per sample (x = failed)", fontsize=9)
    return fig


def http_phases(ev: Evidence) -> Figure:
    """Where each endpoint's time goes: resolve, connect, TLS, server processing, transfer."""
    scale = ev.meta.time_scale or 1.0
    keys = [k for k in ev.probes if k.startswith("http.")]
    fig = Figure(figsize=(11, 1.0 + 0.55 * max(1, len(keys))), layout="constrained")
    ax = fig.subplots()
    if not keys:
        _note(ax, "no HTTP probes in this evidence")
        return fig
    widest = 0.0
    for row, key in enumerate(keys):
        r = ev.probes[key][0]
        left = 0.0
        for phase in ("resolve", "connect", "tls", "processing", "transfer"):
            width = r.phases.get(phase, 0.0) / scale
            ax.barh(row, width, left=left, color=PHASE_COLOURS[phase], label=phase if row == 0 else None)
            left += width
        status = r.info.get("status")
        label = f"HTTP {status}" if r.ok else (r.reason.value if r.reason else "failed")
        ax.text(left, row, f"  {label}", va="center", fontsize=8, color="#202124" if r.ok else "#c5221f")
        widest = max(widest, left)
    ax.set_xlim(0, widest * 1.35 or 1)  # room for the status label at the end of each bar
    ax.set_yticks(range(len(keys)), [k.removeprefix("http.") for k in keys], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("real-world seconds")
    ax.set_title("Health endpoints: time per phase", fontsize=10, pad=22)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=5, frameon=False)
    return fig


MONITORING_PANELS = [
    ("monitoring.connector_instances", "connector instances"),
    ("monitoring.sql_backends", "Cloud SQL connections"),
    ("monitoring.lb_latency_p95", "load balancer latency (ms)"),
    ("monitoring.run_latency_p95", "Cloud Run latency p95 (ms)"),
]


def monitoring(ev: Evidence, params: Params, panels: list[str] | None = None) -> Figure:
    """Cloud Monitoring series: connector instances, database connections, latency percentiles.

    ``panels`` picks some of MONITORING_PANELS (by key) to sit next to the checks they explain.
    The connector panel draws the max the connector is configured with (what it is pinned at when
    saturated) as well as the max the parameters require. An empty panel says why.
    """
    import textwrap
    from datetime import timedelta

    import matplotlib.dates as mdates

    chosen = [p for p in MONITORING_PANELS if panels is None or p[0] in panels]
    minutes = params.monitoring.lookback_minutes
    span = timedelta(minutes=minutes)
    window = (ev.now - span, ev.now + span / 20)
    rows, cols = ((len(chosen) + 1) // 2, 2) if len(chosen) > 1 else (1, 1)
    fig = Figure(figsize=(11 if cols == 2 else 7, 2.7 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    fig.suptitle(f"Cloud Monitoring, the {minutes} min before {ev.now:%Y-%m-%d %H:%M} UTC "
                 f"(monitoring.lookback_minutes)", fontsize=10)
    for ax in axes[len(chosen):]:
        ax.set_visible(False)
    for ax, (key, title) in zip(axes, chosen, strict=False):  # the spare axes are hidden above
        ax.set_title(title, fontsize=9)
        keys = [key]
        if key == "monitoring.lb_latency_p95":
            keys = ["monitoring.lb_latency_p50", key, "monitoring.lb_latency_p99"]
        drawn = False
        why = []
        for k in keys:
            rec = ev.metrics.get(k)
            if rec is None:
                why.append("not queried in this phase (monitoring.enabled is off, or the target has no monitoring)")
                continue
            if not rec.ok:
                why.append("the query failed: " + (rec.error.message if rec.error else "no reason recorded"))
                continue
            if not rec.series:
                why.append(f"metric not published: no time series of {rec.metric_type} in the window "
                           "(a new or idle resource reports none)")
                continue
            for s in rec.series:
                if not s.points:
                    continue
                pts = sorted(s.points, key=lambda p: p.t)
                names = [v for lk, v in s.labels.items() if lk not in ("project_id", "location", "region", "zone")]
                label = k.rsplit("_", 1)[-1] if len(keys) > 1 else ", ".join(names)
                ax.plot([p.t for p in pts], [p.v for p in pts], marker=".", label=label)
                drawn = True
            if not drawn:
                why.append(f"no data points of {rec.metric_type} in the window")
        if key == "monitoring.connector_instances" and drawn:
            configured = _configured_max(ev)
            required = params.connector.max_instances
            if configured is not None and configured != required:
                ax.axhline(configured, color="#e37400", linestyle="-", linewidth=2,
                           label=f"configured max ({configured}): the ceiling it is pinned at")
            ax.axhline(required, color="#c5221f", linestyle="--",
                       label=f"required max ({required})" + (" = configured" if configured == required else ""))
            ax.set_ylim(bottom=0, top=max(required, configured or 0) * 1.15)
        if drawn:
            ax.set_xlim(*window)
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
            ax.legend(fontsize=7)
            ax.tick_params(axis="x", labelsize=7)
        else:
            text = "\n".join(textwrap.wrap(why[0] if why else "no data", 60))
            _note(ax, f"empty: {text}")
    return fig


def _configured_max(ev: Evidence) -> int | None:
    """The connector's own maxInstances, as the API returned it (None when it was not read)."""
    rec = ev.api.get("vpcaccess.connector")
    if rec is None or not rec.ok or not isinstance(rec.body, dict):
        return None
    value = rec.body.get("maxInstances")
    return int(value) if value is not None else None


def golden_waterfall(steps: list[dict], *, time_scale: float = 1.0) -> Figure:
    """Golden path steps as a waterfall: when each began and how long it took."""
    fig = Figure(figsize=(11, 0.8 + 0.5 * max(1, len(steps))), layout="constrained")
    ax = fig.subplots()
    if not steps:
        _note(ax, "the golden path was not walked")
        return fig
    for row, step in enumerate(steps):
        start, dur = step["start_s"] / time_scale, max(step["duration_s"], 1e-4) / time_scale
        colour = "#34a853" if step["ok"] else "#ea4335"
        ax.barh(row, dur, left=start, color=colour)
        ax.text(start + dur, row, f"  {dur:.2f} s" + ("" if step["ok"] else f"  {step.get('reason', '')[:48]}"),
                va="center", fontsize=8)
    end = max(s["start_s"] + s["duration_s"] for s in steps) / time_scale
    ax.set_xlim(0, end * 1.6 or 1)  # room for the labels
    ax.set_yticks(range(len(steps)), [s["name"] for s in steps], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("real-world seconds since the golden path started")
    ax.set_title("Golden path waterfall", fontsize=10)
    return fig
