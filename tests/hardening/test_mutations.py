"""Tests that kill the four one-line bugs that survived the suite (issue 11, item 6).

Each test pins one boundary exactly where the mutation moves it:

1. ``sql.connect``: a p95 *equal* to the 35 s threshold fails (``>=``, not ``>``);
2. certificate names: ``*.x`` covers ``a.x`` but not ``a.b.x`` (one label, RFC 6125 §6.4.3);
3. confirmation: only the whole plan id confirms a plan, never a prefix (nor the id plus more);
4. secrets: a latest version in any state but ENABLED fails (not only DISABLED/DESTROYED).
"""
from __future__ import annotations

import copy

import pytest

from runbook_lib.checks import cloudsql, secrets
from runbook_lib.checks._util import covers, name_matches
from runbook_lib.errors import RemediationError
from runbook_lib.remediate.apply import check_confirmation
from runbook_lib.remediate.plan import Plan
from runbook_lib.results import ResultSet, Status
from tests.checks.checks_testkit import fixture, healthy_evidence, make_params, ok, probe

PARAMS = make_params()   # live: time scale 1, so the threshold on the wire is exactly 35 s


def _connect(total_s: float) -> Status:
    ev = healthy_evidence()
    ev.probes["postgres.connect"] = [probe("postgres", "10.20.0.3:5432", total_s=total_s) for _ in range(10)]
    return ResultSet(results=cloudsql.evaluate(ev, PARAMS)).by_id("sql.connect").status


def test_connect_p95_at_exactly_the_threshold_fails():
    assert PARAMS.thresholds.db_connect_s == 35.0 and PARAMS.scaled(35.0) == 35.0
    assert _connect(35.0) is Status.FAIL          # "at or over the threshold" (kills >= -> >)
    assert _connect(34.99) is Status.PASS         # and just under it passes (kills >= -> always)


@pytest.mark.parametrize("pattern, host, expected", [
    ("*.netrasystems.ai", "api.netrasystems.ai", True),
    ("*.netrasystems.ai", "a.b.netrasystems.ai", False),      # two labels under the wildcard
    ("*.netrasystems.ai", "netrasystems.ai", False),           # zero labels
    ("*.x", "a.b.x", False),
    ("*.x", "a.x", True),
    ("api.netrasystems.ai", "API.netrasystems.ai.", True),
])
def test_a_wildcard_covers_exactly_one_label(pattern, host, expected):
    assert name_matches(pattern, host) is expected
    assert covers([pattern], host) is expected


def _plan(plan_id: str) -> Plan:
    return Plan(id=plan_id, target="staging", project="netra-staging", actions=[])


@pytest.mark.parametrize("confirm", ["0a1b2c3d4e", "0a1b2c3d4e5", "0", "0a1b2c3d4e5f0", " 0a1b2c3d4e5f", ""])
def test_only_the_whole_plan_id_confirms(confirm):
    params = make_params(**{"remediation.apply": True, "remediation.confirm": confirm or "x"})
    if not confirm:
        params.remediation.confirm = ""
    with pytest.raises(RemediationError, match="refused"):
        check_confirmation(_plan("0a1b2c3d4e5f"), params)


def test_the_whole_plan_id_confirms_even_when_all_digits():
    for plan_id in ("0a1b2c3d4e5f", "001234567890"):
        params = make_params(**{"remediation.apply": True, "remediation.confirm": plan_id})
        check_confirmation(_plan(plan_id), params)    # no exception


@pytest.mark.parametrize("state", ["STATE_UNSPECIFIED", "PENDING", "ENABLING", "", "enabled"])
def test_a_latest_version_in_any_state_but_enabled_fails(state):
    ev = healthy_evidence()
    body = copy.deepcopy(fixture("secretmanager--versions-enabled.json"))
    body["versions"][0]["state"] = state
    ev.api["secretmanager.versions.database-url"] = ok("secretmanager.versions.database-url", body)
    r = ResultSet(results=secrets.evaluate(ev, PARAMS)).by_id("secrets.database-url")
    assert r.status is Status.FAIL, (state, r.observed)


def test_the_same_secret_with_its_latest_version_enabled_passes():
    ev = healthy_evidence()
    r = ResultSet(results=secrets.evaluate(ev, PARAMS)).by_id("secrets.database-url")
    assert r.status is Status.PASS


# --- survivors of `make mutation` (bench/results/mutation-2026-12-01.md), killed here -------------

@pytest.mark.parametrize("pattern, host", [("*.netrasystems.ai.", "api.netrasystems.ai"),
                                           ("api.netrasystems.ai.", "api.netrasystems.ai"),
                                           ("*.netrasystems.ai", "api.netrasystems.ai.")])
def test_a_trailing_dot_on_either_side_still_matches(pattern, host):
    assert name_matches(pattern, host)


def test_safe_id_strips_separators_and_replaces_others_with_one_dash():
    from runbook_lib.checks._util import safe_id

    assert safe_id("-Staging Backend.") == "staging-backend"
    assert safe_id(" a/b ") == "a-b"
    assert safe_id("...") == "x"


def test_days_between_is_exact_days():
    from datetime import datetime, timedelta, timezone

    from runbook_lib.checks._util import days_between

    t = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert days_between(t + timedelta(days=30), t) == 30.0
