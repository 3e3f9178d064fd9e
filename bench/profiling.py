"""Where the time goes, for targets that were missed: pyinstrument profiles (``.[bench]`` extra).

Each profiler returns ``{"what", "wall_s", "top_self", "tree"}``: ``top_self`` is pyinstrument's
flat view (self time per frame, library frames included: where the CPU or the wait actually is),
``tree`` its call tree with frames under 3 % hidden. Profiles run in this process: the probes,
the gather and the notebook code (cells executed in-process against a real sandbox); the servers
they talk to are other processes and do not appear.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

TREE_LINES = 45
TOP_LINES = 15


def available() -> bool:
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        return False
    return True


def _summarise(profiler: Any, what: str, wall: float) -> dict[str, Any]:
    options = {"filter_threshold": 0.03}
    tree = profiler.output_text(unicode=False, color=False, processor_options=options)
    flat = profiler.output_text(unicode=False, color=False, flat=True, processor_options=options)
    top = [ln for ln in flat.splitlines() if ln.lstrip()[:1].isdigit()]  # "0.062 pbkdf2_hmac  <built-in>"
    return {"what": what, "wall_s": round(wall, 3), "top_self": top[:TOP_LINES],
            "tree": [ln for ln in tree.splitlines() if ln.strip()][:TREE_LINES]}


def profile_sync(what: str, fn: Callable[[], Any]) -> dict[str, Any]:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")
    started = time.perf_counter()
    profiler.start()
    try:
        fn()
    finally:
        profiler.stop()
    return _summarise(profiler, what, time.perf_counter() - started)


async def _profile_async(what: str, coro_fn: Callable[[], Any]) -> dict[str, Any]:
    """Started inside the task, so awaited time is charged to the await that waited."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="enabled")
    started = time.perf_counter()
    profiler.start()
    try:
        await coro_fn()
    finally:
        profiler.stop()
    return _summarise(profiler, what, time.perf_counter() - started)


# --- the profiles ----------------------------------------------------------------------------------

def blackout_gather() -> dict[str, Any]:
    """The blackout diagnosis' gather, awaited time included (which await held it up)."""
    from runbook_lib.gather.environment import open_environment
    from runbook_lib.sandbox.manager import running

    from .diagnosis import PARAMS_FILE

    with running(PARAMS_FILE, "blackout") as sb:
        env = open_environment(sb.params)
        return asyncio.run(_profile_async("gather('diagnose') on sandbox blackout (async: awaits included)",
                                          lambda: env.gather("diagnose")))


def concurrent_probes(n: int = 100) -> dict[str, Any]:
    """n concurrent probes through 200 ms-delay proxies: HTTP, HTTPS, default-trust HTTP (client side)."""
    from runbook_lib.probes import http
    from runbook_lib.probes.base import NetContext

    from .servers import Spec, bench_servers

    spec = Spec(http_proxies=n, http_proxy_delay_ms=100, https_proxies=n, https_proxy_delay_ms=50)
    out = {}
    with bench_servers(spec) as ports, asyncio.Runner() as loop:
        variants = {
            "http": ([f"http://127.0.0.1:{p}/health" for p in ports["http_proxies"]], NetContext(ca_bundle=ports["ca"])),
            "https": ([f"https://127.0.0.1:{p}/health" for p in ports["https_proxies"]], NetContext(ca_bundle=ports["ca"])),
            "http_default_trust": ([f"http://127.0.0.1:{p}/health" for p in ports["http_proxies"]], NetContext()),
        }
        async def all_at_once(urls: list[str], net: NetContext) -> None:
            await asyncio.gather(*(http.probe(u, net, 10) for u in urls))

        for name, (urls, net) in variants.items():
            loop.run(http.probe(urls[0], net, 10))  # warm-up
            out[name] = profile_sync(f"{n} concurrent http.probe calls, {name}",
                                     lambda urls=urls, net=net: loop.run(all_at_once(urls, net)))
    return out


def probe_costs(samples: int = 40) -> dict[str, Any]:
    """The probes' own work with no delay: what the round-trip model leaves out (client side)."""
    from runbook_lib.probes import http, postgres
    from runbook_lib.probes.base import NetContext

    from .servers import HOSTNAME, PG_DATABASE, PG_USER, Spec, bench_servers

    password = secrets.token_urlsafe(24)
    out = {}
    with bench_servers(Spec(https=True, postgres=True, delays_ms=[0]), pg_password=password) as ports, \
            asyncio.Runner() as loop:
        pg_port, https_port = ports["proxies"]["pg"]["0"], ports["proxies"]["https"]["0"]
        net = NetContext(connect_to={f"{HOSTNAME}:443": f"127.0.0.1:{https_port}"}, ca_bundle=ports["ca"])

        async def pg_serial() -> None:
            for _ in range(samples):
                await postgres.probe(f"127.0.0.1:{pg_port}", NetContext(), 10, user=PG_USER, password=password,
                                     database=PG_DATABASE, sslmode="require")

        async def https_serial() -> None:
            for _ in range(samples):
                await http.probe(f"https://{HOSTNAME}/health", net, 10)

        loop.run(pg_serial())  # warm-up
        out["postgres"] = profile_sync(f"{samples} PostgreSQL probes one after another, 0 ms injected",
                                       lambda: loop.run(pg_serial()))
        out["https"] = profile_sync(f"{samples} HTTPS probes one after another, 0 ms injected",
                                    lambda: loop.run(https_serial()))
    return out


def _code_cells(notebook: Path) -> list[str]:
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    return [c.source for c in nb.cells
            if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]


def demo_phases(scenario: str = "issue-1278") -> dict[str, Any]:
    """The three notebooks' code executed in this process (no kernel), one profile per phase.

    Kernel start-up and the notebook import are measured apart (end_to_end.kernel_starts); this
    shows where each phase's own time goes, against a real sandbox, with the plan applied.
    """
    from runbook_lib.params import dump_params, load_params
    from runbook_lib.run import report
    from runbook_lib.run.runner import NOTEBOOK_DIR
    from runbook_lib.sandbox.manager import running

    from .diagnosis import PARAMS_FILE

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="runbook-bench-profile-") as tmp, running(PARAMS_FILE, scenario) as sb:
        report_dir = Path(tmp)
        params_file = report_dir / "parameters.yaml"
        params_file.write_text(dump_params(sb.params))
        for phase_name in report.PHASES:
            ns: dict[str, Any] = {"params_file": str(params_file), "overrides": {}, "report_dir": str(report_dir)}
            cells = _code_cells(NOTEBOOK_DIR / f"{report.NOTEBOOKS[phase_name]}.ipynb")

            def execute(cells: list[str] = cells, ns: dict[str, Any] = ns, name: str = phase_name) -> None:
                with contextlib.redirect_stdout(io.StringIO()):
                    for i, src in enumerate(cells):
                        exec(compile(src, f"<{name} cell {i}>", "exec"), ns)  # noqa: S102 - our own notebooks

            out[phase_name] = profile_sync(f"phase {phase_name}: notebook cells in-process", execute)
            if phase_name == "diagnose":  # confirm the plan phase 1 implies, as `runbook plan` + `run -p` do
                from runbook_lib.remediate import build_plan

                plan_id = build_plan(ns["results"], ns["evidence"], ns["phase"].params).id
                params_file.write_text(dump_params(load_params(
                    params_file, {"remediation.apply": True, "remediation.confirm": plan_id})))
    return out


def import_footprint() -> dict[str, Any]:
    from .memory import import_footprint as measure

    return {"imports": measure()}


IDLE = ("epoll.poll", "select", "[await]", "Event.wait", "Handle._run", "_run_once", "[self]")


def waiting_s(summary: dict[str, Any]) -> float:
    """Self time in the event loop's poll: the profiled code waiting for I/O, timers or sleeps."""
    total = 0.0
    for line in summary.get("top_self", []):
        secs, _, rest = line.strip().partition(" ")
        if rest.strip().startswith(("epoll.poll", "select", "[await]")):
            total += float(secs)
    return total


def top_busy(summary: dict[str, Any], n: int = 2) -> list[tuple[float, str]]:
    """The heaviest frames of a profile that are work, not waiting."""
    out = []
    for line in summary.get("top_self", []):
        secs, _, rest = line.strip().partition(" ")
        name = rest.strip().split("  ")[0]
        if any(name.startswith(i) or i in name for i in IDLE):
            continue
        try:
            out.append((float(secs), name))
        except ValueError:
            continue
    return out[:n]


def finding(name: str, result: dict[str, Any]) -> str:
    """One sentence for the results table from a profile."""
    if name == "import_footprint":
        imp = result["imports"]
        alone = imp.get("pandas + matplotlib alone", {}).get("rss_bytes", 0) - imp.get("bare interpreter", {}).get("rss_bytes", 0)
        via_init = [role for role, r in imp.items() if r.get("heavy", {}).get("pandas", "").startswith("runbook_lib/__init__")
                    and not role.startswith("kernel")]
        return ("imports alone: " + ", ".join(f"{role.split(' (')[0]} {r.get('rss_bytes', 0) / 1e6:.0f} MB"
                                                 for role, r in imp.items() if "rss_bytes" in r)
                + (f"; pandas + matplotlib (~{alone / 1e6:.0f} MB, {imp['pandas + matplotlib alone']['import_s']:.2f} s) "
                   f"reach the {' and '.join(r.split(' (')[0] for r in via_init)} only through runbook_lib/__init__.py "
                   "(render.plots, render.tables), which they never use" if via_init else ""))
    subs = [result] if "what" in result else [v for v in result.values() if isinstance(v, dict) and "what" in v]
    parts = []
    for sub in subs:
        busy = top_busy(sub)
        waited = waiting_s(sub)
        parts.append(f"{sub['what']} ({sub['wall_s']:.2f} s"
                     + (f", {waited:.2f} s of it waiting on I/O or timers" if waited >= 0.05 else "") + "): "
                     + ("busiest " + ", ".join(f"{frame} {secs:.2f} s" for secs, frame in busy) if busy else "mostly waiting"))
    return "; ".join(parts)


PROFILERS: dict[str, Callable[[], dict[str, Any]]] = {
    "blackout_gather": blackout_gather,
    "concurrent_probes": concurrent_probes,
    "probe_costs": probe_costs,
    "demo_phases": demo_phases,
    "import_footprint": import_footprint,
}
