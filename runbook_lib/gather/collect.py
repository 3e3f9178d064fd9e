"""Gather: every control-plane read, active probe and metric query of a phase, concurrently.

Each item has its own deadline and never raises (a failure is recorded as evidence), so a dead
network costs one deadline, not the sum of them. The result is an ``Evidence`` bundle.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from runbook_lib.evidence import ApiRecord, ErrorInfo, Evidence, Meta
from runbook_lib.params import Params
from runbook_lib.probes import dns, http, postgres, tcp, tls
from runbook_lib.probes.base import ProbeResult
from runbook_lib.secret_input import read_value
from runbook_lib.util import clock


def probe_plan(params: Params, net, *, db_host: str | None) -> dict[str, Callable[[], Awaitable[Any]]]:
    """What to probe, keyed by evidence key. Pure: names come from the parameters."""
    deadline = params.deadlines.probe_s
    jobs: dict[str, Callable[[], Awaitable[Any]]] = {}
    for domain in (params.domains.frontend, params.domains.api):
        jobs[f"dns.{domain}"] = lambda d=domain: dns.probe(f"{d}:443", net, deadline)
        jobs[f"tcp.{domain}"] = lambda d=domain: tcp.probe(f"{d}:443", net, deadline)
        jobs[f"tls.{domain}"] = lambda d=domain: tls.probe(f"{d}:443", net, deadline)
    for url in health_urls(params):
        key = "http." + url.removeprefix("https://")
        jobs[key] = lambda u=url: http.probe(u, net, deadline, expect_status=200)
    if db_host:
        c = params.cloudsql
        password = read_value(env=c.password_env, file=c.password_file, what="cloudsql password")
        jobs["postgres.connect"] = lambda: postgres.sample(
            f"{db_host}:{c.port}", net, deadline, samples=c.probe_samples, concurrency=c.probe_concurrency,
            user=c.user, password=password, database=c.database, sslmode=c.sslmode,
        )
    return jobs


def health_urls(params: Params) -> list[str]:
    api = [f"https://{params.domains.api}{path}" for path in params.domains.health_paths]
    return api + [f"https://{params.domains.frontend}/"]


async def gather(env, phase: str, *, golden_path: bool = False) -> Evidence:
    from runbook_lib.gcp import compute, monitoring, networkmanagement, run, secretmanager, sqladmin, vpcaccess

    params: Params = env.params
    started, now = time.perf_counter(), clock.utc_now()
    net = env.net()
    api = env.api()

    async def run_then_path() -> dict[str, ApiRecord]:
        """Cloud Run first: the Connectivity Test starts from one of its revisions."""
        services = await run.gather(api, params)
        rec = services.get(run.KEY)
        if rec is not None and rec.ok:
            revision, why_not = networkmanagement.source_revision(rec.body, params)
            return {**services, **await networkmanagement.gather(api, params, revision, why_not=why_not)}
        blocked = rec.error if rec is not None and rec.error else ErrorInfo(kind="error", message="no run.services record")
        return {**services, **await networkmanagement.gather(api, params, None, blocked=blocked)}

    async with api:
        sql_host = params.cloudsql.host
        product_jobs = {
            "vpcaccess": vpcaccess.gather(api, params),
            "sqladmin": sqladmin.gather(api, params),
            "compute": compute.gather(api, params),
            "secretmanager": secretmanager.gather(api, params),
            "run": run_then_path(),
        }
        # The database address comes from the parameters or, live, from the instance's private IP;
        # only then can the connection probe start, so fetch SQL first when we need it.
        sql_task = asyncio.ensure_future(product_jobs.pop("sqladmin"))
        if not sql_host:
            sql_records: dict[str, ApiRecord] = await sql_task
            sql_host = database_host(sql_records.get("sqladmin.instance"))
        probes = probe_plan(params, net, db_host=sql_host)
        tasks = {name: asyncio.ensure_future(job) for name, job in product_jobs.items()}
        probe_tasks = {key: asyncio.ensure_future(job()) for key, job in probes.items()}
        metrics_task = asyncio.ensure_future(monitoring.gather(params))
        golden_task = None
        if golden_path:
            from runbook_lib.gather.golden_path import run_golden_path

            golden_task = asyncio.ensure_future(run_golden_path(params, net))
        api_records: dict[str, ApiRecord] = dict(await sql_task)
        for task in tasks.values():
            api_records.update(await task)
        probe_records: dict[str, list[ProbeResult]] = {}
        for key, task in probe_tasks.items():
            result = await task
            probe_records[key] = result if isinstance(result, list) else [result]
        if golden_task is not None:
            probe_records.update(await golden_task)
        metrics = await metrics_task

    meta = Meta(
        phase=phase, target=params.target.name, mode=params.target.mode, now=now,
        time_scale=params.target.time_scale, scenario=params.target.scenario,
        elapsed_s=round(time.perf_counter() - started, 3),
    )
    return Evidence(meta=meta, api=api_records, probes=probe_records, metrics=metrics)


def database_host(record: ApiRecord | None) -> str | None:
    """The instance's PRIVATE address from a ``sqladmin.instance`` record (None if unread or absent)."""
    if record is None or not record.ok or not isinstance(record.body, dict):
        return None
    from runbook_lib.gcp.sqladmin import Instance

    return Instance.from_json(record.body).private_ip
