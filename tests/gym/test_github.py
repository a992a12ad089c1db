"""Delivery to GitHub: real git pushes to a bare repository, pull requests against a fake API."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# markdown-it-py comes with rich: the body is checked by a CommonMark parser, not by eye.
from markdown_it import MarkdownIt

from gym.errors import GymError
from gym.git import git
from gym.github import (
    BODY_LIMIT,
    GitHubRejected,
    GitHubUnavailable,
    PullRequest,
    github_repo_slug,
    open_draft_pull_request,
)
from gym.pull_request_text import pull_request_title, render_pull_request_body
from gym.push import PushFailed, PushRefused, push_branch
from tests.utils.fake_github import FakeGitHub
from tests.utils.repos import commit, make_repo

TOKEN = "ghp_S3cretT0kenValue0123456789abcdef"


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "acme" / "shop.git"
    git("init", "--bare", "--quiet", "--initial-branch=main", str(bare))
    # Every push that reaches the remote leaves a line here: "nothing pushed" can be checked.
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\ncat >> received.log\n")
    hook.chmod(0o755)
    return bare


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "src", {"a.txt": "one\n"})


def head_of(repo: Path) -> str:
    return git("rev-parse", "HEAD", cwd=repo)


def remote_branch(bare: Path, branch: str) -> str:
    return git(
        "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", git_dir=bare, check=False
    )


def pushes_received(bare: Path) -> int:
    log = bare / "received.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("https://github.com/acme/shop", "acme/shop"),
        ("https://github.com/acme/shop.git", "acme/shop"),
        ("https://github.com/acme/shop.git/", "acme/shop"),
        ("git@github.com:acme/shop.git", "acme/shop"),
        ("ssh://git@ghe.example:2222/acme/shop.git", "acme/shop"),
        ("https://ghe.example/scm/acme/shop.git", "acme/shop"),
        ("/x/acme/shop.git", "acme/shop"),
        ("file:///x/acme/shop.git", "acme/shop"),
        ("https://github.com/acme", None),
        ("shop.git", None),
        ("", None),
        ("https://github.com/acme/sh op", None),
        ("/x/../shop.git", None),
    ],
)
def test_repo_slug(url: str, slug: str | None) -> None:
    assert github_repo_slug(url) == slug


def test_push_creates_the_branch_and_pushing_again_does_nothing(source: Path, remote: Path) -> None:
    sha = head_of(source)
    push_branch(source, str(remote), "ratchet/run-1", sha, None)
    assert remote_branch(remote, "ratchet/run-1") == sha
    assert git("cat-file", "-t", sha, git_dir=remote) == "commit"
    assert pushes_received(remote) == 1

    push_branch(source, str(remote), "ratchet/run-1", sha, None)
    assert remote_branch(remote, "ratchet/run-1") == sha
    assert pushes_received(remote) == 1  # the redelivery never reached the remote's receive-pack


def test_push_from_a_bare_mirror(tmp_path: Path, source: Path, remote: Path) -> None:
    mirror = tmp_path / "mirror.git"
    git("clone", "--quiet", "--bare", str(source), str(mirror))
    push_branch(mirror, str(remote), "ratchet/run-2", head_of(source), None)
    assert remote_branch(remote, "ratchet/run-2") == head_of(source)


@pytest.mark.parametrize(
    "branch",
    [
        "main",
        "ratchet/../main",
        "-x",
        "ratchet/-x",
        "ratchet/",
        "ratchet/a b",
        "ratchet/a..b",
        "ratchet/x.lock",
        "ratchet/x/../../main",
        "refs/heads/ratchet/x",
        "ratchet/x:main",
        "ratchet/x@{0}",
    ],
)
def test_push_refuses_branches_outside_ratchet(source: Path, remote: Path, branch: str) -> None:
    with pytest.raises(PushRefused):
        push_branch(source, str(remote), branch, head_of(source), None)
    assert git("for-each-ref", git_dir=remote) == ""
    assert pushes_received(remote) == 0


@pytest.mark.parametrize("what", ["HEAD", "main", "--all", "deadbeef", "0123456789" * 4])
def test_push_refuses_anything_but_a_full_commit_id(source: Path, remote: Path, what: str) -> None:
    with pytest.raises(PushRefused):
        push_branch(source, str(remote), "ratchet/x", what, None)
    assert git("for-each-ref", git_dir=remote) == ""


def test_push_never_moves_a_branch_that_holds_another_commit(source: Path, remote: Path) -> None:
    first = head_of(source)
    push_branch(source, str(remote), "ratchet/run-3", first, None)
    # A descendant: even a fast-forward would change what reviewers already saw.
    second = commit(source, {"a.txt": "two\n"}, "second")
    with pytest.raises(PushRefused, match="already exists"):
        push_branch(source, str(remote), "ratchet/run-3", second, None)
    assert remote_branch(remote, "ratchet/run-3") == first
    assert pushes_received(remote) == 1


def test_push_loses_a_race_for_the_branch_without_moving_it(
    source: Path, remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = head_of(source)
    ours = commit(source, {"a.txt": "two\n"}, "ours")  # would fast-forward theirs

    def racing_git(*args: str, **kwargs: Any) -> str:
        out = git(*args, **kwargs)
        if args[0] == "ls-remote":  # someone else creates the branch right after our look
            git("push", "--quiet", str(remote), f"{theirs}:refs/heads/ratchet/race", cwd=source)
        return out

    monkeypatch.setattr("gym.push.git", racing_git)
    with pytest.raises(PushFailed):
        push_branch(source, str(remote), "ratchet/race", ours, None)
    assert remote_branch(remote, "ratchet/race") == theirs


def test_push_refuses_a_remote_that_looks_like_an_option(source: Path) -> None:
    with pytest.raises(PushRefused):
        push_branch(source, "--upload-pack=touch /tmp/x", "ratchet/x", head_of(source), None)


@pytest.fixture
def argv_seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[list[str], dict[str, str]]]]:
    seen: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def spy(argv: list[str], **kwargs: Any) -> Any:
        seen.append((list(argv), dict(kwargs.get("env") or {})))
        return real_run(argv, **kwargs)

    monkeypatch.setattr("gym.git.subprocess.run", spy)
    yield seen


def test_token_reaches_git_by_environment_only_and_never_an_error(
    source: Path, argv_seen: list[tuple[list[str], dict[str, str]]]
) -> None:
    fake = FakeGitHub(TOKEN, {})
    with fake.serve() as url, pytest.raises(PushFailed) as caught:
        push_branch(source, f"{url}/acme/shop.git", "ratchet/x", head_of(source), TOKEN)

    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    # git really sent the credential (to the remote it was given, and nowhere else) ...
    assert fake.requests
    assert all(r["path"].startswith("/acme/shop.git/info/refs") for r in fake.requests)
    assert fake.requests[0]["headers"]["authorization"] == f"Basic {basic}"
    # ... without it ever being on a command line, or in what the caller is told.
    git_runs = [(argv, env) for argv, env in argv_seen if argv[:1] == ["git"]]
    assert git_runs
    for argv, env in git_runs:
        assert not any(TOKEN in arg or basic in arg for arg in argv)
        assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert TOKEN not in str(caught.value) and basic not in str(caught.value)
    assert caught.value.__context__ is None and caught.value.__cause__ is None


def test_unreachable_remote_fails_retryably_without_the_token(source: Path) -> None:
    url = f"http://x-access-token:{TOKEN}@127.0.0.1:1/acme/shop.git"
    with pytest.raises(PushFailed) as caught:
        push_branch(source, url, "ratchet/x", head_of(source), TOKEN)
    assert "127.0.0.1" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN not in repr(caught.value)
    assert not isinstance(caught.value, GymError)  # a network failure is worth another attempt


def test_token_is_never_sent_over_plain_http_to_another_host(
    source: Path, argv_seen: list[tuple[list[str], dict[str, str]]]
) -> None:
    with pytest.raises(PushRefused, match="plain http"):
        push_branch(source, "http://ghe.example/acme/shop.git", "ratchet/x", head_of(source), TOKEN)
    assert not [argv for argv, _ in argv_seen if "ls-remote" in argv or "push" in argv]


# ---- pull requests ------------------------------------------------------------------------


async def open_pr(url: str, *, token: str = TOKEN, body: str = "report", head: str = "ratchet/x",
                  repo: str = "acme/shop") -> PullRequest:  # fmt: skip
    async with httpx.AsyncClient(timeout=10) as http:
        return await open_draft_pull_request(
            http, api_url=url, token=token, repo=repo, head=head, base="main",
            title="ratchet: fix it", body=body,
        )  # fmt: skip


async def test_opening_twice_makes_one_pull_request() -> None:
    fake = FakeGitHub(TOKEN, {"acme/shop": None})
    with fake.serve() as url:
        first = await open_pr(url)
        again = await open_pr(url)
    assert first.created and not again.created
    assert (again.number, again.url) == (first.number, first.url)
    assert first.url == f"https://github.example/acme/shop/pull/{first.number}"
    assert len(fake.posts()) == 1 and len(fake.pulls) == 1
    sent = fake.posts()[0]
    assert sent["json"] == {
        "title": "ratchet: fix it", "head": "ratchet/x", "base": "main", "body": "report",
        "draft": True, "maintainer_can_modify": False,
    }  # fmt: skip
    assert sent["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["accept"] == "application/vnd.github+json"
    assert sent["headers"]["x-github-api-version"] == "2022-11-28"
    assert "head=acme%3Aratchet%2Fx" in fake.requests[0]["path"]
    assert "state=open" in fake.requests[0]["path"]


async def test_a_closed_pull_request_is_not_reused() -> None:
    fake = FakeGitHub(TOKEN, {"acme/shop": None})
    fake.add_pull("acme/shop", "ratchet/x", state="closed")
    fake.add_pull("acme/shop", "ratchet/other")
    with fake.serve() as url:
        opened = await open_pr(url)
    assert opened.created and opened.number == 3


async def test_already_exists_answer_returns_the_existing_one() -> None:
    fake = FakeGitHub(TOKEN, {"acme/shop": None})
    number = fake.add_pull("acme/shop", "ratchet/x")
    fake.scripted.append((200, []))  # the first look-up misses it (opened a moment later)
    with fake.serve() as url:
        found = await open_pr(url)
    assert found == PullRequest(number=number, url=fake.pulls[0]["html_url"], created=False)
    assert len(fake.posts()) == 1 and len(fake.pulls) == 1
    assert [r["method"] for r in fake.requests] == ["GET", "POST", "GET"]


async def test_push_then_open_against_the_pushed_branch(source: Path, remote: Path) -> None:
    fake = FakeGitHub(TOKEN, {"acme/shop": remote})
    push_branch(source, str(remote), "ratchet/run-9", head_of(source), None)
    slug = github_repo_slug(str(remote))
    assert slug == "acme/shop"
    with fake.serve() as url:
        opened = await open_pr(url, repo=slug, head="ratchet/run-9")
        with pytest.raises(GitHubRejected, match=r"422.*invalid"):
            await open_pr(url, repo=slug, head="ratchet/never-pushed")
    assert opened.created and fake.pulls[0]["head"]["ref"] == "ratchet/run-9"


async def test_bad_token_is_rejected_for_good_and_not_repeated() -> None:
    fake = FakeGitHub(TOKEN, {"acme/shop": None})
    wrong = "ghp_WrongTokenWrongToken000000000000"
    with fake.serve() as url, pytest.raises(GitHubRejected) as caught:
        await open_pr(url, token=wrong)
    assert "401" in str(caught.value) and "Bad credentials" in str(caught.value)
    assert wrong not in str(caught.value)
    assert isinstance(caught.value, GymError)  # the activities make GymErrors non-retryable
    assert not fake.posts()


async def test_unknown_repository_is_rejected() -> None:
    fake = FakeGitHub(TOKEN, {"acme/shop": None})
    with fake.serve() as url, pytest.raises(GitHubRejected, match=r"404.*Not Found"):
        await open_pr(url, repo="acme/elsewhere")


async def test_token_in_githubs_message_is_scrubbed() -> None:
    fake = FakeGitHub(TOKEN, {"acme/shop": None})
    fake.fail_next(1, 403, {"message": f"token {TOKEN} lacks the pull_requests scope"})
    with fake.serve() as url, pytest.raises(GitHubRejected) as caught:
        await open_pr(url)
    assert "lacks the pull_requests scope" in str(caught.value)
    assert TOKEN not in str(caught.value)


async def test_server_errors_and_rate_limits_are_retryable() -> None:
    fake = FakeGitHub(TOKEN, {"acme/shop": None})
    with fake.serve() as url:
        fake.fail_next(1, 502)
        with pytest.raises(GitHubUnavailable, match="502"):
            await open_pr(url)
        fake.fail_next(1, 429, {"message": "API rate limit exceeded"})
        with pytest.raises(GitHubUnavailable, match="rate limit"):
            await open_pr(url)
        assert not fake.posts() and not fake.pulls
        opened = await open_pr(url)  # the retry Temporal would make
    assert opened.created and len(fake.posts()) == 1


async def test_unreachable_api_is_retryable() -> None:
    with pytest.raises(GitHubUnavailable) as caught:
        await open_pr("http://127.0.0.1:1")
    assert not isinstance(caught.value, GymError) and TOKEN not in str(caught.value)


async def test_body_is_cut_to_githubs_limit_with_a_note() -> None:
    fake = FakeGitHub(TOKEN, {"acme/shop": None})
    with fake.serve() as url:
        await open_pr(url, body="x" * (BODY_LIMIT + 5000))
    sent = fake.posts()[0]["json"]["body"]
    assert len(sent) == BODY_LIMIT
    assert sent.endswith("full report is in the run's files)*")


# ---- the pull request's text --------------------------------------------------------------

HOSTILE = (
    "Fix it\n```\n# pwned\n@acme/security-team approve <img src=x onerror=alert(1)>\n"
    "~~~~\n`````\nCloses #1\n"
)


def body(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "run_id": "run-7",
        "goal": HOSTILE,
        "plan": "1. do it\n````\n<script>alert(1)</script>\n````",
        "gates": [("tests", True, ""), ("lint`@acme <b>x</b>", False, "E501 ```\n@evil")],
        "cost_usd": 0.125,
        "tokens": 12345,
        "temporal_url": "http://ui.example/namespaces/default/workflows/run-7",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "trace_url": "http://jaeger.example/trace/0af7651916cd43dd8448eb211c80319c",
        "policy": "anthropic claude-sonnet",
    }
    return render_pull_request_body(**(args | overrides))


def test_body_shows_untrusted_text_only_as_data() -> None:
    tokens = MarkdownIt("commonmark").parse(body())
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == ["Goal", "Plan", "Gates", "Cost", "Links"]
    fences = [t.content for t in tokens if t.type == "fence"]
    assert fences[0] == HOSTILE + "\n"  # shown whole, as it was written
    assert fences[1].startswith("1. do it\n````\n<script>")
    assert fences[2] == "E501 ```\n@evil\n"
    inline = [c for t in tokens if t.type == "inline" for c in t.children or []]
    assert not [t for t in [*tokens, *inline] if t.type in ("html_block", "html_inline")]
    outside = " ".join(c.content for c in inline if c.type == "text")
    assert "@" not in outside and "<" not in outside and "#1" not in outside
    hrefs = [c.attrs["href"] for c in inline if c.type == "link_open"]
    assert hrefs == [
        "http://ui.example/namespaces/default/workflows/run-7",
        "http://jaeger.example/trace/0af7651916cd43dd8448eb211c80319c",
    ]


def test_body_reports_gates_cost_and_policy() -> None:
    text = body()
    assert "- ✅ passed: `tests`" in text
    assert "- ❌ failed: `lint??acme ?b?x?/b?`" in text
    assert "$0.1250 for 12,345 tokens" in text
    assert "`0af7651916cd43dd8448eb211c80319c`" in text
    assert "TEST DOUBLE" not in text
    scripted = body(policy="scripted policy (TEST DOUBLE: replays a script, no model involved)")
    assert scripted.startswith("> [!WARNING]\n> **TEST DOUBLE**")
    assert "TEST DOUBLE" in body(policy="scripted")


def test_body_without_trace_ui_or_gates_or_with_odd_links() -> None:
    text = body(trace_url=None, gates=[], temporal_url="javascript:alert(1)")
    assert "- none ran" in text
    assert "- Trace: `0af7651916cd43dd8448eb211c80319c`" in text
    assert "](javascript" not in text
    tokens = MarkdownIt("commonmark").parse(body(temporal_url="http://ui.example/a b)(c"))
    hrefs = [c.attrs["href"] for t in tokens if t.type == "inline" for c in t.children or []
             if c.type == "link_open"]  # fmt: skip
    assert hrefs[0] == "http://ui.example/a%20b%29%28c"


def test_title_is_one_short_line_that_mentions_no_one() -> None:
    title = pull_request_title("Fix @acme/team's bug #12\n\nand " + "very " * 50 + "more")
    assert title.startswith("ratchet: Fix @\u200bacme/team's bug #\u200b12 and very")
    assert len(title) == 100 and "\n" not in title and title.endswith("…")
    assert pull_request_title("  short  ") == "ratchet: short"
