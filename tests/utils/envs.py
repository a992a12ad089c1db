"""The default environment (a venv with pytest, no setup), built for real once per test process,
for tests that run commands in the sealed sandbox without a workflow around them."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

from gym.allowlist import Allowlist
from gym.envdef import EnvDefinition, definition_for
from gym.environments import Environment, Environments
from gym.runner import Limits
from gym.sandbox import BwrapSandbox, Sandbox


@cache
def default_environment() -> Path:
    home = Path(tempfile.mkdtemp(prefix="ratchet-test-envs-"))
    atexit.register(shutil.rmtree, home, True)
    empty = home / "workspace"
    empty.mkdir()

    async def workspace() -> Path:
        return empty

    async def build() -> Path:
        env = await Environments(home).ensure(
            "tests-default", EnvDefinition((), (), "default: tests"), workspace,
            sandbox=BwrapSandbox(), limits=Limits(timeout_s=120), allowlist=Allowlist(),
        )  # fmt: skip
        return env.path

    # Tests call this from inside their own event loop: build on a loop of its own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, build()).result()


def sealed() -> Sandbox:
    """The sealed bubblewrap sandbox with the default environment."""
    return BwrapSandbox().with_environment(default_environment())


async def built(
    home: Path, repo: Path, setup: list[str], *, allowed: list[str]
) -> tuple[Sandbox, Environment]:
    """The environment `setup` makes for `repo` (a real build, through the egress proxy)."""
    definition = definition_for(
        repo, requested_setup=setup, requested_key_files=None, toml_setup=None,
        toml_key_files=None,
    )  # fmt: skip

    async def workspace(key: str) -> Path:
        build = home / "build" / key
        shutil.copytree(repo, build, symlinks=True)
        return build

    env = await Environments(home).for_workspace(
        str(repo), repo, definition, workspace, sandbox=BwrapSandbox(),
        limits=Limits(timeout_s=300), allowlist=Allowlist.of(*allowed),
    )  # fmt: skip
    return BwrapSandbox().with_environment(env.path), env


def otel_setup(index_url: str) -> list[str]:
    """Installs the OpenTelemetry SDK and its OTLP/HTTP exporter from a loopback index."""
    return [f"python -m pip install --no-cache-dir --index-url {index_url} {OTEL_PACKAGES}"]


OTEL_PACKAGES = "opentelemetry-sdk opentelemetry-exporter-otlp-proto-http"
