"""Certificates: what clients see (DNS, TCP, TLS handshake, chain, name, expiry) for each domain,
then the control plane (a Google-managed certificate for both domains, ACTIVE, on the proxy).

A failed earlier step makes the later ones SKIP with the reason, so a person reads one cause.
"""
from __future__ import annotations

from runbook_lib.checks._util import (
    ERROR,
    FAIL,
    PASS,
    SKIP,
    WARN,
    Maker,
    covers,
    days_between,
    domain_label,
    first_failed,
    fmt_days,
    unavailable,
    usable,
)
from runbook_lib.evidence import Evidence
from runbook_lib.gcp import compute
from runbook_lib.gcp.compute import SslCertificate, TargetHttpsProxy
from runbook_lib.gcp.timefmt import parse_time
from runbook_lib.params import Params
from runbook_lib.probes.base import ProbeResult, Reason
from runbook_lib.results import CheckResult, Severity

make = Maker("certificates", Severity.critical)
CERTS, PROXY = compute.SSL_CERTIFICATES, compute.TARGET_PROXY

# The handshake finished; the client then refused the certificate for this reason.
REFUSED_CERT = (Reason.tls_verify, Reason.hostname_mismatch, Reason.expired)


def evaluate(ev: Evidence, params: Params) -> list[CheckResult]:
    results: list[CheckResult] = []
    for domain in (params.domains.frontend, params.domains.api):
        results += client_view(ev, params, domain)
    chosen, managed_result = managed(ev, params)
    return results + [managed_result, attached(ev, params, chosen)]


# -- what a client sees ---------------------------------------------------------------------------

STEPS = ("dns", "tcp", "handshake", "chain", "hostname", "expiry")
# (step, probe kind, what a failure is called, what success looks like)
NETWORK_STEPS = (("dns", "dns", "DNS resolution failed", "resolves"),
                 ("tcp", "tcp", "TCP connect failed", "connects"),
                 ("handshake", "tls", "TLS handshake failed", "completes"))


def _titles(domain: str) -> dict[str, str]:
    return {
        "dns": f"{domain} resolves", "tcp": f"{domain}:443 accepts TCP", "handshake": f"TLS handshake with {domain}",
        "chain": f"Certificate chain for {domain} is trusted", "hostname": f"Certificate names {domain}",
        "expiry": f"Certificate for {domain} is not near expiry",
    }


def _fixes(domain: str, params: Params) -> dict[str, str]:
    rules = f"`gcloud compute forwarding-rules list --global --project {params.project}`"
    proxy = params.load_balancer.https_proxy
    return {
        "dns": f"create A/AAAA records for {domain} pointing at the load balancer's IP ({rules})",
        "tcp": f"check the HTTPS forwarding rule on port 443 and the target proxy {proxy} ({rules})",
        "handshake": f"check that the proxy {proxy} has a certificate and answers TLS (see cert.attached)",
    }


def _summary(sample: ProbeResult) -> str:
    return f"{sample.reason.value if sample.reason else 'error'}" + (f" ({sample.detail})" if sample.detail else "")


