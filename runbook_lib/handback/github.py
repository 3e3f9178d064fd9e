"""The GitHub REST client of the hand-back: headers, a deadline on every call, retries only where
re-sending is safe, pagination kept on the API host, and HTTP answers translated into one line.

Every call has a deadline and 5xx answers (or a failed connection) are retried a few times; a
comment POST is never re-sent after a timeout (it may have landed). HTTP errors become
``GitHubError`` messages that say what to fix (token, permission, rate limit, missing issue). The
token is registered with ``redact`` by the caller and every message passes through it, so it
cannot leak through an error. What to post is ``attach.py``'s business.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from runbook_lib import redact
from runbook_lib.errors import GitHubError

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
TIMEOUT_S = 10.0
ATTEMPTS = 3            # one call plus two retries on 5xx or a connection failure
RETRY_BACKOFF_S = 1.0   # doubled after each failed attempt
MAX_PAGES = 100         # 10,000 comments: far beyond any tracking issue, bounds a bad Link loop
REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def api_base(api_url: str | None) -> str:
    base = (api_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GitHubError(f"GITHUB_API_URL: expected http(s)://HOST[/PATH], got {base!r}")
    return base


@dataclass(frozen=True)
class Urls:
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


class GitHub:
    """A thin GitHub REST client: headers, deadline, retries and error translation in one place."""

    def __init__(self, urls: Urls, token: str):
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

    def __enter__(self) -> "GitHub":
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


def _http_message(method: str, urls: Urls, url: str, response: httpx.Response) -> str:
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
