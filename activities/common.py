"""Helpers every activity class uses."""

from __future__ import annotations

from pathlib import Path

from opentelemetry import trace

from gym import workspace
from ratchet.telemetry import RUN_ID_ATTRIBUTE
from workflows.shared import RunRef


def materialize(home: Path, run: RunRef, snapshot: str, purpose: str) -> Path:
    """The run's workspace for `purpose`, at `snapshot` (reused across steps and retries)."""
    path = home / "workspaces" / run.run_id / purpose
    return workspace.materialize(Path(run.mirror), snapshot, path)


def tag_span(run_id: str) -> None:
    trace.get_current_span().set_attribute(RUN_ID_ATTRIBUTE, run_id)
