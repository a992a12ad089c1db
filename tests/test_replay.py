"""Recorded histories of real runs replay on today's workflow code: a change that would break
runs already in flight (a non-deterministic change) fails here, in CI.

`make histories` re-records them from the tests (tests/histories/*.json); re-record on purpose,
after making a change safe with `workflow.patched(...)`, never to make this test pass.
Three generations are kept side by side, and every one must replay: runs recorded before the
environment step existed (`workflow.patched("environment-step")`), runs recorded before scripted
runs went through the agent loop (`"scripted-agent-loop"`, `"agent-failure-usage"`,
`"perspectives-share-cache"`), and runs recorded with the reproducer (`"reproducer"`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.conftest import HISTORIES
from worker import WORKFLOWS

RECORDED = sorted(HISTORIES.glob("*.json"))


def test_histories_are_recorded_for_every_workflow() -> None:
    kinds = {path.name.split("--")[1] for path in RECORDED}
    assert kinds >= {"forwardplanning", "agentloop", "investigation", "drift"}, kinds


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_a_recorded_history_replays(path: Path) -> None:
    data = json.loads(path.read_text())
    history = WorkflowHistory.from_json(data["workflow_id"], data["history"])
    result = await Replayer(workflows=WORKFLOWS).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
