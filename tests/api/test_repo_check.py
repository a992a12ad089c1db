"""Which repositories a run may read: local paths under the allowed roots (links followed), and
remotes on hosts that are neither this machine nor a private network. No DNS is needed here:
every host is a literal address or a name refused by its suffix."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi import HTTPException

from api.repo_check import check_repo
from ratchet.settings import Settings
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.settings import make_settings

NO_TEMPORAL = "127.0.0.1:1"  # check_repo never talks to Temporal


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return make_settings(tmp_path / "home", NO_TEMPORAL, **overrides)


async def refused(repo: str, settings: Settings) -> str:
    with pytest.raises(HTTPException) as err:
        await check_repo(repo, settings)
    assert err.value.status_code == 422
    return str(err.value.detail)


@pytest.mark.parametrize(
    "repo",
    [
        "https://localhost/shop.git",
        "https://LOCALHOST./shop.git",  # case and the trailing dot of a qualified name
        "https://git.internal/shop.git",
        "https://build.local/shop.git",
        "https://127.0.0.1/shop.git",
        "https://[::1]/shop.git",
        "https://169.254.169.254/latest/meta-data",  # the cloud metadata address
        "ssh://git@192.168.1.20/shop.git",
        "git://10.0.0.5/shop.git",
        "git@172.16.0.9:team/shop.git",  # scp-like
        "https://0.0.0.0/shop.git",
    ],
)
async def test_a_private_or_local_host_is_refused(repo: str, tmp_path: Path) -> None:
    detail = await refused(repo, settings(tmp_path))
    assert "is this machine or a private network: refused" in detail
    assert "RATCHET_ALLOW_PRIVATE_REPO_HOSTS=1" in detail


async def test_private_hosts_are_allowed_when_the_deployment_says_so(tmp_path: Path) -> None:
    allowed = settings(tmp_path, allow_private_repo_hosts=True)
    for repo in ("https://127.0.0.1/shop.git", "git@git.internal:team/shop.git"):
        assert await check_repo(repo, allowed) is None


async def test_a_public_address_is_allowed(tmp_path: Path) -> None:
    assert await check_repo("https://93.184.215.14/shop.git", settings(tmp_path)) is None
    assert await check_repo("ssh://git@[2606:4700::1111]/shop.git", settings(tmp_path)) is None


@pytest.mark.parametrize(
    ("repo", "message"),
    [
        ("https:///shop.git", "repo URL has no host: 'https:///shop.git'"),
        ("ssh://-oProxyCommand=touch%20x/shop", "repo URL host may not start with '-'"),
        ("relative/shop", "repo must be an absolute path or a git URL, got 'relative/shop'"),
        ("file://shop", "repo must be an absolute path or a git URL, got 'file://shop'"),
    ],
)
async def test_a_repo_that_names_no_place_is_refused(
    repo: str, message: str, tmp_path: Path
) -> None:
    assert message in await refused(repo, settings(tmp_path))


async def test_without_roots_any_absolute_path_may_be_read(tmp_path: Path) -> None:
    assert await check_repo(str(tmp_path / "not-even-there"), settings(tmp_path)) is None


async def test_with_roots_a_path_must_lie_under_one_links_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    inside = make_repo(root / "my shop", PY_REPO)
    secret = make_repo(outside / "secret", PY_REPO)
    (root / "escape").symlink_to(secret)  # under the root by name, outside in fact
    bounded = settings(tmp_path, repo_roots=[tmp_path / "elsewhere", root])
    assert await check_repo(str(inside), bounded) is None
    assert await check_repo(f"file://{quote(str(inside))}", bounded) is None  # %20 decoded
    for repo in (str(secret), str(root / "escape"), f"file://{secret}", str(root / ".." / "x")):
        detail = await refused(repo, bounded)
        assert detail == (
            f"repo {repo!r} is outside the allowed roots ({tmp_path / 'elsewhere'}, {root})"
        )
