"""The activity registry is the one list of activities: every activity a worker runs has an
entry there (its queue, purpose, limits and retries), and every entry is an activity a worker
runs."""

from __future__ import annotations

from pathlib import Path

from contracts.activities import ACTIVITIES, spec
from tests.conftest import make_settings
from worker import activity_name, all_activities


def test_the_registry_and_the_workers_name_the_same_activities(
    tmp_path: Path, temporal_target: str
) -> None:
    served = [activity_name(fn) for fn in all_activities(make_settings(tmp_path, temporal_target))]
    assert len(served) == len(set(served))  # no activity twice
    # ratchet.patch is only replayed (runs recorded before the agent loop): no worker runs it.
    assert set(served) == set(ACTIVITIES) - {"ratchet.patch"}


def test_an_activity_s_limit_grows_with_the_run_s_test_timeout_when_it_runs_tests() -> None:
    tests, lint = spec("ratchet.run_tests"), spec("ratchet.lint")
    assert tests.limit(600) == 720 and tests.limit(60) == 180
    assert lint.limit(600) == lint.limit(60) == 600  # lint has a fixed limit
    assert spec("ratchet.tool").heartbeat_s == 60.0  # a tool call's own heartbeat timeout
    assert spec("ratchet.model_turn").retry == "model" and spec("ratchet.verify").retry == "step"


def test_an_unknown_activity_gets_a_main_queue_step_s_defaults() -> None:
    unknown = spec("bench.step")
    assert (unknown.queue, unknown.retry, unknown.heartbeat, unknown.purpose) == (
        "main",
        "step",
        False,
        "",
    )
