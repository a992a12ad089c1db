"""`ratchet exec` and `ratchet test`: the gym from the command line, exactly as runs use it."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from gym import workspace
from gym.allowlist import build_allowlist
from gym.config import detect_test_command, load_config
from gym.diagnose import suite_problem
from gym.envdef import definition_for
from gym.environments import Environment, Environments
from gym.errors import GymError
from gym.runner import CommandResult, Limits, run_command
from gym.sandbox import Sandbox, choose_sandbox
from gym.testing import TestRun, run_tests
from ratchet.settings import Settings


def _limits(settings: Settings, timeout_s: float | None) -> Limits:
    return Limits(
        timeout_s=timeout_s or settings.test_timeout_s,
        memory_bytes=settings.sandbox_memory_mb * 2**20,
        cpu_seconds=settings.sandbox_cpu_seconds,
        max_processes=settings.sandbox_max_processes,
    )


def _sandbox(settings: Settings) -> Sandbox:
    return choose_sandbox(require=settings.require_sandbox, allow=settings.sandbox != "none")


def _source(repo: str) -> str:
    return repo if workspace.is_remote(repo) else str(Path(repo).resolve())


@contextmanager
def fresh_workspace(settings: Settings, repo: str, ref: str) -> Iterator[Path]:
    """A throwaway workspace of `repo` at `ref`, made the way runs make theirs."""
    mirror, sha = workspace.Mirrors(settings.home).sync(_source(repo), ref)
    path = settings.home / "workspaces" / f"cli-{uuid.uuid4().hex[:12]}"
    workspace.materialize(mirror, sha, path)
    try:
        yield path
    finally:
        workspace.discard(mirror, path)


# Directories the sandbox makes itself: showing one of these would cover what it made.
SANDBOX_OWN = {"/", "/tmp", "/opt", "/opt/ratchet", "/proc", "/dev"}  # noqa: S108 (paths, no file)


def named_paths(commands: list[str]) -> tuple[str, ...]:
    """Absolute paths of existing files and directories that `commands` name (`/x`, `--opt=/x`,
    `file:///x`)."""
    found = set()
    for command in commands:
        try:
            words = shlex.split(command)
        except ValueError:
            continue
        for word in words:
            value = word.split("=", 1)[1] if word.startswith("-") and "=" in word else word
            value = os.path.normpath(value.removeprefix("file://")) if value else value
            if value.startswith("/") and os.path.exists(value) and value not in SANDBOX_OWN:
                found.add(value)
    return tuple(sorted(found))


async def with_environment(
    settings: Settings, repo: str, ref: str, ws: Path, setup: list[str], sandbox: Sandbox
) -> tuple[Sandbox, Environment]:
    """The sandbox with the repository's environment, as a run would have it: `setup` (--setup)
    as a request's, else ratchet.toml's [environment], else detection."""
    config = load_config(ws)
    definition = definition_for(
        ws, requested_setup=setup or None, requested_key_files=None,
        toml_setup=list(config.env_setup) if config.env_setup is not None else None,
        toml_key_files=list(config.env_key_files) if config.env_key_files is not None else None,
    )  # fmt: skip
    builds: list[tuple[Path, Path]] = []

    async def build_workspace(key: str) -> Path:
        # A worktree of its own, thrown away after the build with what setup left in it.
        mirror, sha = workspace.Mirrors(settings.home).sync(_source(repo), ref)
        path = settings.home / "workspaces" / f"cli-env-{key[:12]}-{uuid.uuid4().hex[:8]}"
        builds.append((mirror, workspace.materialize(mirror, sha, path)))
        return path

    # A local user's own --setup may name files of this machine (a wheel directory for
    # --find-links, a requirements file): the build shows those, read-only. Never so for a
    # definition from the repository or an API request.
    builder = sandbox.with_paths(named_paths(setup))
    try:
        env = await Environments(settings.home).for_workspace(
            _source(repo), ws, definition, build_workspace, sandbox=builder,
            limits=replace(_limits(settings, None), timeout_s=settings.env_timeout_s),
            allowlist=build_allowlist(settings.env_allowed_hosts),
        )  # fmt: skip
    finally:
        for mirror, path in builds:
            workspace.discard(mirror, path)
    how = "cache hit" if env.cache_hit else f"built in {env.duration_s:.1f} s"
    print(f"ratchet: environment {env.key[:12]} ({env.source}): {how}", file=sys.stderr)
    return sandbox.with_environment(env.path), env


def _write(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


def exec_command(
    settings: Settings, repo: str, ref: str, timeout_s: float | None, argv: list[str],
    setup: list[str] | None = None,
) -> int:  # fmt: skip
    if not argv:
        print("ratchet exec: give the command after --", file=sys.stderr)
        return 2

    async def run(ws: Path) -> CommandResult:
        sandbox, _ = await with_environment(
            settings, repo, ref, ws, setup or [], _sandbox(settings)
        )
        return await run_command(
            shlex.join(argv), ws, limits=_limits(settings, timeout_s), sandbox=sandbox,
            on_output=_write,
        )  # fmt: skip

    try:
        with fresh_workspace(settings, repo, ref) as ws:
            result = asyncio.run(run(ws))
    except GymError as err:
        print(f"ratchet exec: {err}", file=sys.stderr)
        return 2
    print(f"ratchet exec: isolation: {result.isolation}", file=sys.stderr)
    if result.killed_by:
        print(f"ratchet exec: killed by {', '.join(result.killed_by)}", file=sys.stderr)
    if result.exit_code < 0:  # killed by a signal: report it the way a shell does
        return 128 - result.exit_code
    return result.exit_code


def test_command(
    settings: Settings, repo: str, ref: str, command: str | None, as_json: bool,
    setup: list[str] | None = None,
) -> int:  # fmt: skip
    async def run_suite(ws: Path, command: str, runner: str | None) -> tuple[TestRun, Environment]:
        sandbox, env = await with_environment(
            settings, repo, ref, ws, setup or [], _sandbox(settings)
        )
        run = await run_tests(
            command, ws, limits=_limits(settings, None), sandbox=sandbox,
            reruns=settings.flaky_reruns, runner=runner,
        )  # fmt: skip
        return run, env

    try:
        with fresh_workspace(settings, repo, ref) as ws:
            config = load_config(ws)
            if not command:
                command, _ = detect_test_command(ws, config)
            run, env = asyncio.run(run_suite(ws, command, config.test_runner))
    except GymError as err:
        print(f"ratchet test: {err}", file=sys.stderr)
        return 2
    report = run.as_json()
    report["environment"] = {"key": env.key, "source": env.source, "setup": list(env.setup),
                             "cache_hit": env.cache_hit, "built_in_s": env.duration_s}  # fmt: skip
    report["cannot_run"] = suite_problem(command, run.result, [t.outcome for t in run.tests])
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for case in run.tests:
            print(f"{case.outcome:>8}  {case.id}  ({case.duration_s:.3f}s)")
        print(
            f"{report['passed']} passed, {report['failed']} failed, {report['errors']} errors, "
            f"{report['skipped']} skipped, {len(report['flaky'])} flaky"
        )
        print(f"isolation: {report['isolation']}", file=sys.stderr)
    return 0 if run.passed else 1
