"""A quiet tracking issue: the comment is updated every run; labels and a new comment only on change."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from runbook_lib.handback import attach as attach_mod
from runbook_lib.handback import github as github_client
from runbook_lib.handback.attach import attach, report_marker
from runbook_lib.history import quiet
from runbook_lib.history.synthetic import write_run
from tests.github_fake import FakeGitHub

ROOT = Path(__file__).resolve().parents[2]
REPO, ISSUE, TOKEN = "acme/staging-app", 1278, "test-token-quiet-42"
NIGHT = datetime(2026, 12, 1, 4, 17, tzinfo=timezone.utc)
BROKEN = {"connector.saturation", "sql.connect"}


@pytest.fixture(autouse=True)
def no_ambient_github(monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_API_URL", raising=False)
    monkeypatch.setattr(github_client, "RETRY_BACKOFF_S", 0.0)


@pytest.fixture
def github():
    with FakeGitHub(page_size=2, token=TOKEN) as fake:
        fake.add_issue(REPO, ISSUE, labels=["bug"], comments=["Looking into it."])
        yield fake


def night(root: Path, i: int, failing: set[str]) -> Path:
    """A run folder as `runbook run` leaves it, with the parts attach reads."""
    d = write_run(root, i, failing=failing, when=NIGHT + timedelta(days=i))
    params = yaml.safe_load((ROOT / "parameters" / "staging.example.yaml").read_text())
    params["handback"].update(repo=REPO, issue=ISSUE)
    params["target"]["name"] = "sandbox"
    (d / "parameters.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    verdict = json.loads((d / "results.json").read_text())["verdict"]
    (d / "summary.md").write_text(f"## Staging\n\n{verdict['line']}\n\nReport files: [results.json](results.json)\n")
    return d


def post(run: Path, github: FakeGitHub, *, days: float = 0, **kw):
    out = io.StringIO()
    args = dict(repo=None, issue=None, report_url=None, dry_run=False, token=TOKEN, api_url=github.url,
                now=NIGHT + timedelta(days=days, minutes=30))
    args.update(kw)
    return attach(run, out=out, **args), out.getvalue()


def ours(github: FakeGitHub) -> list[dict]:
    return [c for c in github.comments_on(REPO, ISSUE) if c["user"]["login"] == "runbook-bot"]


def test_unchanged_nights_update_quietly_and_a_change_notifies_once(tmp_path, github):
    first, _ = post(night(tmp_path / "a", 0, BROKEN), github)
    assert first.notified and set(github.labels_on(REPO, ISSUE)) >= {"p0-critical"}
    github.issues[(REPO, ISSUE)].labels.remove("p0-critical")           # a person moved a label by hand
    github.requests.clear()

    second, printed = post(night(tmp_path / "b", 1, BROKEN), github, days=1)    # same failures

    assert not second.notified and github.count("PATCH") == 1 and github.count("POST") == 0
    assert "p0-critical" not in github.labels_on(REPO, ISSUE)                  # left as the person set it
    assert "Quiet: unchanged since 20261201T041700Z-sandbox-000000" in printed and len(ours(github)) == 1
    github.requests.clear()

    third, printed = post(night(tmp_path / "c", 2, {"sql.connect"}), github, days=2)  # the connector got fixed

    assert third.notified and third.created
    assert github.count("POST", "/comments") == 1 and github.count("DELETE", f"/comments/{ours_id(first)}") == 1
    assert len(ours(github)) == 1                     # still one report comment: the new one
    assert "Notified: no longer failing: connector.saturation" in printed
    assert "p0-critical" in github.labels_on(REPO, ISSUE)
    body = ours(github)[0]["body"]
    assert body.startswith(report_marker(ISSUE, "sandbox") + "\n<!-- runbook:state ")
    assert first_state(github).failing == ("sql.connect",)


def ours_id(outcome) -> int:
    return int(outcome.comment_url.rsplit("-", 1)[1])


def first_state(github: FakeGitHub) -> quiet.State:
    return quiet.parse_state(ours(github)[0]["body"])


def test_daily_heartbeat_and_always(tmp_path, github):
    post(night(tmp_path / "a", 0, BROKEN), github, notify="daily")
    same_day, _ = post(night(tmp_path / "b", 1, BROKEN), github, days=0.5, notify="daily")
    assert not same_day.notified
    next_day, printed = post(night(tmp_path / "c", 2, BROKEN), github, days=1, notify="daily")
    assert next_day.notified and "daily heartbeat" in printed and next_day.labels_added == []
    every, _ = post(night(tmp_path / "d", 3, BROKEN), github, days=1.1, notify="always")
    assert every.notified and len(ours(github)) == 1


def test_previous_artifact_gives_the_comment_its_since_section(tmp_path, github):
    prev = night(tmp_path / "artifact", 0, BROKEN)
    run = night(tmp_path / "ci", 1, {"sql.connect"})   # a fresh checkout: the run had nothing to compare with
    post(run, github, previous=prev / "results.json")
    body = ours(github)[0]["body"]
    assert f"### Since the last run ({prev.name}, 2026-12-01 04:17 UTC, UNHEALTHY -> UNHEALTHY): " \
           "0 newly failing, 1 fixed, 1 still failing" in body
    assert "- **Fixed:** connector.saturation FAIL -> PASS" in body
    assert body.index("### Since the last run") < body.index("Report files:")


def test_the_marker_state_alone_gives_the_since_section(tmp_path, github):
    post(night(tmp_path / "a", 0, BROKEN), github)
    post(night(tmp_path / "b", 1, {"sql.connect", "golden.login"}), github, days=1)
    body = ours(github)[0]["body"]
    assert "1 newly failing, 1 fixed, 1 still failing" in body and "golden.login not failing -> FAIL" in body


def test_previous_of_another_target_is_refused(tmp_path, github):
    other = write_run(tmp_path / "x", 0, target="prod")
    with pytest.raises(attach_mod.GitHubError, match="is a run of target 'prod', this one of 'sandbox'"):
        post(night(tmp_path / "a", 1, BROKEN), github, previous=other)


def test_state_line_round_trips_and_garbage_is_ignored():
    s = quiet.State("20261201T041700Z-sandbox-000001", "UNHEALTHY", ("a.b", "c--d"), "2026-12-01T04:47:00+00:00", "sandbox")
    line = s.line()
    assert "--" not in line[4:-3] and quiet.parse_state(f"x\n{line}\ny") == s
    assert quiet.parse_state("<!-- runbook:state {broken -->") is None
    assert quiet.parse_state(None) is None
