"""A small in-memory GitHub REST API on 127.0.0.1 for testing ``runbook attach``.

It serves the endpoints attach uses (issue, comments with Link pagination, comment update, label
add/remove), records every request, checks the bearer token when given one, and can be told to
answer the next requests with an error (401, 403, 404, rate limit, 5xx) or to be slow::

    with FakeGitHub(page_size=2, token="ghp_...") as gh:
        gh.add_issue("acme/app", 7, labels=["bug"], comments=["first", "second", "third"])
        attach(..., api_url=gh.url)
        assert gh.count("POST", "/comments") == 1
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES = [
    ("GET", re.compile(rf"^/repos/{REPO}/issues/(?P<n>\d+)$"), "get_issue"),
    ("GET", re.compile(rf"^/repos/{REPO}/issues/(?P<n>\d+)/comments$"), "list_comments"),
    ("POST", re.compile(rf"^/repos/{REPO}/issues/(?P<n>\d+)/comments$"), "create_comment"),
    ("PATCH", re.compile(rf"^/repos/{REPO}/issues/comments/(?P<id>\d+)$"), "update_comment"),
    ("DELETE", re.compile(rf"^/repos/{REPO}/issues/comments/(?P<id>\d+)$"), "delete_comment"),
    ("POST", re.compile(rf"^/repos/{REPO}/issues/(?P<n>\d+)/labels$"), "add_labels"),
    ("DELETE", re.compile(rf"^/repos/{REPO}/issues/(?P<n>\d+)/labels/(?P<name>[^/]+)$"), "remove_label"),
]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorized: bool          # an Authorization header was present
    headers: dict[str, str]


@dataclass
class Scripted:
    status: int
    headers: dict[str, str]
    body: Any
    times: int | None         # None: every request from now on
    method: str | None        # None: any method


@dataclass
class FakeIssue:
    repo: str
    number: int
    labels: list[str] = field(default_factory=list)
    comment_ids: list[int] = field(default_factory=list)


class FakeGitHub:
    def __init__(self, *, page_size: int = 2, token: str | None = None):
        self.page_size = page_size
        self.token = token
        self.requests: list[Recorded] = []
        self.issues: dict[tuple[str, int], FakeIssue] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.delay_s = 0.0
        self._scripted: list[Scripted] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    def start(self) -> "FakeGitHub":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        # A short poll interval so stop() (and each test's teardown) returns quickly.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-github", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeGitHub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- state

    def add_issue(self, repo: str, number: int, *, labels: list[str] = (), comments: list[str] = ()) -> FakeIssue:
        issue = FakeIssue(repo, number, list(labels))
        self.issues[(repo, number)] = issue
        for body in comments:
            self._new_comment(issue, body, user="someone-else")
        return issue

    def comments_on(self, repo: str, number: int) -> list[dict[str, Any]]:
        return [self.comments[i] for i in self.issues[(repo, number)].comment_ids]

    def labels_on(self, repo: str, number: int) -> list[str]:
        return list(self.issues[(repo, number)].labels)

    def count(self, method: str, path_suffix: str = "") -> int:
        return sum(1 for r in self.requests if r.method == method and r.path.endswith(path_suffix))

    # --- scripted failures

    def answer(self, status: int, *, times: int | None = None, method: str | None = None,
               headers: dict[str, str] | None = None, body: Any = None) -> None:
        """Answer the next ``times`` requests (all, when None), of ``method`` if given, with this status."""
        default = {"message": {401: "Bad credentials", 403: "Resource not accessible by integration",
                               404: "Not Found"}.get(status, "Server Error")}
        self._scripted.append(Scripted(status, dict(headers or {}), default if body is None else body, times, method))

    def rate_limit(self, reset_epoch: int) -> None:
        self.answer(403, headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                                  "x-ratelimit-reset": str(reset_epoch)},
                    body={"message": "API rate limit exceeded"})

    # --- serving (called from handler threads)

    def handle(self, req: Recorded, base_url: str) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self.requests.append(req)
            scripted = self._take_scripted(req.method)
        if self.delay_s:
            self._stopping.wait(self.delay_s)
        if scripted is not None:
            return scripted.status, scripted.headers, scripted.body
        if self.token is not None and req.headers.get("authorization") != f"Bearer {self.token}":
            return 401, {}, {"message": "Bad credentials"}
        for method, pattern, name in ROUTES:
            match = pattern.match(req.path)
            if match and method == req.method:
                with self._lock:
                    return getattr(self, "_" + name)(req, base_url, **match.groupdict())
        return 404, {}, {"message": "Not Found"}

    def _take_scripted(self, method: str) -> Scripted | None:
        self._scripted = [s for s in self._scripted if s.times is None or s.times > 0]
        for scripted in self._scripted:
            if scripted.method in (None, method):
                if scripted.times is not None:
                    scripted.times -= 1
                return scripted
        return None

    def _issue(self, repo: str, n: str) -> FakeIssue | None:
        return self.issues.get((repo, int(n)))

    def _get_issue(self, req, base_url, repo, n):
        issue = self._issue(repo, n)
        if issue is None:
            return 404, {}, {"message": "Not Found"}
        return 200, {}, {"number": issue.number, "labels": [{"name": name} for name in issue.labels],
                         "html_url": f"https://github.com/{repo}/issues/{issue.number}"}

    def _list_comments(self, req, base_url, repo, n):
        issue = self._issue(repo, n)
        if issue is None:
            return 404, {}, {"message": "Not Found"}
        size = min(int(req.query.get("per_page", "30")), self.page_size)
        page = int(req.query.get("page", "1"))
        ids = issue.comment_ids
        last = max(1, -(-len(ids) // size))
        items = [self.comments[i] for i in ids[(page - 1) * size: page * size]]
        links = []
        if page < last:
            links.append(f'<{base_url}{req.path}?{urlencode({"per_page": size, "page": page + 1})}>; rel="next"')
            links.append(f'<{base_url}{req.path}?{urlencode({"per_page": size, "page": last})}>; rel="last"')
        return 200, ({"Link": ", ".join(links)} if links else {}), items

    def _create_comment(self, req, base_url, repo, n):
        issue = self._issue(repo, n)
        if issue is None:
            return 404, {}, {"message": "Not Found"}
        if not _body_ok(req.body):
            missing = {"resource": "IssueComment", "code": "missing_field", "field": "body"}
            return 422, {}, {"message": "Validation Failed", "errors": [missing]}
        return 201, {}, self._new_comment(issue, req.body["body"], user="runbook-bot")

    def _update_comment(self, req, base_url, repo, id):
        comment = self.comments.get(int(id))
        if comment is None or comment["repo"] != repo:
            return 404, {}, {"message": "Not Found"}
        if not _body_ok(req.body):
            return 422, {}, {"message": "Validation Failed"}
        comment["body"] = req.body["body"]
        return 200, {}, comment

    def _delete_comment(self, req, base_url, repo, id):
        comment = self.comments.get(int(id))
        if comment is None or comment["repo"] != repo:
            return 404, {}, {"message": "Not Found"}
        del self.comments[int(id)]
        for issue in self.issues.values():
            if int(id) in issue.comment_ids:
                issue.comment_ids.remove(int(id))
        return 204, {}, b""

    def _add_labels(self, req, base_url, repo, n):
        issue = self._issue(repo, n)
        if issue is None:
            return 404, {}, {"message": "Not Found"}
        names = (req.body or {}).get("labels") if isinstance(req.body, dict) else None
        if not isinstance(names, list) or not all(isinstance(x, str) and x for x in names):
            return 422, {}, {"message": "Invalid request.\n\nFor 'links/0/schema', nil is not an array."}
        for name in names:
            if name.casefold() not in {x.casefold() for x in issue.labels}:
                issue.labels.append(name)
        return 200, {}, [{"name": name} for name in issue.labels]

    def _remove_label(self, req, base_url, repo, n, name):
        issue = self._issue(repo, n)
        if issue is None:
            return 404, {}, {"message": "Not Found"}
        name = unquote(name)
        kept = [x for x in issue.labels if x.casefold() != name.casefold()]
        if len(kept) == len(issue.labels):
            return 404, {}, {"message": "Label does not exist"}
        issue.labels = kept
        return 200, {}, [{"name": x} for x in kept]

    def _new_comment(self, issue: FakeIssue, body: str, *, user: str) -> dict[str, Any]:
        self._next_id += 1
        cid = self._next_id
        comment = {
            "id": cid, "body": body, "user": {"login": user}, "repo": issue.repo,
            "html_url": f"https://github.com/{issue.repo}/issues/{issue.number}#issuecomment-{cid}",
        }
        self.comments[cid] = comment
        issue.comment_ids.append(cid)
        return comment


def _body_ok(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("body"), str) and bool(body["body"].strip())


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeGitHub/1"

    def _serve(self) -> None:
        fake: FakeGitHub = self.server.fake  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        req = Recorded(
            method=self.command,
            path=parts.path,
            query={k: v[-1] for k, v in parse_qs(parts.query).items()},
            body=body,
            authorized="authorization" in {k.lower() for k in self.headers},
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        host, port = self.server.server_address[:2]
        status, headers, payload = fake.handle(req, f"http://{host}:{port}")
        data = json.dumps(payload).encode() if not isinstance(payload, (bytes, str)) else (
            payload.encode() if isinstance(payload, str) else payload)
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to answer

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass
