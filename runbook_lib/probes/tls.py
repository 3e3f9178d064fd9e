"""TLS prober: handshake with verification, and always the peer certificate's details.

When verification fails the certificate is fetched again with a non-verifying handshake (same
deadline), so a report can say *which* certificate is served: its names, issuer and dates. How
many days are left is for the checks to compute, with the ``now`` they are given.
"""
from __future__ import annotations

import asyncio
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from runbook_lib.probes.base import (
    NETWORK_ERRORS,
    Attempt,
    NetContext,
    ProbeResult,
    Reason,
    classify_chain,
    split_host_port,
)

# Reasons that mean "a certificate was served but not accepted": worth fetching it unverified.
CERTIFICATE_REASONS = frozenset({Reason.tls_verify, Reason.hostname_mismatch, Reason.expired})


def certificate_info(der: bytes, *, verified: bool, verify_error: str = "") -> dict[str, Any]:
    """The facts a person checks on a certificate, from its DER bytes."""
    cert = x509.load_der_x509_certificate(der)
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = [str(name) for name in sans.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        dns_names = []
    return {
        "subject": str(common_names[0].value) if common_names else "",
        "sans": dns_names,
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "serial": format(cert.serial_number, "x"),
        "verified": verified,
        "verify_error": verify_error,
    }


async def fetch_unverified_certificate(
    addrs: list[tuple[str, int]], server_name: str, net: NetContext, timeout_s: float, verify_error: str
) -> dict[str, Any]:
    """Handshake again without verification, only to read the certificate the peer serves."""
    async with asyncio.timeout(max(timeout_s, 0.0)):
        addr, port = addrs[0]
        _, writer = await asyncio.open_connection(addr, port)
        try:
            await writer.start_tls(net.ssl_context(verify=False), server_hostname=server_name)
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        finally:
            writer.transport.abort()
    return certificate_info(der, verified=False, verify_error=verify_error)


async def with_served_certificate(
    result: ProbeResult, run: Attempt, server_name: str, net: NetContext, deadline_s: float
) -> ProbeResult:
    """After a refused certificate, put the served one in ``info["cert"]`` if the deadline allows."""
    if not run.verify_error or result.reason not in CERTIFICATE_REASONS or not run.addresses:
        return result
    try:
        result.info["cert"] = await fetch_unverified_certificate(
            run.addresses, server_name, net, deadline_s - run.elapsed(), run.verify_error
        )
    except TimeoutError:
        result.info["cert_error"] = "deadline passed before the certificate could be fetched"
    except NETWORK_ERRORS as exc:
        result.info["cert_error"] = f"could not fetch the certificate: {classify_chain(exc)[1]}"
    result.total_s = run.elapsed()
    return result


async def probe(
    target: str, net: NetContext, deadline_s: float, *, server_name: str | None = None, **_options: object
) -> ProbeResult:
    """Handshake with ``host:port`` presenting ``server_name`` (default: host) as SNI and checked name."""
    host, port = split_host_port(target)
    sni = server_name or host
    run = Attempt("tls", target, net)
    run.info["server_name"] = sni

    async def steps() -> None:
        _, writer = await run.connect(await run.resolve(host, port))
        ssl_object = await run.start_tls(writer, net.ssl_context(), sni)
        run.info["cert"] = certificate_info(ssl_object.getpeercert(binary_form=True), verified=True)

    return await with_served_certificate(await run.run(steps(), deadline_s), run, sni, net, deadline_s)
