"""The package indexes this machine's pip and npm are configured with: the hosts an
environment build may reach by default, and the index settings handed to the build (the
host's config files are not, since they may name files the sandbox cannot see)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from urllib.parse import urlsplit

PYPI_HOSTS = ("pypi.org", "files.pythonhosted.org")
NPM_DEFAULT = "https://registry.npmjs.org/"


@cache
def _pip_config() -> dict[str, str]:
    """pip's effective index settings (its own `pip config list`, files and environment)."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
            timeout=30, check=False,
        ).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, _, value = line.partition("=")
        key = name.rsplit(".", 1)[-1]
        if key == "cert":
            found["cert"] = value.strip().strip("'\"")
        if key in ("index-url", "extra-index-url"):
            found[key] = (found.get(key, "") + " " + value.strip().strip("'\"")).strip()
    for key, variable in (
        ("index-url", "PIP_INDEX_URL"),
        ("extra-index-url", "PIP_EXTRA_INDEX_URL"),
    ):
        if os.environ.get(variable):
            found[key] = os.environ[variable]
    return found


def _usable(url: str) -> bool:
    """An index a build can use through the proxy: http(s), and no credentials in the URL
    (the build gets no secrets)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username


def pip_settings() -> dict[str, str]:
    config = _pip_config()
    env: dict[str, str] = {}
    index = [u for u in config.get("index-url", "").split() if _usable(u)]
    extra = [u for u in config.get("extra-index-url", "").split() if _usable(u)]
    if index:
        env["PIP_INDEX_URL"] = index[0]
    if extra:
        env["PIP_EXTRA_INDEX_URL"] = " ".join(extra)
    cert = config.get("cert", "")
    # The CA bundle this machine trusts (a TLS-inspecting gateway's CA may be in it), when the
    # sandbox shows it (system directories only): pip, requests, uv and node all read it.
    if cert.startswith(("/etc/", "/usr/")) and os.path.isfile(cert):
        env |= {"PIP_CERT": cert, "SSL_CERT_FILE": cert, "REQUESTS_CA_BUNDLE": cert,
                "NODE_EXTRA_CA_CERTS": cert}  # fmt: skip
    return env


@cache
def _npm_registry() -> str:
    npm = shutil.which("npm")
    if npm is None:
        return NPM_DEFAULT
    try:
        out = subprocess.run(
            [npm, "config", "get", "registry"], capture_output=True, text=True, timeout=30,
            check=False,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return NPM_DEFAULT
    return out if _usable(out) else NPM_DEFAULT


GO_PROXY_DEFAULT = "https://proxy.golang.org"
GO_SUMDB_HOST = "sum.golang.org"


@cache
def go_proxy() -> str:
    """The module proxy this machine's Go uses (`go env GOPROXY`, its first http(s) entry):
    a build downloads modules from it, never "direct" from their repositories."""
    go = shutil.which("go")
    out = ""
    if go is not None:
        try:
            out = subprocess.run([go, "env", "GOPROXY"], capture_output=True, text=True,
                                 timeout=30, check=False).stdout.strip()  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            out = ""
    usable = [u for u in out.replace("|", ",").split(",") if _usable(u)]
    return usable[0] if usable else GO_PROXY_DEFAULT


def go_settings(seen: str, *, online: bool) -> dict[str, str]:
    """Go's module and build settings for a command in an environment seen at `seen`: its
    modules kept in the environment (downloaded by the build, read offline by every later
    step), its own toolchain only."""
    env = {"GOPATH": f"{seen}/go", "GOMODCACHE": f"{seen}/go/pkg/mod", "GOTOOLCHAIN": "local",
           "GOFLAGS": "-modcacherw", "GOTELEMETRY": "off"}  # fmt: skip
    return env | ({"GOPROXY": go_proxy()} if online else {"GOPROXY": "off"})


CRATES_IO_HOSTS = ("index.crates.io", "static.crates.io")


def cargo_settings(seen: str, *, online: bool) -> dict[str, str]:
    """Cargo's home in the environment: the build's `cargo fetch` fills its registry cache, and
    every later step builds from it without the network."""
    return {"CARGO_HOME": f"{seen}/cargo", "CARGO_NET_OFFLINE": "false" if online else "true",
            "CARGO_TERM_COLOR": "never"}  # fmt: skip


def toolchain_settings(seen: str, *, online: bool) -> dict[str, str]:
    """Where Go's and cargo's downloads live for a command in an environment seen at `seen`."""
    return go_settings(seen, online=online) | cargo_settings(seen, online=online)


def default_allowed_hosts() -> list[str]:
    """pip's index (PyPI and its file host unless another index is set), its extra indexes,
    npm's registry, Go's module proxy (with its checksum database when it is Google's) and
    crates.io's index and downloads."""
    settings = pip_settings()
    hosts = [] if "PIP_INDEX_URL" in settings else list(PYPI_HOSTS)
    hosts += CRATES_IO_HOSTS
    urls = [
        settings.get("PIP_INDEX_URL", ""),
        settings.get("PIP_EXTRA_INDEX_URL", ""),
        _npm_registry(),
        go_proxy(),
    ]
    if go_proxy() == GO_PROXY_DEFAULT:
        hosts.append(GO_SUMDB_HOST)
    for url in " ".join(urls).split():
        parts = urlsplit(url)
        if parts.hostname:
            hosts.append(parts.netloc if parts.port else parts.hostname)
    return sorted(set(hosts))
