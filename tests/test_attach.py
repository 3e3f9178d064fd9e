"""``runbook attach`` against a local fake GitHub: one comment kept up to date, labels moved once,
errors a person can act on, and the token never shown."""
from __future__ import annotations

import io
import json
import traceback
from pathlib import Path

import pytest
import yaml

from runbook_lib.errors import GitHubError
from runbook_lib.handback import attach as attach_mod
from runbook_lib.handback import github as github_client
from runbook_lib.handback.attach import attach, report_marker
from runbook_lib.redact import MASK
from tests.github_fake import FakeGitHub

ROOT = Path(__file__).resolve().parents[1]
REPO = "acme/staging-app"
ISSUE = 1278
# Not shaped like a GitHub token, so only redact.register() can catch it.
TOKEN = "test-token-7f3c9a1e5b"
OTHER_COMMENTS = ["Looking into it.", "Connector is at max instances.", "Certs pending."]
UNHEALTHY_LABELS = {"infrastructure-team-handoff", "development-complete", "p0-critical", "bug"}
HEALTHY_LABELS = {"infrastructure-team-handoff", "development-complete", "bug"}


def write_report(folder: Path, *, healthy: bool, summary: str | None = None, repo: str | None = REPO,
                 issue: int | None = ISSUE) -> Path:
    """A report folder as `runbook run` leaves it (the parts attach reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((ROOT / "parameters" / "staging.example.yaml").read_text())
    params["handback"]["repo"] = repo
    params["handback"]["issue"] = issue
    (folder / "parameters.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = "HEALTHY" if healthy else "UNHEALTHY"
    critical = 0 if healthy else 2
    line = f"Overall Status: {status}, Critical Failures: {critical}"
    verdict = {"healthy": healthy, "critical_failures": critical, "line": line}
    (folder / "results.json").write_text(json.dumps({"verdict": verdict, "results": []}))
    (folder / "summary.md").write_text(summary or f"# Staging: {status}\n\n{line}\n\n- connector READY\n")
    return folder


@pytest.fixture
def github():
    with FakeGitHub(page_size=2, token=TOKEN) as fake:
        fake.add_issue(REPO, ISSUE, labels=["actively-being-worked-on", "bug"], comments=OTHER_COMMENTS)
        yield fake


@pytest.fixture(autouse=True)
def no_ambient_github(monkeypatch):
    # A developer's or CI's own settings must not leak into the tests, and retries must not sleep.
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_API_URL", raising=False)
    monkeypatch.setattr(github_client, "RETRY_BACKOFF_S", 0.0)


def run_attach(run_dir: Path, github: FakeGitHub, **kw):
    out = io.StringIO()
    args = dict(repo=None, issue=None, report_url=None, dry_run=False, token=TOKEN, api_url=github.url)
    args.update(kw)
    outcome = attach(run_dir, out=out, **args)
    return outcome, out.getvalue()


def test_first_attach_posts_one_comment_and_applies_labels(tmp_path, github):
    run = write_report(tmp_path / "run", healthy=False)

    outcome, printed = run_attach(run, github, report_url="https://ci.example/runs/42")

    ours = [c for c in github.comments_on(REPO, ISSUE) if c["user"]["login"] == "runbook-bot"]
    assert len(ours) == 1 and outcome.created
    body = ours[0]["body"]
    assert body.startswith(report_marker(ISSUE, "staging") + "\n")
    assert "Overall Status: UNHEALTHY, Critical Failures: 2" in body
    assert "**Full report:** https://ci.example/runs/42" in body
    assert outcome.comment_url == ours[0]["html_url"]
    # every page of comments was read (3 comments, 2 per page) before deciding to post
    assert [r.query.get("page", "1") for r in github.requests if r.path.endswith("/comments")
            and r.method == "GET"] == ["1", "2"]
    assert github.count("POST", "/comments") == 1
    assert github.count("DELETE") == 1 and github.count("POST", "/labels") == 1
    assert set(github.labels_on(REPO, ISSUE)) == UNHEALTHY_LABELS
    assert outcome.labels_removed == ["actively-being-worked-on"]
    assert outcome.labels_added == ["infrastructure-team-handoff", "development-complete", "p0-critical"]
    assert [method for method, _ in outcome.requests] == [r.method for r in github.requests]
    assert all(url.startswith(f"{github.url}/repos/{REPO}/issues/") for _, url in outcome.requests)
    sent = {k: v for k, v in github.requests[0].headers.items() if k != "authorization"}
    assert sent["accept"] == "application/vnd.github+json"
    assert sent["x-github-api-version"] == "2022-11-28"
    assert all(r.authorized for r in github.requests)
    assert f"Comment created on {REPO}#{ISSUE}: {outcome.comment_url}" in printed


def test_second_attach_updates_the_same_comment_and_leaves_labels(tmp_path, github):
    run = write_report(tmp_path / "run", healthy=False)
    first, _ = run_attach(run, github)
    (run / "summary.md").write_text("# Staging: UNHEALTHY\n\nsecond run\n")
    github.requests.clear()

    second, printed = run_attach(run, github)

    assert not second.created and second.comment_url == first.comment_url
    assert len(github.comments_on(REPO, ISSUE)) == len(OTHER_COMMENTS) + 1
    assert github.count("PATCH") == 1 and github.count("POST") == 0 and github.count("DELETE") == 0
    assert "second run" in github.comments[int(first.comment_url.rsplit("-", 1)[1])]["body"]
    assert set(github.labels_on(REPO, ISSUE)) == UNHEALTHY_LABELS
    assert second.labels_added == [] and second.labels_removed == []
    assert "Labels: already as wanted, nothing changed" in printed


def test_healthy_run_after_unhealthy_moves_p0_off(tmp_path, github):
    run_attach(write_report(tmp_path / "bad", healthy=False), github)

    outcome, _ = run_attach(write_report(tmp_path / "good", healthy=True), github)

    assert set(github.labels_on(REPO, ISSUE)) == HEALTHY_LABELS
    assert outcome.labels_removed == ["p0-critical"] and outcome.labels_added == []
    assert len(github.comments_on(REPO, ISSUE)) == len(OTHER_COMMENTS) + 1


def test_label_removal_url_encodes_and_tolerates_an_absent_label(tmp_path, github):
    run = write_report(tmp_path / "run", healthy=False)
    params = yaml.safe_load((run / "parameters.yaml").read_text())
    params["handback"]["labels_when_unhealthy"] = {"remove": ["needs triage/ops", "bug"], "add": []}
    (run / "parameters.yaml").write_text(yaml.safe_dump(params))
    github.issues[(REPO, ISSUE)].labels.append("needs triage/ops")
    # Someone removed "needs triage/ops" between our read and our DELETE: GitHub answers 404.
    github.answer(404, times=1, method="DELETE", body={"message": "Label does not exist"})

    outcome, _ = run_attach(run, github)

    deletes = [r.path for r in github.requests if r.method == "DELETE"]
    assert deletes == [f"/repos/{REPO}/issues/{ISSUE}/labels/needs%20triage%2Fops",
                       f"/repos/{REPO}/issues/{ISSUE}/labels/bug"]
    assert outcome.labels_removed == ["bug"]
    assert "bug" not in github.labels_on(REPO, ISSUE)


def test_dry_run_sends_nothing_and_prints_the_requests(tmp_path, github):
    run = write_report(tmp_path / "run", healthy=False)

    outcome, printed = run_attach(run, github, dry_run=True, token=None, report_url="https://ci.example/r/1")

    assert github.requests == []
    assert outcome.dry_run and outcome.comment_url is None
    base = f"{github.url}/repos/{REPO}/issues/{ISSUE}"
    assert ("POST", f"{base}/comments") in outcome.requests
    assert ("DELETE", f"{base}/labels/actively-being-worked-on") in outcome.requests
    assert ("POST", f"{base}/labels") in outcome.requests
    assert "Dry run: nothing is sent to GitHub" in printed
    assert f"POST   {base}/comments" in printed
    assert f"| {report_marker(ISSUE, 'staging')}" in printed
    assert "| # Staging: UNHEALTHY" in printed
    assert f"DELETE {base}/labels/actively-being-worked-on" in printed
    assert "labels: infrastructure-team-handoff, development-complete, p0-critical" in printed
    assert "Token: not set" in printed


def test_flags_override_the_parameters_and_missing_ones_are_named(tmp_path, github):
    github.add_issue("acme/other", 5)
    run = write_report(tmp_path / "run", healthy=True, repo=None, issue=None)

    outcome, _ = run_attach(run, github, repo="acme/other", issue=5)
    assert outcome.created and len(github.comments_on("acme/other", 5)) == 1

    with pytest.raises(GitHubError) as no_repo:
        run_attach(run, github, issue=5)
    assert str(no_repo.value) == (
        "no repository to post to: pass --repo OWNER/NAME or set handback.repo in the parameters"
    )
    with pytest.raises(GitHubError) as no_issue:
        run_attach(run, github, repo="acme/other")
    assert str(no_issue.value) == "no issue to post to: pass --issue N or set handback.issue in the parameters"


def test_missing_token_says_what_to_set(tmp_path, github):
    run = write_report(tmp_path / "run", healthy=True)
    with pytest.raises(GitHubError) as err:
        run_attach(run, github, token=None)
    assert str(err.value) == f"set GITHUB_TOKEN (a token with issues:write on {REPO})"
    assert github.requests == []


def test_token_and_api_url_come_from_the_environment(tmp_path, github, monkeypatch):
    monkeypatch.setenv("GITHUB_API_URL", github.url + "/")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    run = write_report(tmp_path / "run", healthy=True)

    outcome, _ = run_attach(run, github, token=None, api_url=None)

    assert outcome.created and github.count("POST", "/comments") == 1
    assert all(url.startswith(github.url + "/repos/") for _, url in outcome.requests)


RESET = 1767225600  # 2026-01-01 00:00:00 UTC


@pytest.mark.parametrize(
    "script, message",
    [
        (lambda gh: gh.answer(401), "GitHub rejected the token (401): check GITHUB_TOKEN"),
        (lambda gh: gh.answer(403),
         f"token lacks permission: needs issues:write (fine-grained) or repo scope on {REPO}"),
        (lambda gh: gh.rate_limit(RESET),
         "GitHub API rate limit exhausted: rate limited until 2026-01-01 00:00:00 UTC"),
        (lambda gh: gh.issues.clear(), f"{REPO} issue #{ISSUE} not found (or the token cannot see it)"),
        (lambda gh: gh.answer(422, body={"message": "Validation Failed",
                                         "errors": [{"message": "body is too long (maximum is 65536 characters)"}]}),
         f"GitHub refused GET /repos/{REPO}/issues/{ISSUE} (422): "
         "Validation Failed (body is too long (maximum is 65536 characters))"),
    ],
    ids=["401", "403", "rate-limit", "404", "422"],
)
def test_http_errors_become_actionable_messages(tmp_path, github, script, message):
    script(github)
    run = write_report(tmp_path / "run", healthy=True)
    with pytest.raises(GitHubError) as err:
        run_attach(run, github)
    assert str(err.value) == message
    assert github.count("POST") == github.count("PATCH") == 0
    assert len(github.requests) == 1  # 4xx answers are not retried


def test_a_wrong_token_is_refused_by_github(tmp_path, github):
    run = write_report(tmp_path / "run", healthy=True)
    with pytest.raises(GitHubError, match=r"^GitHub rejected the token \(401\): check GITHUB_TOKEN$"):
        run_attach(run, github, token="not-the-right-token")


def test_server_errors_are_retried_then_reported(tmp_path, github):
    run = write_report(tmp_path / "run", healthy=True)
    github.answer(502, times=2)
    outcome, _ = run_attach(run, github)
    assert outcome.created
    assert [r.method for r in github.requests[:3]] == ["GET", "GET", "GET"]  # the issue, asked 3 times

    github.requests.clear()
    github.answer(500)
    with pytest.raises(GitHubError) as err:
        run_attach(run, github)
    assert str(err.value) == (
        f"GitHub failed GET /repos/{REPO}/issues/{ISSUE} with HTTP 500 after 3 attempts (Server Error); retry later"
    )
    assert len(github.requests) == github_client.ATTEMPTS


def test_a_silent_github_hits_the_deadline(tmp_path, github, monkeypatch):
    monkeypatch.setattr(github_client, "TIMEOUT_S", 0.2)
    monkeypatch.setattr(github_client, "ATTEMPTS", 1)
    github.delay_s = 3.0
    run = write_report(tmp_path / "run", healthy=True)
    with pytest.raises(GitHubError) as err:
        run_attach(run, github)
    assert str(err.value) == f"GitHub did not answer GET /repos/{REPO}/issues/{ISSUE} within 0.2 s; retry later"


def test_the_token_never_appears_in_output_or_errors(tmp_path, github):
    run = write_report(tmp_path / "run", healthy=False, summary=f"# Report\n\nleaked {TOKEN} here\n")
    seen: list[str] = []

    outcome, printed = run_attach(run, github, report_url="https://ci.example/r/1")
    seen += [printed, repr(outcome)]
    _, printed = run_attach(run, github, dry_run=True)
    seen.append(printed)
    body = github.comments[int(outcome.comment_url.rsplit("-", 1)[1])]["body"]
    assert MASK in body
    seen.append(body)
    # GitHub echoing the token back in an error message
    github.answer(422, body={"message": f"token {TOKEN} is odd"})
    with pytest.raises(GitHubError) as err:
        run_attach(run, github)
    seen += [str(err.value), repr(err.value), "".join(traceback.format_exception(err.value))]
    github.answer(401)
    with pytest.raises(GitHubError) as err:
        run_attach(run, github)
    seen += [str(err.value), "".join(traceback.format_exception(err.value))]

    assert all(TOKEN not in text for text in seen)


def test_a_folder_that_is_not_a_report_is_refused(tmp_path, github):
    (tmp_path / "empty").mkdir()
    with pytest.raises(GitHubError) as err:
        run_attach(tmp_path / "empty", github)
    assert str(err.value) == (
        f"{tmp_path / 'empty'}: missing summary.md, results.json, parameters.yaml; "
        "is this a report folder written by `runbook run`?"
    )
    assert github.requests == []


def test_the_cli_runs_attach_with_the_environment(tmp_path, github, monkeypatch, capsys):
    from runbook_lib.cli import main

    monkeypatch.setenv("GITHUB_API_URL", github.url)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    run = str(write_report(tmp_path / "run", healthy=True))

    assert main(["attach", "--run", run, "--repo", REPO, "--issue", str(ISSUE)]) == 0
    assert github.count("POST", "/comments") == 1

    github.answer(401)
    assert main(["attach", "--run", run]) == 2
    assert capsys.readouterr().err == "runbook: GitHub rejected the token (401): check GITHUB_TOKEN\n"


def test_only_a_comment_starting_with_the_marker_is_ours(tmp_path, github):
    marker = report_marker(ISSUE, "staging")
    github.add_issue(REPO, ISSUE, comments=[f"Quoting the bot:\n> {marker}", report_marker(ISSUE, "sandbox")])
    outcome, _ = run_attach(write_report(tmp_path / "run", healthy=True), github)
    assert outcome.created and github.count("PATCH") == 0


def test_an_earlier_comment_the_token_cannot_edit_is_named(tmp_path, github):
    run = write_report(tmp_path / "run", healthy=True)
    first, _ = run_attach(run, github)
    github.answer(403, times=1, method="PATCH")
    with pytest.raises(GitHubError) as err:
        run_attach(run, github)
    assert str(err.value) == (
        f"token lacks permission: needs issues:write (fine-grained) or repo scope on {REPO}; and only the "
        f"account that posted the earlier runbook comment {first.comment_url} can edit it "
        "(delete it to start a new one)"
    )


def test_a_huge_summary_is_cut_to_fit_a_comment():
    body = attach_mod.comment_body(report_marker(ISSUE, "staging"), "x" * 200_000, "https://ci.example/r/1")
    assert len(body) <= 65_536
    assert "summary truncated" in body and body.endswith("**Full report:** https://ci.example/r/1\n")
