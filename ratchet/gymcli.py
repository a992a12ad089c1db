"""`ratchet exec` and `ratchet test`: the gym from the command line, exactly as runs use it."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gym import workspace
from gym.config import detect_test_command, load_config
from gym.errors import GymError
from gym.runner import Limits, run_command
from gym.sandbox import Sandbox, choose_sandbox
from gym.testing import run_tests
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


@contextmanager
def fresh_workspace(settings: Settings, repo: str, ref: str) -> Iterator[Path]:
    """A throwaway workspace of `repo` at `ref`, made the way runs make theirs."""
    source = repo if workspace.is_remote(repo) else str(Path(repo).resolve())
    mirror, sha = workspace.Mirrors(settings.home).sync(source, ref)
    path = settings.home / "workspaces" / f"cli-{uuid.uuid4().hex[:12]}"
    workspace.materialize(mirror, sha, path)
    try:
        yield path
    finally:
        workspace.discard(mirror, path)


def _write(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


def exec_command(
    settings: Settings, repo: str, ref: str, timeout_s: float | None, argv: list[str]
) -> int:
    if not argv:
        print("ratchet exec: give the command after --", file=sys.stderr)
        return 2
    try:
        sandbox = _sandbox(settings)
        with fresh_workspace(settings, repo, ref) as ws:
            result = asyncio.run(
                run_command(
                    shlex.join(argv), ws, limits=_limits(settings, timeout_s), sandbox=sandbox,
                    on_output=_write,
                )
            )  # fmt: skip
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
    settings: Settings, repo: str, ref: str, command: str | None, as_json: bool
) -> int:
    try:
        sandbox = _sandbox(settings)
        with fresh_workspace(settings, repo, ref) as ws:
            if not command:
                command, _ = detect_test_command(ws, load_config(ws))
            run = asyncio.run(
                run_tests(
                    command, ws, limits=_limits(settings, None), sandbox=sandbox,
                    reruns=settings.flaky_reruns,
                )
            )  # fmt: skip
    except GymError as err:
        print(f"ratchet test: {err}", file=sys.stderr)
        return 2
    report = run.as_json()
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
