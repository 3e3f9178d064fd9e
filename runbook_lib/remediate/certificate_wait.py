"""The wait condition of ``cert.detach-legacy``: the managed certificate is ACTIVE *and* clients get it.

Removing the legacy certificate from the proxy while the managed one is still PROVISIONING (it
becomes ACTIVE only once DNS points at the load balancer, up to about an hour) would leave the
domains without a certificate. So the applier asks ``detach_ready`` before it sends the
detach request: it polls the managed certificate with backoff and, once ACTIVE, probes TLS on both
domains; the judgement is ``checks.certificates.managed_served`` (pure). Bounded by
``remediation.wait_s``; when the condition does not hold by then the action is left pending
with the reason (never forced, never a replace).
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from runbook_lib.checks.certificates import managed_served
from runbook_lib.gcp import compute
from runbook_lib.gcp.api import last_segment
from runbook_lib.gcp.client import ApiClient
from runbook_lib.params import Params
from runbook_lib.probes import tls
from runbook_lib.probes.base import NetContext, ProbeResult
from runbook_lib.remediate import kinds

FIRST_DELAY_S, MAX_DELAY_S = 0.5, 10.0


def legacy_names(action_body: dict, proxy: dict | None) -> list[str]:
    """What a detach request removes: on the proxy now, absent from the list it sets."""
    keep = {last_segment(u) for u in action_body.get("sslCertificates") or []}
    return [n for n in (last_segment(u) for u in (proxy or {}).get("sslCertificates") or []) if n not in keep]


async def detach_ready(
    api: ApiClient, params: Params, legacy: list[str], *, net: NetContext | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, clock: Callable[[], float] = time.monotonic,
    probe: Callable[..., Awaitable[ProbeResult]] = tls.probe,
) -> tuple[bool, str]:
    """``(True, how)`` once the managed certificate is ACTIVE and served for both domains, else
    ``(False, why)`` when ``remediation.wait_s`` has passed. Polls with exponential backoff."""
    lb, domains = params.load_balancer, (params.domains.frontend, params.domains.api)
    net = net or NetContext(connect_to=dict(params.network.connect_to), ca_bundle=params.network.ca_bundle)
    give_up = clock() + params.remediation.wait_s
    delay = FIRST_DELAY_S
    legacy_certs = []
    for name in legacy:  # their serials tell a legacy certificate from the managed one on the wire
        rec = await api.read("wait", "compute", compute.global_path(params, f"sslCertificates/{name}"))
        if rec.ok:
            legacy_certs.append(compute.SslCertificate.from_json(rec.body))
    while True:
        rec = await api.read("wait", "compute", compute.global_path(params, f"sslCertificates/{lb.certificate_name}"))
        if not rec.ok:
            why = f"{lb.certificate_name} could not be read: {rec.error.message if rec.error else rec.status}"
        else:
            managed = compute.SslCertificate.from_json(rec.body)
            if managed.managed_status == "ACTIVE":
                results = await asyncio.gather(*(probe(f"{d}:443", net, params.deadlines.probe_s) for d in domains))
                ok, why = managed_served(dict(zip(domains, results, strict=True)), managed, legacy_certs)
                if ok:
                    return True, why
            else:
                per_domain = ", ".join(f"{d} {s}" for d, s in sorted(managed.domain_status.items()))
                why = f"{lb.certificate_name} is {managed.managed_status or 'unknown'}" + (f" ({per_domain})" if per_domain else "")
        remaining = give_up - clock()
        if remaining <= 0:
            return False, (f"left pending after {params.remediation.wait_s:g} s: {why}. {', '.join(legacy)} stay on "
                           f"{lb.https_proxy} (still served); re-run the plan once {lb.certificate_name} is ACTIVE and "
                           "served (a managed certificate needs DNS pointing at the load balancer, up to about an hour)")
        await sleep(min(delay, remaining))
        delay = min(delay * 2, MAX_DELAY_S)


# -- the two hooks the applier calls for kind ``cert.detach-legacy`` ---------------------------------

KIND = "cert.detach-legacy"


def detach_pending(action, before: list, params: Params) -> list:
    """Idempotency: the detach is still needed while the proxy (``before[0]``) holds a certificate
    outside the list the request sets."""
    return list(action.calls) if action.calls and legacy_names(action.calls[0].body or {}, kinds.current(before)) else []


async def detach_ready_hook(api: ApiClient, params: Params, action, before: list) -> tuple[bool, str]:
    """Before sending: wait (bounded) for the managed certificate to be ACTIVE and served; the
    applier records ``pending`` with the reason when this answers False."""
    return await detach_ready(api, params, legacy_names(action.calls[0].body or {}, kinds.current(before)))


async def wait_certificate_active(api: ApiClient, params: Params) -> str:
    """Managed certificates take minutes (sandbox: seconds) to become ACTIVE; wait with backoff, bounded
    by ``remediation.wait_s``. The ``finish`` of cert.create and cert.attach (playbook.py)."""
    give_up = time.monotonic() + params.remediation.wait_s
    status = "unknown"
    path = compute.global_path(params, f"sslCertificates/{params.load_balancer.certificate_name}")
    delay = max(0.05, min(1.0, params.remediation.wait_s / 20))
    while True:
        rec = await api.read("wait", "compute", path)
        status = (rec.body or {}).get("managed", {}).get("status", "unknown") if rec.ok else "unknown"
        remaining = give_up - time.monotonic()
        if status == "ACTIVE" or remaining <= 0:
            return status
        await api.pause(min(delay, remaining))
        delay = min(delay * 1.5, 10.0)


# Registered with the action kind (remediate/kinds.py): the applier stays generic.
kinds.register(KIND, pending=detach_pending, ready=detach_ready_hook)