def client_view(ev: Evidence, params: Params, domain: str) -> list[CheckResult]:
    """DNS, TCP, handshake from the probes; then chain, name and expiry from the served certificate.
    The first step that fails ends the walk: the later ones SKIP with its reason."""
    label = domain_label(domain)
    ids = {step: f"tls.{label}.{step}" for step in STEPS}
    titles, fixes = _titles(domain), _fixes(domain, params)
    out: list[CheckResult] = []
    for i, (step, kind, failure, expected) in enumerate(NETWORK_STEPS):
        key = f"{kind}.{domain}"
        samples = ev.probes.get(key) or []
        bad = first_failed(samples)
        if not samples:
            out.append(make(ids[step], titles[step], ERROR, evidence=[key],
                            reason=f"no {kind} probe recorded for {domain} (the collector did not run it)"))
            blocked = f"no {kind} probe result for {domain}"
        elif bad is None or (step == "handshake" and bad.reason in REFUSED_CERT):
            out.append(make(ids[step], titles[step], PASS, observed=_observed(step, samples[-1]), evidence=[key]))
            continue
        else:
            count = f" ({sum(not s.ok for s in samples)}/{len(samples)} samples)" if len(samples) > 1 else ""
            out.append(make(ids[step], titles[step], FAIL, observed=_summary(bad), expected=expected, evidence=[key],
                            reason=f"{failure}: {_summary(bad)}{count}", remediation=fixes[step]))
            blocked = f"{failure}: {bad.reason.value if bad.reason else 'error'}"
        return out + [make(ids[s], titles[s], SKIP, reason=blocked, evidence=[key]) for s in STEPS[i + 1:]]
    tls = ev.probes[f"tls.{domain}"]
    sample = first_failed(tls) or tls[-1]
    cert = sample.info.get("cert")
    if not cert:
        why = f"the served certificate could not be read: {sample.info.get('cert_error', 'no details recorded')}"
        return out + [make(ids[s], titles[s], SKIP, reason=why, evidence=[f"tls.{domain}"]) for s in STEPS[3:]]
    return out + [chain(ids["chain"], titles["chain"], domain, sample, cert, params, ev),
                  hostname(ids["hostname"], titles["hostname"], domain, cert, params, ev),
                  expiry(ids["expiry"], titles["expiry"], domain, ev, cert, params)]


def _observed(step: str, sample: ProbeResult) -> str:
    info = sample.info
    if step == "dns":
        addrs = ", ".join(info.get("addresses") or []) or "?"
        return f"{addrs} (connect_to override; DNS not consulted)" if info.get("override") else addrs
    if step == "tcp":
        return f"connected to {info.get('peer', '?')} in {sample.phases.get('connect', 0.0):.3f} s"
    return f"{info.get('tls_version') or 'TLS'} in {sample.phases.get('tls', 0.0):.3f} s"


def _use_managed(params: Params, ev: Evidence | None = None) -> str:
    proxy = _proxy(ev) if ev is not None else None
    current = proxy.certificate_names if proxy else []
    name = params.load_balancer.certificate_name
    try:
        attach = f"`{compute.attach_managed_certificate(params, current).gcloud}`"
    except ValueError as exc:  # the proxy is full
        attach = str(exc)
    return (f"serve the Google-managed certificate {name} for both domains "
            "(see cert.managed and cert.attached): "
            f"`{compute.insert_managed_certificate(params).gcloud}`; add it beside the current certificates: "
            f"{attach}; remove the old ones only once {name} is ACTIVE and served")


def chain(cid: str, title: str, domain: str, sample: ProbeResult, cert: dict, params: Params,
          ev: Evidence | None = None) -> CheckResult:
    key = f"tls.{domain}"
    issuer = cert.get("issuer", "?")
    if cert.get("verified") or sample.reason in (Reason.hostname_mismatch, Reason.expired):
        # OpenSSL checks the name and the dates only after it has built a trusted chain.
        return make(cid, title, PASS, observed=f"issued by {issuer}", expected="chains to a trusted CA", evidence=[key])
    return make(cid, title, FAIL, observed=f"issued by {issuer}: {cert.get('verify_error') or sample.detail}",
                expected="chains to a trusted CA", evidence=[key],
                reason="clients refuse the certificate: it does not chain to a CA they trust",
                remediation=_use_managed(params, ev))


def hostname(cid: str, title: str, domain: str, cert: dict, params: Params, ev: Evidence | None = None) -> CheckResult:
    names = list(cert.get("sans") or []) or ([cert["subject"]] if cert.get("subject") else [])
    observed = ", ".join(names) or "no names"
    key = f"tls.{domain}"
    if covers(names, domain):
        return make(cid, title, PASS, observed=observed, expected=domain, evidence=[key])
    return make(cid, title, FAIL, observed=observed, expected=domain, evidence=[key],
                reason=f"the served certificate does not name {domain}: browsers and WebSocket clients refuse it",
                remediation=_use_managed(params, ev))


