"""A fake GitHub REST API on loopback: list and open pull requests, the way GitHub answers.

Every request is recorded (any path: git's smart-HTTP requests too, so a test can see what a push
sent). Scripted answers, when queued, are served first, in order, whatever the request.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gym.git import git
from tests.utils.loopback import serve_handler

Answer = tuple[int, Any]
_PULLS = re.compile(r"^/repos/([^/]+)/([^/]+)/pulls$")
DOCS = "https://docs.github.com/rest"


def validation_failed(message: str) -> Answer:
    error = {"resource": "PullRequest", "code": "custom", "message": message}
    return 422, {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS}


class FakeGitHub:
    """`repos` maps "owner/name" to its bare repository (heads must exist there) or None."""

    def __init__(self, token: str, repos: dict[str, Path | None]) -> None:
        self.token = token
        self.repos = repos
        self.pulls: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.scripted: list[Answer] = []
        self._lock = threading.Lock()

    def fail_next(self, count: int, status: int = 502, body: Any = None) -> None:
        self.scripted += [(status, body or {"message": "Server Error"})] * count

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    def add_pull(self, repo: str, head: str, base: str = "main", state: str = "open") -> int:
        number = len(self.pulls) + 1
        owner = repo.split("/")[0]
        self.pulls.append(
            {
                "number": number,
                "html_url": f"https://github.example/{repo}/pull/{number}",
                "url": f"https://api.github.example/repos/{repo}/pulls/{number}",
                "state": state,
                "draft": True,
                "title": "",
                "body": "",
                "maintainer_can_modify": False,
                "user": {"login": "ratchet-bot"},
                "head": {"ref": head, "label": f"{owner}:{head}"},
                "base": {"ref": base, "label": f"{owner}:{base}"},
                "_repo": repo,
            }
        )
        return number

    def answer(self, method: str, target: str, headers: dict[str, str], body: Any) -> Answer:
        with self._lock:
            self.requests.append(
                {"method": method, "path": target, "headers": headers, "json": body}
            )
            if self.scripted:
                return self.scripted.pop(0)
            match = _PULLS.match(urlsplit(target).path)
            if not match:
                return 404, {"message": "Not Found", "documentation_url": DOCS}
            if headers.get("authorization") not in (f"Bearer {self.token}", f"token {self.token}"):
                return 401, {"message": "Bad credentials", "documentation_url": DOCS}
            repo = f"{match.group(1)}/{match.group(2)}"
            if repo not in self.repos:
                return 404, {"message": "Not Found", "documentation_url": DOCS}
            if method == "GET":
                return 200, self._list(repo, parse_qs(urlsplit(target).query))
            return self._create(repo, body)

    def _list(self, repo: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = query.get("state", ["open"])[0]
        head = query.get("head", [None])[0]
        base = query.get("base", [None])[0]
        return [
            _public(p)
            for p in self.pulls
            if p["_repo"] == repo
            and state in ("all", p["state"])
            and head in (None, p["head"]["label"])
            and base in (None, p["base"]["ref"])
        ]

    def _create(self, repo: str, body: Any) -> Answer:
        if not isinstance(body, dict) or not all(body.get(k) for k in ("title", "head", "base")):
            return validation_failed("title, head and base are required")
        head, base = body["head"], body["base"]
        bare = self.repos[repo]
        ref = f"refs/heads/{head}"
        if bare is not None and not git("rev-parse", "--verify", "--quiet", ref, git_dir=bare,
                                        check=False):  # fmt: skip
            error = {"resource": "PullRequest", "field": "head", "code": "invalid"}
            return 422, {
                "message": "Validation Failed",
                "errors": [error],
                "documentation_url": DOCS,
            }
        owner = repo.split("/")[0]
        if any(p["_repo"] == repo and p["state"] == "open" and p["head"]["ref"] == head
               for p in self.pulls):  # fmt: skip
            return validation_failed(f"A pull request already exists for {owner}:{head}.")
        self.add_pull(repo, head, base)
        pull = self.pulls[-1]
        pull.update(
            title=body["title"],
            body=body.get("body") or "",
            draft=bool(body.get("draft")),
            maintainer_can_modify=bool(body.get("maintainer_can_modify")),
        )
        return 201, _public(pull)

    @contextmanager
    def serve(self) -> Iterator[str]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload = fake.answer(self.command, self.path, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, *args: object) -> None:
                return None

        with serve_handler(Handler) as url:
            yield url


def _public(pull: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pull.items() if not k.startswith("_")}
