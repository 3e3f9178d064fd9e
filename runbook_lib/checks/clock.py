"""Clock sanity: is the local clock, by which expiry is judged, close to Google's?

Every API answer carries a ``Date`` header (RFC 9110 §6.6.1: the origin server's clock, 1 s
resolution); the collector records it beside the local time the answer arrived
(``ApiRecord.date`` / ``received_at``). The median difference is the local clock's skew. Over
``thresholds.clock_skew_s`` (a minute by default) it is a WARN naming the checks whose verdict
depends on the local clock: certificate expiry and secret expiry (a clock a week fast makes a
valid certificate look expired; one a week slow hides an expired one).
"""
from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

from runbook_lib.checks._util import ERROR, PASS, SKIP, WARN, Maker, domain_label, safe_id
from runbook_lib.evidence import ApiRecord, Evidence
from runbook_lib.params import Params
from runbook_lib.results import CheckResult, Severity
from runbook_lib.util.stats import percentile

make = Maker("clock", Severity.medium)
CID, TITLE = "clock.skew", "The local clock agrees with Google's (expiry is judged by it)"


def server_time(record: ApiRecord) -> datetime | None:
    """The ``Date`` header as an aware datetime, None when absent or unparsable."""
    if not record.date:
        return None
    try:
        when = parsedate_to_datetime(record.date)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else None


def affected(params: Params) -> list[str]:
    """The checks whose verdict is computed from the local clock."""
    tls = [f"tls.{domain_label(d)}.expiry" for d in (params.domains.frontend, params.domains.api)]
    return tls + ["cert.managed"] + [f"secrets.{safe_id(s)}" for s in params.secrets.required]


def evaluate(ev: Evidence, params: Params) -> list[CheckResult]:
    limit = params.thresholds.clock_skew_s
    expected = f"within {limit:g} s of the API servers' Date headers"
    skews = []
    for record in ev.api.values():
        server = server_time(record)
        if server is not None and record.received_at is not None:
            skews.append((record.received_at - server).total_seconds())
    keys = [k for k, r in ev.api.items() if r.date]
    if ev.api and not any(r.ok for r in ev.api.values()):
        return [make(CID, TITLE, ERROR, expected=expected, evidence=sorted(ev.api)[:3],
                     reason="no API answered, so the local clock could not be compared with Google's")]
    if not skews:
        return [make(CID, TITLE, SKIP, expected=expected, evidence=["manifest"],  # meta.now: the local clock
                     reason="no API answer recorded a Date header (evidence recorded before clock checks, or no "
                            "API answered), so the local clock was not compared")]
    skew = percentile(skews, 50)
    direction = "ahead of" if skew > 0 else "behind"
    observed = f"local clock {abs(skew):.0f} s {direction} Google's (median of {len(skews)} answers)"
    if abs(skew) <= limit:
        return [make(CID, TITLE, PASS, observed=observed, expected=expected, evidence=keys[:3])]
    checks = affected(params)
    return [make(CID, TITLE, WARN, observed=observed, expected=expected, evidence=keys[:3],
                 reason=f"expiry is judged by the local clock, {abs(skew):.0f} s off: the verdicts of "
                        f"{', '.join(checks)} may be wrong by that much",
                 remediation="synchronise the clock (`timedatectl set-ntp true`, or `chronyc makestep`), then run "
                             "again")]
