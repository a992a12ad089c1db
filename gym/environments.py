"""Repository environments: venvs built once per key under `$RATCHET_HOME/envs/<key>`.

An environment is built in the sandbox at the path every later command sees it at, so the
scripts pip writes and an editable install of the workspace stay valid: the venv is created
there, seeded with pytest (copied from Ratchet's own installation, no download), then the
setup commands run in a throwaway workspace at the sandbox's fixed workspace path, reaching
the network only through the egress proxy. The manifest is written last: a directory without
one is a build that did not finish and is built again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from gym import egress, indexes
from gym.allowlist import Allowlist
from gym.envdef import EnvDefinition, key_for
from gym.errors import GymError
from gym.process import Tick
from gym.runner import Limits, run_command
from gym.sandbox import KEPT_IN_WORKSPACE, RESULTS_INSIDE, SCRATCH_IN_KEPT, Sandbox
from gym.sealed_root import base_python
from gym.seeding import seed

MANIFEST = "ratchet-env.json"
LOG_TAIL = 3000


class EnvironmentBuildFailed(GymError):
    """A setup command failed: retrying builds the same thing and fails the same way."""

    def __init__(self, message: str, log: bytes = b"") -> None:
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class Environment:
    key: str
    path: Path
    source: str
    setup: tuple[str, ...]
    cache_hit: bool
    duration_s: float = 0.0
    log: bytes = b""
    egress: list[str] = field(default_factory=list)
    """The proxy's decisions while it was built ("allowed host:port", "refused ...")."""


def interpreter_id() -> str:
    return f"{base_python()} {sys.version.split()[0]}"


