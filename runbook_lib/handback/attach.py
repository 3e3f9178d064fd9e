"""Hand a report back to the tracking GitHub issue: one comment, kept up to date, and labels.

``runbook attach --run REPORT_DIR`` posts the run's ``summary.md`` as a comment on the issue. The
comment starts with a hidden marker (``<!-- runbook:report issue=N target=T -->``) so the next run
edits that comment instead of adding another. Then the issue's labels move according to the
verdict in ``results.json`` (``handback.labels_when_healthy`` / ``labels_when_unhealthy``): labels
already as wanted are left alone, so attaching twice changes nothing the second time.

Requests, in order (``--dry-run`` prints them and sends nothing, no token needed)::

    GET    /repos/{owner}/{repo}/issues/{n}                  current labels; 404 = no such issue
    GET    /repos/{owner}/{repo}/issues/{n}/comments          find our marker (Link rel="next")
    PATCH  /repos/{owner}/{repo}/issues/comments/{id}         when found, else
    POST   /repos/{owner}/{repo}/issues/{n}/comments
    DELETE /repos/{owner}/{repo}/issues/{n}/labels/{name}     each present label to remove
    POST   /repos/{owner}/{repo}/issues/{n}/labels            the missing labels to add

Quiet mode (``--notify on-change``, the default): the comment is edited on every run (an edit
notifies nobody), but labels move and the report is posted as a *new* comment (the old one is then
deleted, so there is still one) only when the verdict or the set of failing checks changed since
the state the comment shows; ``daily`` adds a heartbeat a day, ``always`` posts every run. The
state is a hidden line under the marker (runbook_lib/history/quiet.py); when the issue has no
state yet, ``--previous`` (a results.json or report folder, e.g. the last CI artifact) or the
reports folder's catalog stands in. The comment's "Since the last run" section is rebuilt from
the same previous run when the run itself had nothing to compare with (a fresh CI checkout).

    DELETE /repos/{owner}/{repo}/issues/comments/{id}        the old comment, after a new one is posted

Every call has a deadline and 5xx answers are retried a few times. HTTP errors become
``GitHubError`` messages that say what to fix. The token is registered with ``redact`` and every
message passes through it, so the token cannot leak through an error or a printed line.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

import httpx

from runbook_lib import redact
from runbook_lib.errors import GitHubError
from runbook_lib.params import LabelChange, Params, load_params
from runbook_lib.util import clock

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
TIMEOUT_S = 10.0
ATTEMPTS = 3            # one call plus two retries on 5xx or a connection failure
RETRY_BACKOFF_S = 1.0   # doubled after each failed attempt
MAX_PAGES = 100         # 10,000 comments: far beyond any tracking issue, bounds a bad Link loop
# GitHub refuses comment bodies over 65,536 characters; keep a margin for the truncation note.
MAX_BODY_CHARS = 65_000
PREVIEW_LINES = 8
REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclass
class AttachOutcome:
    """What attach did (or, with ``dry_run``, would do). ``requests`` lists each API call once."""

    comment_url: str | None
    created: bool
    labels_added: list[str]
    labels_removed: list[str]
    requests: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False
    notified: bool = False       # a new comment was posted (subscribers are notified)
    why: str = ""                # why it was (or was not): what changed since the state the issue showed


@dataclass(frozen=True)
class Report:
    """The parts of a report folder the hand-back needs."""

    summary: str
    healthy: bool
    verdict_line: str
    params: Params
    results: dict = field(default_factory=dict)


def attach(
    run_dir: Path,
    *,
    repo: str | None,
    issue: int | None,
    report_url: str | None,
    dry_run: bool,
    token: str | None,
    api_url: str | None,
    out: TextIO = sys.stdout,
    notify: str = "on-change",
    previous: Path | None = None,
    now: datetime | None = None,
) -> AttachOutcome:
    """Post (or update) the report comment on the tracking issue and move its labels."""
    from runbook_lib.history import quiet

    if notify not in quiet.MODES:
        raise GitHubError(f"--notify: expected one of {', '.join(quiet.MODES)}, got {notify!r}")
    now = now or clock.utc_now()
    token = token or os.environ.get("GITHUB_TOKEN") or None
    redact.register(token)
    report = read_report(Path(run_dir))
    repo, issue = _where(repo, issue, report.params)
    handback = report.params.handback
    wanted = handback.labels_when_healthy if report.healthy else handback.labels_when_unhealthy
    add, remove = _label_moves(wanted)
    marker = report_marker(issue, report.params.target.name)
    from runbook_lib.render.summary import for_comment

    run, base = _history(Path(run_dir), report, previous)
    urls = _Urls(_api_base(api_url), repo, issue)

    if dry_run:
        decision = quiet.decide(notify, quiet.state_of(base) if base else None, quiet.state_of(run), now)
        body = comment_body(marker, for_comment(_summary(report, run, base, None), report_url, Path(run_dir)), report_url,
                            state=quiet.state_of(run, now.isoformat() if decision.notify else "").line())
        return _print_dry_run(urls, report, marker, body, add, remove, has_token=bool(token), out=out,
                              decision=decision)
    if not token:
        raise GitHubError(f"set GITHUB_TOKEN (a token with issues:write on {repo})")

    with _GitHub(urls, token) as gh:
        present = {name.casefold() for name in gh.issue_labels()}
        existing = gh.find_comment(marker)
        shown = quiet.parse_state(existing.get("body")) if existing is not None else None
        before = shown or (quiet.state_of(base) if base else None)
        decision = quiet.decide(notify, before, quiet.state_of(run), now)
        notified = now.isoformat() if decision.notify or existing is None else (before.notified if before else "")
        body = comment_body(marker, for_comment(_summary(report, run, base, shown), report_url, Path(run_dir)), report_url,
                            state=quiet.state_of(run, notified).line())
        if existing is None:
            comment_url, created = gh.create_comment(body), True
        elif decision.notify:
            # A new comment is what notifies subscribers; post it first, so a failed delete leaves two, never none.
            comment_url, created = gh.create_comment(body), True
            gh.delete_comment(existing)
        else:
            comment_url, created = gh.update_comment(existing, body), False
        removed, added = [], []
        if decision.move_labels or existing is None:
            for name in remove:
                if name.casefold() in present and gh.remove_label(name):
                    removed.append(name)
            added = gh.add_labels([name for name in add if name.casefold() not in present])
        outcome = AttachOutcome(comment_url, created, added, removed, list(gh.requests),
                                notified=created, why=decision.why)

    _print_outcome(outcome, urls, out)
    return outcome


# --- the report folder -----------------------------------------------------------------------


def read_report(run_dir: Path) -> Report:
    """Read summary.md, results.json's verdict and parameters.yaml from a report folder."""
    if not run_dir.is_dir():
        raise GitHubError(f"{run_dir}: no such report folder (pass the folder `runbook run` printed as 'Report: ...')")
    files = {name: run_dir / name for name in ("summary.md", "results.json", "parameters.yaml")}
    missing = [name for name, path in files.items() if not path.is_file()]
    if missing:
        raise GitHubError(
            f"{run_dir}: missing {', '.join(missing)}; is this a report folder written by `runbook run`?"
        )
    try:
        results = json.loads(files["results.json"].read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GitHubError(f"{files['results.json']}: not valid JSON ({exc})") from None
    verdict = results.get("verdict") if isinstance(results, dict) else None
    if not isinstance(verdict, dict) or not isinstance(verdict.get("healthy"), bool):
        raise GitHubError(f"{files['results.json']}: no verdict.healthy; re-run `runbook run` to rewrite the report")
    params = load_params(files["parameters.yaml"])
    return Report(
        summary=files["summary.md"].read_text(),
        healthy=verdict["healthy"],
        verdict_line=str(verdict.get("line", "")),
        params=params,
        results=results,
    )


def _history(run_dir: Path, report: Report, previous: Path | None):
    """This run as a history record, and the previous run of its target: ``--previous`` (a results.json
    or report folder), else the reports folder's catalog (when ``runbook run`` left one)."""
    from runbook_lib.history import Catalog
    from runbook_lib.history.catalog import FILENAME
    from runbook_lib.history.runs import UnreadableRun, read_results

    try:
        run = read_results(run_dir)
    except UnreadableRun as exc:
        raise GitHubError(f"{run_dir}: {exc}") from None
    base = None
    if previous is not None:
        try:
            base = read_results(Path(previous))
        except UnreadableRun as exc:
            raise GitHubError(f"--previous: {exc}; pass the results.json (or report folder) of an earlier run") from None
        if base.target != run.target:
            raise GitHubError(f"--previous: {previous} is a run of target {base.target!r}, this one of {run.target!r}")
        if base.dir == run.dir:
            base = None  # the same run (e.g. the artifact of this very job): nothing earlier to compare with
    elif (run_dir.parent / FILENAME).exists():
        with Catalog(run_dir.parent) as cat:
            cat.sync()
            base = cat.previous_completed(run.target, before=run_dir.name)
    return run, base


def _summary(report: Report, run, base, shown) -> str:
    """summary.md, with its "Since the last run" section rebuilt when the run had nothing to compare with."""
    from runbook_lib.history import compare
    from runbook_lib.history.text import as_markdown
    from runbook_lib.history.quiet import replace_since_section

    block = report.results.get("since_last_run") if isinstance(report.results, dict) else None
    if isinstance(block, dict) and block.get("base"):
        return report.summary
    if base is not None:
        cmp = compare(base, run)
    elif shown is not None and shown.run != run.dir:
        cmp = compare(shown.as_record(), run, partial=True)
    else:
        return report.summary
    return replace_since_section(report.summary, as_markdown(cmp))


def _where(repo: str | None, issue: int | None, params: Params) -> tuple[str, int]:
    repo = repo or params.handback.repo
    issue = issue if issue is not None else params.handback.issue
    if not repo:
        raise GitHubError("no repository to post to: pass --repo OWNER/NAME or set handback.repo in the parameters")
    if not REPO_RE.match(repo):
        raise GitHubError(f"--repo: expected OWNER/NAME, got {repo!r}")
    if issue is None:
        raise GitHubError("no issue to post to: pass --issue N or set handback.issue in the parameters")
    if issue < 1:
        raise GitHubError(f"--issue: expected a positive issue number, got {issue}")
    return repo, issue


def _label_moves(wanted: LabelChange) -> tuple[list[str], list[str]]:
    """Labels to add and to remove; a label listed in both is added (never removed then re-added)."""
    add = list(dict.fromkeys(wanted.add))
    adding = {name.casefold() for name in add}
    remove = [name for name in dict.fromkeys(wanted.remove) if name.casefold() not in adding]
    return add, remove


# --- the comment -----------------------------------------------------------------------------


def report_marker(issue: int, target: str) -> str:
    """The hidden line that identifies our comment for this issue and target."""
    return f"<!-- runbook:report issue={issue} target={target} -->"


def comment_body(marker: str, summary: str, report_url: str | None, *, state: str = "") -> str:
    """Marker (+ the hidden state line), the summary, and a link to the full report; redacted and
    within GitHub's size limit."""
    if state:
        marker = f"{marker}\n{state}"
    tail = f"\n\n**Full report:** {report_url}\n" if report_url else "\n"
    summary = redact.text(summary.strip())
    room = MAX_BODY_CHARS - len(marker) - len(tail) - 200
    if len(summary) > room:
        summary = (
            summary[:room].rstrip()
            + "\n\n_(summary truncated to fit a GitHub comment; the full report has all of it)_"
        )
    return redact.text(f"{marker}\n\n{summary}{tail}")


# --- GitHub ----------------------------------------------------------------------------------


def _api_base(api_url: str | None) -> str:
    base = (api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GitHubError(f"GITHUB_API_URL: expected http(s)://HOST[/PATH], got {base!r}")
    return base


@dataclass(frozen=True)
class _Urls:
    api: str
    repo: str
    issue: int

    @property
    def issue_url(self) -> str:
        return f"{self.api}/repos/{self.repo}/issues/{self.issue}"

    @property
    def comments(self) -> str:
        return f"{self.issue_url}/comments"

    @property
    def first_comments_page(self) -> str:
        return f"{self.comments}?per_page=100"

    def comment(self, comment_id: int | str) -> str:
        return f"{self.api}/repos/{self.repo}/issues/comments/{comment_id}"

    @property
    def labels(self) -> str:
        return f"{self.issue_url}/labels"

    def label(self, name: str) -> str:
        return f"{self.labels}/{quote(name, safe='')}"

    def path(self, url: str) -> str:
        """The URL relative to the API root, for messages."""
        return url[len(self.api):] if url.startswith(self.api) else url


class _GitHub:
    """A thin GitHub REST client: headers, deadline, retries and error translation in one place."""

    def __init__(self, urls: _Urls, token: str):
        self.urls = urls
        self.requests: list[tuple[str, str]] = []
        self._client = httpx.Client(
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "Authorization": f"Bearer {token}",
                "User-Agent": "runbook-attach",
            },
            timeout=TIMEOUT_S,
            # A renamed repository answers 301; httpx drops Authorization if the host changes.
            follow_redirects=True,
        )

    def __enter__(self) -> "_GitHub":
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    # The steps of a hand-back.

    def issue_labels(self) -> list[str]:
        issue = self._json(self.call("GET", self.urls.issue_url), "GET", self.urls.issue_url)
        return [label["name"] if isinstance(label, dict) else str(label) for label in issue.get("labels", [])]

    def find_comment(self, marker: str) -> dict[str, Any] | None:
        """Our earlier comment: the first whose body starts with the marker (a quote does not)."""
        url: str | None = self.urls.first_comments_page
        for _ in range(MAX_PAGES):
            if url is None:
                return None
            response = self.call("GET", url)
            page = self._json(response, "GET", url)
            if not isinstance(page, list):
                raise GitHubError(
                    f"GitHub answered GET {self.urls.path(url)} with no list of comments; check GITHUB_API_URL"
                )
            for comment in page:
                if (comment.get("body") or "").lstrip().startswith(marker):
                    return comment
            url = self._next_page(response)
        raise GitHubError(
            f"{self.urls.repo} issue #{self.urls.issue}: more than {MAX_PAGES} pages of comments; "
            "GitHub's pagination did not end"
        )

    def update_comment(self, comment: dict[str, Any], body: str) -> str:
        url = self.urls.comment(comment["id"])
        try:
            response = self.call("PATCH", url, json={"body": body})
        except GitHubError as exc:
            if getattr(exc, "status", None) == 403 and not getattr(exc, "rate_limited", False):
                # Only the comment's author (or a maintainer) may edit it.
                raise GitHubError(redact.text(
                    f"{exc}; and only the account that posted the earlier runbook comment "
                    f"{comment.get('html_url', url)} can edit it (delete it to start a new one)"
                )) from None
            raise
        return self._json(response, "PATCH", url).get("html_url", url)

    def create_comment(self, body: str) -> str:
        # Not idempotent: never re-sent after a timeout (it may have landed); the next attach finds
        # the marker and updates that comment instead.
        url = self.urls.comments
        response = self.call("POST", url, json={"body": body}, idempotent=False)
        return self._json(response, "POST", url).get("html_url", url)

    def delete_comment(self, comment: dict[str, Any]) -> None:
        """Remove our superseded comment (after its successor is posted); already gone is fine."""
        self.call("DELETE", self.urls.comment(comment["id"]), absent_ok=True)

    def remove_label(self, name: str) -> bool:
        """True if the label was removed; False if it was already gone (404)."""
        return self.call("DELETE", self.urls.label(name), absent_ok=True).status_code != 404

    def add_labels(self, names: list[str]) -> list[str]:
        if names:
            self.call("POST", self.urls.labels, json={"labels": names})
        return names

    # The transport.

    def call(
        self, method: str, url: str, *, json: Any = None, idempotent: bool = True, absent_ok: bool = False
    ) -> httpx.Response:
        self.requests.append((method, url))
        for attempt in range(1, ATTEMPTS + 1):
            last = attempt == ATTEMPTS
            try:
                response = self._client.request(method, url, json=json)
            except httpx.TransportError as exc:
                if last or not _safe_to_resend(exc, idempotent):
                    raise self._transport_error(method, url, exc, idempotent) from None
            else:
                if response.status_code < 400 or absent_ok and response.status_code == 404:
                    return response
                if response.status_code < 500 or last:
                    raise self._http_error(method, url, response)
            time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _next_page(self, response: httpx.Response) -> str | None:
        url = response.links.get("next", {}).get("url")
        if not url:
            return None
        # Follow pagination only on the API host: the token must never travel anywhere else.
        if urlsplit(url)[:2] != urlsplit(self.urls.api)[:2]:
            raise GitHubError(redact.text(
                f"GitHub's pagination pointed outside {self.urls.api} ({url}); refusing to send the token there"
            ))
        return url

    def _json(self, response: httpx.Response, method: str, url: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise GitHubError(redact.text(
                f"GitHub answered {method} {self.urls.path(url)} with something that is not JSON "
                f"(HTTP {response.status_code}); check GITHUB_API_URL"
            )) from None

    def _transport_error(self, method: str, url: str, exc: httpx.TransportError, idempotent: bool) -> GitHubError:
        where = f"{method} {self.urls.path(url)}"
        if isinstance(exc, httpx.TimeoutException):
            hint = (
                "retry later" if idempotent
                else "the comment may have been posted: run attach again, it updates that comment"
            )
            message = f"GitHub did not answer {where} within {TIMEOUT_S:g} s; {hint}"
        else:
            message = (
                f"cannot reach GitHub at {self.urls.api} ({where}: {exc or type(exc).__name__}); "
                "check the network or GITHUB_API_URL"
            )
        return GitHubError(redact.text(message))

    def _http_error(self, method: str, url: str, response: httpx.Response) -> GitHubError:
        err = GitHubError(redact.text(_http_message(method, self.urls, url, response)))
        # For callers that refine a message (GitHubError is a plain RunbookError).
        err.status = response.status_code  # type: ignore[attr-defined]
        err.rate_limited = response.headers.get("x-ratelimit-remaining") == "0" or (  # type: ignore[attr-defined]
            response.status_code in (403, 429) and "retry-after" in response.headers
        )
        return err


def _safe_to_resend(exc: httpx.TransportError, idempotent: bool) -> bool:
    """A request that never reached GitHub can always be re-sent; others only if idempotent."""
    return idempotent or isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))