def expiry(cid: str, title: str, domain: str, ev: Evidence, cert: dict, params: Params) -> CheckResult:
    d = params.domains
    evidence = [f"tls.{domain}"]
    not_after, not_before = parse_time(cert.get("not_after")), parse_time(cert.get("not_before"))
    expected = f"valid for more than {d.expiry_warn_days} days"
    if not_after is None:
        return make(cid, title, ERROR, expected=expected, evidence=evidence,
                    reason=f"the certificate's expiry date could not be read ({cert.get('not_after')!r})")
    left = days_between(not_after, ev.now)
    observed = f"expires {not_after:%Y-%m-%d %H:%M} UTC ({fmt_days(left)} left)"
    numbers = {"days_left": float(left)}
    fix = ("a Google-managed certificate renews itself; " + _use_managed(params, ev))
    if not_before is not None and not_before > ev.now:
        return make(cid, title, FAIL, observed=f"not valid before {not_before:%Y-%m-%d %H:%M} UTC", expected=expected,
                    evidence=evidence, measurements=numbers, reason="the certificate is not valid yet", remediation=fix)
    if left < 0:
        return make(cid, title, FAIL, observed=f"expired {not_after:%Y-%m-%d %H:%M} UTC ({fmt_days(-left)} ago)",
                    expected=expected, evidence=evidence, measurements=numbers, reason="the certificate has expired", remediation=fix)
    if left < d.expiry_fail_days:
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=evidence, measurements=numbers,
                    reason=f"fewer than {d.expiry_fail_days} days left", remediation=fix)
    if left < d.expiry_warn_days:
        return make(cid, title, WARN, observed=observed, expected=expected, evidence=evidence, measurements=numbers,
                    reason=f"fewer than {d.expiry_warn_days} days left", remediation=fix)
    return make(cid, title, PASS, observed=observed, expected=expected, evidence=evidence, measurements=numbers)


# -- the control plane ----------------------------------------------------------------------------

def _proxy(ev: Evidence) -> TargetHttpsProxy | None:
    rec = ev.api.get(PROXY)
    return TargetHttpsProxy.from_json(rec.body) if usable(rec) else None


def managed(ev: Evidence, params: Params) -> tuple[str | None, CheckResult]:
    """``(name of the managed certificate that should be served, result)``."""
    cid, title = "cert.managed", "A Google-managed certificate covers both domains and is ACTIVE"
    domains = [params.domains.frontend, params.domains.api]
    expected = f"a MANAGED certificate for {' and '.join(domains)}, status ACTIVE"
    rec = ev.api.get(CERTS)
    if not usable(rec):
        return None, unavailable(make, cid, title, rec, CERTS, expected=expected)
    certs = compute.items(rec.body, SslCertificate)
    proxy = _proxy(ev)
    on_proxy = set(proxy.certificate_names) if proxy else set()
    both = [c for c in certs if c.type == "MANAGED" and all(covers(c.domains, d) for d in domains)]
    create = f"`{compute.insert_managed_certificate(params).gcloud}`"
    if not both:
        partial = [f"{c.name} ({c.type.lower()}: {', '.join(c.domains) or 'no names'})" for c in certs
                   if any(covers(c.domains, d) for d in domains)]
        observed = "none" + (f"; partial or self-managed: {'; '.join(partial)}" if partial else "")
        return None, make(cid, title, FAIL, observed=observed, expected=expected, evidence=[CERTS],
                          reason=f"no Google-managed certificate names both {' and '.join(domains)}",
                          remediation=f"create it, then attach it to the proxy (cert.attached): {create}")
    cert = sorted(both, key=lambda c: (c.managed_status != "ACTIVE", c.name not in on_proxy,
                                       c.name != params.load_balancer.certificate_name, c.name))[0]
    per_domain = "; ".join(f"{d}: {s}" for d, s in sorted(cert.domain_status.items())) or "no per-domain status"
    observed = f"{cert.name} {cert.managed_status or 'status unknown'} ({per_domain})"
    if cert.managed_status == "ACTIVE":
        return cert.name, make(cid, title, PASS, observed=observed, expected=expected, evidence=[CERTS])
    return cert.name, _not_active(cid, title, cert, observed, expected, params, on_proxy)


