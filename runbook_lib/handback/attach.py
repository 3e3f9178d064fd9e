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

The requests go through ``github.GitHub`` (deadline, safe retries, errors as one line). The token
is registered with ``redact`` and every message passes through it, so the token cannot leak
through an error or a printed line.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from runbook_lib import redact
from runbook_lib.errors import GitHubError
from runbook_lib.handback.github import REPO_RE, GitHub, Urls, api_base
from runbook_lib.params import LabelChange, Params, load_params
from runbook_lib.util import clock

# GitHub refuses comment bodies over 65,536 characters; keep a margin for the truncation note.
MAX_BODY_CHARS = 65_000
PREVIEW_LINES = 8


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
    urls = Urls(api_base(api_url), repo, issue)

    if dry_run:
        decision = quiet.decide(notify, quiet.state_of(base) if base else None, quiet.state_of(run), now)
        body = comment_body(marker, for_comment(_summary(report, run, base, None), report_url, Path(run_dir)), report_url,
                            state=quiet.state_of(run, now.isoformat() if decision.notify else "").line())
        return _print_dry_run(urls, report, marker, body, add, remove, has_token=bool(token), out=out,
                              decision=decision)
    if not token:
        raise GitHubError(f"set GITHUB_TOKEN (a token with issues:write on {repo})")

    with GitHub(urls, token) as gh:
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
    params = load_params(files["parameters.yaml"], archived=True)
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
    from runbook_lib.history.quiet import replace_since_section
    from runbook_lib.history.text import as_markdown

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


# --- output ----------------------------------------------------------------------------------


def _print_dry_run(
    urls: Urls, report: Report, marker: str, body: str, add: list[str], remove: list[str],
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


def _print_outcome(outcome: AttachOutcome, urls: Urls, out: TextIO) -> None:
    action = "created" if outcome.created else "updated"
    say = [f"Comment {action} on {urls.repo}#{urls.issue}: {outcome.comment_url}"]
    moves = [f"+{name}" for name in outcome.labels_added] + [f"-{name}" for name in outcome.labels_removed]
    say.append(f"Labels: {' '.join(moves)}" if moves else "Labels: already as wanted, nothing changed")
    if outcome.why:
        say.append(f"{'Notified' if outcome.notified else 'Quiet'}: {outcome.why}")
    out.write(redact.text("\n".join(say)) + "\n")
