"""Which repositories a run may read: the gate's answer to SSRF through a repo URL.

A local path (or file:// URL) must lie under one of RATCHET_REPO_ROOTS when they are set; a
remote goes over https, ssh or git to a host that is not this machine or its private network
(unless RATCHET_ALLOW_PRIVATE_REPO_HOSTS=1). The check resolves the host once; git resolves it
again when it clones, so a rebinding DNS name is only narrowed, not closed: set the roots and
egress rules of the deployment for that.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from pathlib import Path
from urllib.parse import unquote, urlsplit

from fastapi import HTTPException

from gym.workspace import is_remote
from ratchet.settings import Settings

_SCP_LIKE = re.compile(r"^[\w.-]+@(?P<host>[\w.-]+):")
_PRIVATE_NAMES = ("localhost", ".localhost", ".local", ".internal", ".lan", ".home.arpa")
RESOLVE_TIMEOUT_S = 2.0


async def check_repo(repo: str, settings: Settings) -> None:
    """422 with the reason when `repo` is out of bounds; nothing when it may be read."""
    if repo.startswith("file://"):
        _check_local(unquote(urlsplit(repo).path), settings, shown=repo)
    elif is_remote(repo):
        host = _host(repo)
        if not host:
            raise HTTPException(422, f"repo URL has no host: {repo[:200]!r}")
        if host.startswith("-"):  # an option to ssh, not a host
            raise HTTPException(422, f"repo URL host may not start with '-': {repo[:200]!r}")
        if not settings.allow_private_repo_hosts and await _private(host):
            raise HTTPException(
                422, f"repo host {host!r} is this machine or a private network: refused "
                "(RATCHET_ALLOW_PRIVATE_REPO_HOSTS=1 allows it)",
            )  # fmt: skip
    else:
        _check_local(repo, settings, shown=repo)


def _check_local(path_text: str, settings: Settings, *, shown: str) -> None:
    path = Path(path_text)
    if not path.is_absolute():
        raise HTTPException(422, f"repo must be an absolute path or a git URL, got {shown[:200]!r}")
    if not settings.repo_roots:
        return
    real = path.resolve()  # symlinks followed: a link inside a root to outside it is outside
    if not any(real.is_relative_to(root.resolve()) for root in settings.repo_roots):
        roots = ", ".join(str(r) for r in settings.repo_roots)
        raise HTTPException(422, f"repo {shown[:200]!r} is outside the allowed roots ({roots})")


def _host(repo: str) -> str:
    """The host, lowercased, without the trailing dot a fully qualified name may carry."""
    if scp := _SCP_LIKE.match(repo):
        return scp.group("host").lower().rstrip(".")
    return (urlsplit(repo).hostname or "").lower().rstrip(".")


async def _private(host: str) -> bool:
    if host.endswith(_PRIVATE_NAMES) or host in ("localhost", "ip6-localhost"):
        return True
    try:
        return _private_address(ipaddress.ip_address(host))
    except ValueError:
        pass  # a name: look at what it resolves to
    try:
        infos = await asyncio.wait_for(
            asyncio.to_thread(socket.getaddrinfo, host, None), RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError):
        return False  # unresolvable here: git will fail on it the same way, with its message
    return any(_private_address(ipaddress.ip_address(info[4][0])) for info in infos)


def _private_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        address.is_private or address.is_loopback or address.is_link_local
        or address.is_reserved or address.is_multicast or address.is_unspecified
    )  # fmt: skip