def _not_active(cid: str, title: str, cert: SslCertificate, observed: str, expected: str, params: Params,
                on_proxy: set[str]) -> CheckResult:
    status_of = cert.domain_status
    failing = {d: s for d, s in status_of.items() if s.startswith("FAILED")}
    describe = (f"`gcloud compute ssl-certificates describe {cert.name} --global "
                f"--format='get(managed.domainStatus)' --project {params.project}`")
    not_visible = sorted(d for d, s in failing.items() if s == "FAILED_NOT_VISIBLE")
    caa = sorted(d for d, s in failing.items() if s.startswith("FAILED_CAA"))
    rate = sorted(d for d, s in failing.items() if s == "FAILED_RATE_LIMITED")
    advice = []
    if not_visible:
        advice.append(f"point {' and '.join(not_visible)} A/AAAA records at the load balancer IP "
                      f"(`gcloud compute forwarding-rules list --global --project {params.project}`), then wait; "
                      f"see the per-domain status: {describe}")
    if caa:
        advice.append(f"a CAA record on {' and '.join(caa)} forbids Google's CA: add `CAA 0 issue \"pki.goog\"` "
                      "(and letsencrypt.org) or remove the restriction, then wait")
    if rate:
        advice.append(f"the CA rate-limited issuance for {' and '.join(rate)}: wait before retrying and do not "
                      "recreate the certificate repeatedly")
    if cert.name not in on_proxy:
        advice.append(f"attach it to {params.load_balancer.https_proxy}: provisioning only completes for a "
                      "certificate the load balancer serves (see cert.attached)")
    status = cert.managed_status or "unknown"
    if status in ("PROVISIONING_FAILED", "PROVISIONING_FAILED_PERMANENTLY", "RENEWAL_FAILED"):
        advice.append(f"recreate it once the cause is fixed: `gcloud compute ssl-certificates delete {cert.name} "
                      f"--global --project {params.project}`; `{compute.insert_managed_certificate(params).gcloud}`")
    if failing or status != "PROVISIONING":
        reason = (f"the managed certificate is {status}"
                  + (f"; per-domain failures: {', '.join(f'{d} {s}' for d, s in sorted(failing.items()))}" if failing else ""))
        return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[CERTS, PROXY],
                    reason=reason, remediation="; ".join(advice) or describe)
    return make(cid, title, WARN, observed=observed, expected=expected, evidence=[CERTS, PROXY],
                reason="the managed certificate is still provisioning (up to about an hour once DNS points at "
                       "the load balancer): wait and re-run" + ("; " + "; ".join(advice) if advice else ""),
                remediation="; ".join(advice))