def _http_message(method: str, urls: _Urls, url: str, response: httpx.Response) -> str:
    status, headers = response.status_code, response.headers
    if status == 401:
        return "GitHub rejected the token (401): check GITHUB_TOKEN"
    if status in (403, 429) and headers.get("x-ratelimit-remaining") == "0":
        return f"GitHub API rate limit exhausted: rate limited until {_reset_time(headers.get('x-ratelimit-reset'))}"
    if status in (403, 429) and headers.get("retry-after"):
        return f"GitHub secondary rate limit: rate limited for {headers['retry-after']} s; run attach again after that"
    if status == 403:
        return f"token lacks permission: needs issues:write (fine-grained) or repo scope on {urls.repo}"
    if status == 404:
        return f"{urls.repo} issue #{urls.issue} not found (or the token cannot see it)"
    message = _github_message(response)
    if status == 422:
        return f"GitHub refused {method} {urls.path(url)} (422): {message}"
    if status >= 500:
        return (
            f"GitHub failed {method} {urls.path(url)} with HTTP {status} after {ATTEMPTS} attempts "
            f"({message}); retry later"
        )
    return f"GitHub answered {method} {urls.path(url)} with HTTP {status}: {message}"


def _github_message(response: httpx.Response) -> str:
    """GitHub's own explanation: ``message`` plus any ``errors[].message`` details."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if not isinstance(data, dict):
        return str(data)[:200]
    message = str(data.get("message") or response.reason_phrase)
    # Validation errors carry either a message or resource/field/code.
    details = [
        str(e.get("message") or " ".join(str(e[k]) for k in ("resource", "field", "code") if e.get(k)))
        for e in data.get("errors") or []
        if isinstance(e, dict)
    ]
    details = [d for d in details if d]
    return f"{message} ({'; '.join(details)})" if details else message


def _reset_time(reset: str | None) -> str:
    try:
        return datetime.fromtimestamp(int(reset or ""), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return "the time GitHub gives in x-ratelimit-reset (not sent)"


# --- output ----------------------------------------------------------------------------------


def _print_dry_run(
    urls: _Urls, report: Report, marker: str, body: str, add: list[str], remove: list[str],
    *, has_token: bool, out: TextIO, decision=None,
) -> AttachOutcome:
    planned: list[tuple[str, str]] = [
        ("GET", urls.issue_url),
        ("GET", urls.first_comments_page),
        ("POST", urls.comments),
        *(("DELETE", urls.label(name)) for name in remove),
    ]
    if add:
        planned.append(("POST", urls.labels))
    lines = body.splitlines()
    preview = lines[:PREVIEW_LINES] + (["..."] if len(lines) > PREVIEW_LINES else [])
    which = "labels_when_healthy" if report.healthy else "labels_when_unhealthy"
    say = [
        f"Dry run: nothing is sent to GitHub ({urls.repo} issue #{urls.issue}, API {urls.api}).",
        f"Verdict: {report.verdict_line or ('HEALTHY' if report.healthy else 'UNHEALTHY')} -> handback.{which}",
        f"Token: {'set' if has_token else 'not set (GITHUB_TOKEN is needed to send)'}",
        *([f"Notify: {'new comment + labels' if decision.notify else 'quiet update'} ({decision.why}; "
           "the state in the marked comment, when there is one, decides)"] if decision else []),
        "Requests:",
        f"  GET    {urls.issue_url}  (current labels)",
        f"  GET    {urls.first_comments_page}  (find {marker}, following Link rel=\"next\")",
        f"  POST   {urls.comments}  (or PATCH {urls.comment('<id>')} if the marked comment exists)",
        f"         comment: {len(lines)} lines, {len(body)} characters:",
        *(f"         | {line}" for line in preview),
        *(f"  DELETE {urls.label(name)}  (label {name!r}, if present)" for name in remove),
    ]
    if add:
        say.append(f"  POST   {urls.labels}  labels: {', '.join(add)} (those not yet present)")
    if not add and not remove:
        say.append(f"  (no label changes: handback.{which} is empty)")
    out.write(redact.text("\n".join(say)) + "\n")
    return AttachOutcome(None, False, add, remove, planned, dry_run=True)


def _print_outcome(outcome: AttachOutcome, urls: _Urls, out: TextIO) -> None:
    action = "created" if outcome.created else "updated"
    say = [f"Comment {action} on {urls.repo}#{urls.issue}: {outcome.comment_url}"]
    moves = [f"+{name}" for name in outcome.labels_added] + [f"-{name}" for name in outcome.labels_removed]
    say.append(f"Labels: {' '.join(moves)}" if moves else "Labels: already as wanted, nothing changed")
    if outcome.why:
        say.append(f"{'Notified' if outcome.notified else 'Quiet'}: {outcome.why}")
    out.write(redact.text("\n".join(say)) + "\n")
