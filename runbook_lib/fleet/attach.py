"""Post a fleet roll-up (fleet.md) as one comment on the tracking issue, updated on later runs.

The comment starts with ``<!-- runbook:fleet issue=N manifest=NAME -->`` so the next fleet over
the same manifest edits it rather than adding another; the GitHub client (deadline, retries,
error messages, redaction of the token) is the one ``runbook attach`` uses. Labels stay with the
per-target hand-back.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TextIO

from runbook_lib import redact
from runbook_lib.errors import GitHubError
from runbook_lib.handback.attach import comment_body
from runbook_lib.handback.github import REPO_RE, GitHub, Urls, api_base


def fleet_marker(issue: int, manifest: str) -> str:
    return f"<!-- runbook:fleet issue={issue} manifest={Path(manifest).name} -->"


def attach_fleet(fdir: Path, *, repo: str, issue: int, report_url: str | None, dry_run: bool,
                 out: TextIO = sys.stdout) -> str | None:
    """Create or update the fleet comment; return its URL (None on a dry run)."""
    if not REPO_RE.match(repo or ""):
        raise GitHubError(f"--repo: expected OWNER/NAME, got {repo!r}")
    try:
        doc = json.loads((fdir / "fleet.json").read_text())
        summary = (fdir / "fleet.md").read_text()
    except (OSError, ValueError) as exc:
        raise GitHubError(f"{fdir}: no fleet roll-up here ({exc}); run `runbook fleet rollup` first") from None
    marker = fleet_marker(issue, doc.get("manifest", "fleet"))
    body = comment_body(marker, summary, report_url)
    urls = Urls(api_base(None), repo, issue)
    if dry_run:
        out.write(redact.text(f"Dry run: would post {len(body)} characters on {repo}#{issue} "
                              f"(updating the comment marked {marker} if there is one)\n{doc['line']}\n"))
        return None
    token = os.environ.get("GITHUB_TOKEN")
    if not token:
        raise GitHubError(f"set GITHUB_TOKEN (a token with issues:write on {repo})")
    redact.register(token)
    with GitHub(urls, token) as gh:
        existing = gh.find_comment(marker)
        url = gh.update_comment(existing, body) if existing is not None else gh.create_comment(body)
    out.write(redact.text(f"Fleet comment {'updated' if existing else 'created'} on {repo}#{issue}: {url}\n"))
    return url
