"""Clock sanity (issue 11, item 8): the local clock, by which certificate and secret expiry are
judged, is compared with the ``Date`` header of the API answers; over a minute off is a WARN that
names the checks it affects."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from runbook_lib.checks import clock, evaluate_all
from runbook_lib.results import Status
from tests.checks.checks_testkit import NOW, healthy_evidence, make_params
from tests.gcp.gcp_testkit import client

PARAMS = make_params()


def _with_dates(skew_s: float, answers: int = 5):
    """Evidence whose API answers arrived ``skew_s`` seconds after the server's Date said."""
    ev = healthy_evidence()
    for i, record in enumerate(list(ev.api.values())[:answers]):
        server = NOW - timedelta(seconds=i)
        record.date = format_datetime(server, usegmt=True)
        record.received_at = server + timedelta(seconds=skew_s, milliseconds=300)
    return ev


def _result(ev):
    (r,) = clock.evaluate(ev, PARAMS)
    return r


@pytest.mark.parametrize("skew", [0, 59, -59])
def test_a_clock_within_a_minute_passes(skew):
    r = _result(_with_dates(skew))
    assert r.status is Status.PASS and r.id == "clock.skew"


@pytest.mark.parametrize("skew, direction", [(61, "ahead of"), (-3600 * 24 * 8, "behind")])
def test_a_clock_off_by_more_than_a_minute_warns_naming_the_affected_checks(skew, direction):
    r = _result(_with_dates(skew))
    assert r.status is Status.WARN and direction in r.observed
    for cid in ("tls.staging.expiry", "tls.api-staging.expiry", "cert.managed", "secrets.jwt-secret-staging"):
        assert cid in r.reason
    assert "timedatectl" in r.remediation


def test_the_median_ignores_one_odd_answer():
    ev = _with_dates(2)
    first = next(iter(ev.api.values()))
    first.received_at = first.received_at + timedelta(hours=1)   # one slow proxy's stale Date
    assert _result(ev).status is Status.PASS


def test_no_date_headers_skip_with_a_reason():
    r = _result(healthy_evidence())
    assert r.status is Status.SKIP and "Date header" in r.reason


def test_the_clock_check_runs_with_every_diagnosis_and_never_decides_health():
    rs = evaluate_all(_with_dates(7200), PARAMS)
    assert rs.by_id("clock.skew").status is Status.WARN
    assert rs.verdict.healthy is evaluate_all(_with_dates(0), PARAMS).verdict.healthy


def test_api_reads_record_the_date_header_and_the_local_arrival_time():
    server = datetime(2030, 1, 1, tzinfo=timezone.utc)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"name": "c"}, headers={"Date": format_datetime(server, usegmt=True)})

    async def go():
        async with client(handler) as c:
            return await c.read("vpcaccess.connector", "vpcaccess", "/v1/projects/p/locations/r/connectors/c")

    before = datetime.now(timezone.utc)
    rec = asyncio.run(go())
    assert rec.date == "Tue, 01 Jan 2030 00:00:00 GMT"
    assert before <= rec.received_at <= datetime.now(timezone.utc)
    assert clock.server_time(rec) == server
