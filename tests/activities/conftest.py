"""The activity objects, built as the worker's composition root builds them (worker.py), on a
home of their own: a real artifact store on disk, the sandbox this machine has, real git."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.agent import AgentActivities
from activities.drift import DriftActivities
from activities.envs import EnvironmentActivities
from activities.forward import ForwardActivities
from activities.investigation import InvestigationActivities
from activities.models import Models
from activities.roles import RoleActivities
from activities.runner import RunnerConfig
from activities.testing import TestActivities
from agents.ledger import DEFAULT_PRICES
from contracts.runs import PolicyChoice, RunRef
from contracts.steps import EnvironmentInput, PrepareInput
from ratchet.artifacts import FilesystemArtifactStore
from ratchet.scrub import Scrubber
from ratchet.settings import Settings
from tests.utils.fake_anthropic import FakeMessagesApi
from tests.utils.settings import make_settings
from worker import github_config, runner_config, served_models

WHEN = "2026-01-02T03:04:05+00:00"
# Activities never reach Temporal: ActivityEnvironment stands in for the worker.
NO_TEMPORAL = "127.0.0.1:1"


@dataclass
class World:
    """What build_workers makes from one Settings, activity class by activity class."""

    settings: Settings
    store: FilesystemArtifactStore
    runner: RunnerConfig
    models: Models
    forward: ForwardActivities
    tests: TestActivities
    agent: AgentActivities
    envs: EnvironmentActivities
    investigation: InvestigationActivities
    roles: RoleActivities
    drift: DriftActivities
    heartbeats: list[tuple[Any, ...]] = field(default_factory=list)

    def env(self) -> ActivityEnvironment:
        """An activity context whose heartbeats are recorded in `heartbeats`."""
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *details: self.heartbeats.append(details)
        return env

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.env().run(fn, *args)

    def script(self, text: str) -> PolicyChoice:
        """The scripted policy (a test double) replaying `text`, as the API hands it over."""
        return PolicyChoice("scripted", self.store.put_text(text))

    async def prepare(self, repo: Path, base_ref: str = "HEAD", run_id: str = "task-0a1b2c3d4e5f",
                      **extra: Any) -> RunRef:  # fmt: skip
        """The run's RunRef after the prepare and environment steps, as the workflow has it."""
        prepared = await self.run(
            self.forward.prepare, PrepareInput(run_id, str(repo), base_ref, None, WHEN, **extra)
        )
        run: RunRef = prepared.run
        built = await self.run(self.envs.environment, EnvironmentInput(run, run.base_sha))
        return replace(run, environment=built.environment)


def build_world(settings: Settings) -> World:
    """worker.build_workers, up to the Worker objects."""
    store = FilesystemArtifactStore(settings.artifacts_dir, Scrubber(settings.secret_values()))
    runner = runner_config(settings)
    models = Models(store, served_models(settings))
    prices = {**DEFAULT_PRICES, **settings.model_prices}
    home = settings.home
    return World(
        settings=settings, store=store, runner=runner, models=models,
        forward=ForwardActivities(home=home, store=store, models=models, prices=prices,
                                  github=github_config(settings)),
        tests=TestActivities(home=home, store=store, runner=runner),
        agent=AgentActivities(home=home, store=store, runner=runner, models=models,
                              prices=prices),
        envs=EnvironmentActivities(home=home, store=store, runner=runner),
        investigation=InvestigationActivities(home=home, store=store, runner=runner),
        roles=RoleActivities(home=home, store=store, runner=runner, models=models, prices=prices),
        drift=DriftActivities(home=home, store=store, runner=runner),
    )  # fmt: skip


@pytest.fixture
def make_world(tmp_path: Path) -> Callable[..., World]:
    """A World from the test settings with `overrides` (RATCHET_* settings by field name)."""

    def make(**overrides: Any) -> World:
        return build_world(make_settings(tmp_path / "home", NO_TEMPORAL, **overrides))

    return make


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()


@pytest.fixture
def anthropic_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMessagesApi]:
    """A fake Anthropic Messages API on loopback, answering from `.answers` in order."""
    fake = FakeMessagesApi([])
    with fake.serve() as url:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)  # honoured by the SDK, as in a worker
        yield fake


async def under_way(world: World, task: asyncio.Future[Any], marker: str) -> None:
    """Wait until the command holding `marker` runs and its step has heartbeated from the wait
    for it, as a step well under way does. (A cancel landing while the process is still being
    spawned is another case: there asyncio kills the direct child only, and the sandboxed
    command outlives the step.)"""
    world.heartbeats.clear()
    deadline = time.monotonic() + 20
    while not (processes_running(marker) and world.heartbeats):
        assert not task.done(), task
        assert time.monotonic() < deadline, f"{marker}: the command never got under way"
        await asyncio.sleep(0.05)


def processes_running(marker: str) -> list[int]:
    """Pids of the processes on this machine whose command line holds `marker` (the sandbox's
    own PID namespace hides nothing from here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found
