"""POST /drift and /schedules: refusals that start nothing, and a schedule's life (create, read,
delete) on a real Temporal server."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from tests.api.conftest import Gate
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, write_script

EVERY_S = 31 * 86400  # the longest interval: nothing comes due while the test runs


@pytest.fixture
def body(tmp_path: Path) -> dict[str, object]:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "script.toml", [ADD_MUL_WRONG])
    return {"repo": str(repo), "policy": "scripted", "policy_script": str(script)}


@pytest.mark.parametrize("path", ["/drift", "/schedules"])
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"repo": "calc"}, "repo must be an absolute path or a git URL, got 'calc'"),
        ({"ref": "no-such-branch"}, "unknown ref 'no-such-branch'"),
        ({"policy": None, "policy_script": None}, "ANTHROPIC_API_KEY is not set"),
    ],
)
async def test_a_drift_check_that_cannot_work_is_refused_and_starts_nothing(
    gate: Gate, body: dict[str, object], path: str, change: dict[str, object], message: str
) -> None:
    sent = {k: v for k, v in (body | change | {"every_s": EVERY_S}).items() if v is not None}
    if path == "/drift":
        del sent["every_s"]
    response = await gate.http.post(path, json=sent)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert await gate.started() == 0


async def test_a_schedule_is_created_read_and_deleted(gate: Gate, body: dict[str, object]) -> None:
    missing = await gate.http.post("/schedules", json=body)
    assert missing.json()["detail"] == "every_s: Field required"
    created = await gate.http.post("/schedules", json=body | {"every_s": EVERY_S})
    assert created.status_code == 201, created.text
    schedule_id = created.json()["schedule_id"]
    assert re.fullmatch(r"drift-schedule-[0-9a-f]{12}", schedule_id)
    assert created.json()["every_s"] == EVERY_S
    assert created.json()["temporal_ui_url"] == (
        f"{gate.settings.ui_base}/namespaces/{gate.settings.namespace}/schedules/{schedule_id}"
    )
    shown = (await gate.http.get(f"/schedules/{schedule_id}")).json()
    assert (shown["schedule_id"], shown["paused"], shown["recent_runs"]) == (
        schedule_id, False, []
    )  # fmt: skip
    assert shown["next_runs"] and all(datetime.fromisoformat(t) for t in shown["next_runs"])
    assert (await gate.http.delete(f"/schedules/{schedule_id}")).status_code == 204
    gone = await gate.http.get(f"/schedules/{schedule_id}")
    assert (gone.status_code, gone.json()["detail"]) == (404, f"no schedule {schedule_id!r}")
    assert await gate.started() == 0


async def test_a_schedule_that_is_not_there_is_404(gate: Gate) -> None:
    for method, path in (("GET", ""), ("POST", "/trigger"), ("DELETE", "")):
        response = await gate.http.request(method, f"/schedules/drift-schedule-nope{path}")
        assert (response.status_code, response.json()["detail"]) == (
            404, "no schedule 'drift-schedule-nope'"
        )  # fmt: skip
