"""Active probes, one module per protocol (dns, tcp, tls, http, postgres, websocket), each with
one ``async def probe(target, net, deadline_s, **options) -> ProbeResult`` of the shape described
in ``base``. Import the protocol module you need: this package imports none of them, so a check
that reads a ``ProbeResult`` loads no network library.
"""