class Environments:
    """The environments of one worker's `$RATCHET_HOME`."""

    def __init__(self, home: Path) -> None:
        self.root = home / "envs"

    def path_for(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str, definition: EnvDefinition) -> Environment | None:
        """A finished environment of this key, or None: a lookup, never a build."""
        path = self.path_for(key)
        if not (path / MANIFEST).is_file():
            return None
        return Environment(key, path, definition.source, definition.setup, cache_hit=True)

    async def for_workspace(
        self,
        repo: str,
        ws: Path,
        definition: EnvDefinition,
        build_workspace: Callable[[str], Awaitable[Path]],
        *,
        sandbox: Sandbox,
        limits: Limits,
        allowlist: Allowlist,
        tick: Tick | None = None,
    ) -> Environment:
        """The environment `definition` makes for the commit checked out at `ws`
        (`build_workspace(key)` gives a throwaway workspace of that commit to build in)."""
        key = await asyncio.to_thread(key_for, repo, ws, definition, interpreter_id(), sandbox.name)
        return await self.ensure(
            key, definition, lambda: build_workspace(key), sandbox=sandbox, limits=limits,
            allowlist=allowlist, tick=tick,
        )  # fmt: skip

    async def ensure(
        self,
        key: str,
        definition: EnvDefinition,
        build_workspace: Callable[[], Awaitable[Path]],
        *,
        sandbox: Sandbox,
        limits: Limits,
        allowlist: Allowlist,
        tick: Tick | None = None,
    ) -> Environment:
        """The environment of `key`, built at most once however many runs ask at the same time
        (a lock per key, across processes)."""
        if (found := self.lookup(key, definition)) is not None:
            return found
        self.root.mkdir(parents=True, exist_ok=True)
        async with _locked(self.root / f"{key}.lock", tick):
            if (found := self.lookup(key, definition)) is not None:
                return found
            workspace = await build_workspace()
            return await self._build(
                key, definition, workspace, sandbox=sandbox, limits=limits, allowlist=allowlist,
                tick=tick,
            )  # fmt: skip

    async def _build(
        self,
        key: str,
        definition: EnvDefinition,
        workspace: Path,
        *,
        sandbox: Sandbox,
        limits: Limits,
        allowlist: Allowlist,
        tick: Tick | None,
    ) -> Environment:
        started = time.monotonic()
        path = self.path_for(key)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        builder = sandbox.with_environment(path, writable=True)
        seen = builder.environment_seen() or str(path)
        log = bytearray()
        results = Path(tempfile.mkdtemp(prefix="ratchet-env-"))
        try:
            without_pip = "" if definition.setup else " --without-pip"
            create = f"{builder.tool_python()} -m venv{without_pip} {seen}"
            await self._step(create, workspace, builder, limits, results, log, definition, tick)
            seed(path, seen)
            async with egress.EgressProxy(results / "egress.sock", allowlist) as proxy:
                shutil.copy(egress.BRIDGE_SOURCE, results / "egress_bridge.py")
                for command in definition.setup:
                    await self._step(
                        command, workspace, builder, limits, results, log, definition, tick,
                        online=True,
                    )  # fmt: skip
                decisions = proxy.summary()
            _keep_workspace_dirs(workspace, path)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(results, ignore_errors=True)
        duration = round(time.monotonic() - started, 3)
        manifest = {
            "key": key, "source": definition.source, "setup": list(definition.setup),
            "key_files": list(definition.key_files), "interpreter": interpreter_id(),
            "seen_at": seen, "built_in_s": duration, "egress": decisions,
        }  # fmt: skip
        (path / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return Environment(
            key, path, definition.source, definition.setup, cache_hit=False,
            duration_s=duration, log=bytes(log), egress=decisions,
        )  # fmt: skip

    async def _step(
        self,
        command: str,
        workspace: Path,
        sandbox: Sandbox,
        limits: Limits,
        results: Path,
        log: bytearray,
        definition: EnvDefinition,
        tick: Tick | None,
        *,
        online: bool = False,
    ) -> None:
        log.extend(f"$ {command}\n".encode())
        script = command
        if online:
            inside = RESULTS_INSIDE if sandbox.name != "none" else str(results)
            script = egress.bridge_command(
                sandbox.tool_python(), f"{inside}/egress_bridge.py", f"{inside}/egress.sock",
                f"{inside}/egress.port",
            ) + f"\n{command}"  # fmt: skip
        result = await run_command(
            script, workspace, limits=limits, sandbox=sandbox,
            env=build_env(sandbox.environment_seen() or ""), results=results, tick=tick,
        )  # fmt: skip
        log.extend(result.output)
        if result.exit_code != 0:
            tail = result.output[-LOG_TAIL:].decode(errors="replace")
            why = "timed out" if result.timed_out else f"exited {result.exit_code}"
            raise EnvironmentBuildFailed(
                f"environment setup failed ({definition.source}): `{command}` {why}; "
                f"the log ends with:\n{tail}",
                bytes(log),
            )


def build_env(seen: str) -> dict[str, str]:
    """What setup commands get beyond the scrubbed environment: package tools kept offline from
    the host's own configuration (it may name files and indexes the sandbox cannot see), with
    caches in the build's own HOME."""
    env = {
        "PIP_CONFIG_FILE": "/dev/null", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1", "PIP_ROOT_USER_ACTION": "ignore",
        "POETRY_VIRTUALENVS_CREATE": "false", "UV_PYTHON_DOWNLOADS": "never",
        "UV_PROJECT_ENVIRONMENT": seen, "npm_config_update_notifier": "false",
    }  # fmt: skip
    return env | indexes.pip_settings() | indexes.toolchain_settings(seen, online=True)


def _keep_workspace_dirs(workspace: Path, path: Path) -> None:
    """Dependencies a setup installs into the workspace itself (npm's node_modules) move into
    the environment, which shows them at the same place in every later step."""
    for name in KEPT_IN_WORKSPACE:
        made = workspace / name
        if made.is_dir() and not made.is_symlink():
            for scratch in SCRATCH_IN_KEPT.get(name, ()):
                (made / scratch).mkdir(exist_ok=True)
            shutil.move(str(made), str(path / name))


@contextlib.asynccontextmanager
async def _locked(lock_path: Path, tick: Tick | None) -> AsyncIterator[None]:
    # Opening a small local lock file does not block the loop for long; waiting for it would.
    with open(lock_path, "w") as lock:  # noqa: ASYNC230
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if tick is not None and (pending := tick()) is not None:
                    await pending
                await asyncio.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
