"""The environment step, and the one way every sandboxed activity gets its run's environment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity

from activities.common import tag_span
from activities.errors import permanent_errors
from activities.runner import RunnerConfig
from contracts.runs import EnvironmentRef, RunRef
from contracts.steps import ENVIRONMENT, EnvironmentInput, EnvironmentOutput
from gym.config import load_config
from gym.envdef import EnvDefinition, definition_for
from gym.environments import Environment, EnvironmentBuildFailed, Environments
from gym.sandbox import Sandbox
from gym.snapshots import Snapshots
from ratchet.artifacts import ArtifactStore


def definition_at(run: RunRef, ws: Path) -> EnvDefinition:
    """The request's environment, else the commit's ratchet.toml, else detection."""
    config = load_config(ws)
    requested = run.requested_environment
    return definition_for(
        ws,
        requested_setup=list(requested.setup) if requested is not None else None,
        requested_key_files=list(requested.key_files) if requested is not None else None,
        toml_setup=list(config.env_setup) if config.env_setup is not None else None,
        toml_key_files=list(config.env_key_files) if config.env_key_files is not None else None,
    )


async def ensure_environment(
    snapshots: Snapshots, runner: RunnerConfig, run: RunRef, ws: Path, commit: str
) -> Environment:
    """The environment of `commit` (whose worktree is `ws`): found by its key, or built by
    this worker (environments are a worker's cache, never shared)."""
    envs = Environments(snapshots.home)
    known = run.environment
    if known is not None and commit == run.base_sha:
        definition = EnvDefinition(tuple(known.setup), (), known.source)
        if (found := envs.lookup(known.key, definition)) is not None:
            return found
    definition = await asyncio.to_thread(definition_at, run, ws)
    made: list[Path] = []

    async def build_workspace(key: str) -> Path:
        path = await asyncio.to_thread(snapshots.materialize, run, commit, f"env-{key[:12]}")
        made.append(path)
        return path

    try:
        return await envs.for_workspace(
            run.repo, ws, definition, build_workspace, sandbox=runner.sandbox,
            limits=runner.env_limits, allowlist=runner.allowlist, tick=activity.heartbeat,
        )  # fmt: skip
    finally:
        for path in made:  # what setup left in its workspace never reaches a snapshot
            await asyncio.to_thread(snapshots.discard, run, path)


async def sandbox_for(
    snapshots: Snapshots, runner: RunnerConfig, run: RunRef, ws: Path, commit: str | None = None
) -> Sandbox:
    """The runner's sandbox with the run's environment (or `commit`'s own, for probes)."""
    env = await ensure_environment(snapshots, runner, run, ws, commit or run.base_sha)
    return runner.sandbox.with_environment(env.path)


class EnvironmentActivities:
    def __init__(self, *, home: Path, store: ArtifactStore, runner: RunnerConfig) -> None:
        self.home, self.store, self.runner = home, store, runner
        self.snapshots = Snapshots(home, store)

    @activity.defn(name=ENVIRONMENT)
    @permanent_errors
    async def environment(self, arg: EnvironmentInput) -> EnvironmentOutput:
        tag_span(arg.run.run_id)
        ws = await asyncio.to_thread(self.snapshots.materialize, arg.run, arg.snapshot, "base")
        try:
            env = await ensure_environment(self.snapshots, self.runner, arg.run, ws, arg.snapshot)
        except EnvironmentBuildFailed as failed:
            # The whole log stays readable; the message (the run's error) names it.
            raise EnvironmentBuildFailed(
                f"{failed} [build log: {self.store.put(failed.log)}]", failed.log
            ) from None
        ref = EnvironmentRef(env.key, env.source, list(env.setup))
        log_ref = None if env.cache_hit else self.store.put(env.log)
        return EnvironmentOutput(
            ref, env.cache_hit, env.duration_s, log_ref, env.egress, activity.info().attempt
        )

    def all(self) -> list[Callable[..., Any]]:
        return [self.environment]