def attached(ev: Evidence, params: Params, chosen: str | None) -> CheckResult:
    cid, title = "cert.attached", "The target HTTPS proxy serves the managed certificate"
    proxy_name = params.load_balancer.https_proxy
    wanted = chosen or params.load_balancer.certificate_name
    expected = f"{proxy_name} serves {wanted}"
    rec = ev.api.get(PROXY)
    if rec is not None and not rec.ok and rec.error and rec.error.kind == "not_found":
        return make(cid, title, FAIL, observed=f"target HTTPS proxy {proxy_name} not found", expected=expected,
                    evidence=[PROXY], reason="without the proxy nothing terminates HTTPS for the domains",
                    remediation=f"create it with your URL map: `gcloud compute target-https-proxies create {proxy_name} "
                                f"--url-map=URL_MAP --ssl-certificates={wanted} --global --project {params.project}`, "
                                "or fix load_balancer.https_proxy")
    if not usable(rec):
        return unavailable(make, cid, title, rec, PROXY, expected=expected)
    proxy = TargetHttpsProxy.from_json(rec.body)
    served = proxy.certificate_names
    observed = f"serves {', '.join(served) or 'no certificates'}" + (
        f"; certificate map {proxy.certificate_map}" if proxy.certificate_map else "")
    map_note = (f"the proxy's certificate map {proxy.certificate_map} takes precedence over its certificates: "
                f"`gcloud compute target-https-proxies update {proxy_name} --clear-certificate-map --global "
                f"--project {params.project}`") if proxy.certificate_map else ""
    if wanted in served:
        if map_note:
            return make(cid, title, WARN, observed=observed, expected=expected, evidence=[PROXY],
                        reason=map_note, remediation=map_note)
        return make(cid, title, PASS, observed=observed, expected=expected, evidence=[PROXY])
    try:
        add = f"`{compute.attach_managed_certificate(params, served).gcloud}`"
    except ValueError as exc:
        add = f"{exc}; then add it"
    return make(cid, title, FAIL, observed=observed, expected=expected, evidence=[PROXY, CERTS],
                reason=f"{wanted} is not on the proxy, so clients are not offered it"
                       + (f"; {map_note}" if map_note else ""),
                remediation=f"{add} (adds it beside the current ones, which keep being served until {wanted} is "
                            "ACTIVE; a managed certificate provisions only once attached and DNS points at the load "
                            "balancer); remove the old ones after the live TLS probe sees the managed one for both "
                            "domains (the plan's cert.detach-legacy)")


# -- is the managed certificate what clients get? (the condition of cert.detach-legacy) -------------

def pem_serials(pem: str | None) -> set[str]:
    """Serial numbers (hex, as the TLS probe records them) of the certificates in a PEM chain."""
    if not pem:
        return set()
    from cryptography import x509

    try:
        return {format(c.serial_number, "x") for c in x509.load_pem_x509_certificates(pem.encode())}
    except ValueError:
        return set()


def managed_served(samples: dict[str, ProbeResult], managed: SslCertificate,
                   legacy: list[SslCertificate]) -> tuple[bool, str]:
    """``(True, how)`` when the live TLS probe of every domain (``samples``: domain -> result) got
    the managed certificate, ``(False, why not)`` otherwise.

    "Got it" means: the handshake verified, the served certificate names the domain, and it is the
    managed one: its serial is in the managed certificate's PEM when the API reports one, else it
    is none of the legacy certificates' serials (the managed certificate being ACTIVE).
    """
    if managed.managed_status != "ACTIVE":
        return False, f"{managed.name} is {managed.managed_status or 'in an unknown state'}, not ACTIVE"
    ours = pem_serials(managed.raw.get("certificate"))
    theirs = set().union(*(pem_serials(c.raw.get("certificate")) for c in legacy)) if legacy else set()
    missing = []
    for domain, sample in samples.items():
        cert = sample.info.get("cert") or {}
        serial = cert.get("serial", "")
        if not sample.ok:
            missing.append(f"{domain}: TLS probe failed ({sample.reason.value if sample.reason else 'error'}: "
                           f"{sample.detail})")
        elif not covers(cert.get("sans") or [], domain):
            missing.append(f"{domain}: the served certificate names {', '.join(cert.get('sans') or []) or 'nothing'}")
        elif ours and serial not in ours:
            missing.append(f"{domain}: serves serial {serial or '?'}, not {managed.name}'s")
        elif not ours and serial in theirs:
            missing.append(f"{domain}: still serves a legacy certificate (serial {serial})")
    if missing:
        return False, "; ".join(missing)
    how = "serial matches its PEM" if ours else "verified, names the domain, not a legacy certificate's serial"
    return True, f"{managed.name} is ACTIVE and served for {' and '.join(samples)} ({how})"
