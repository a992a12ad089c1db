"""POST /investigations: a request that cannot work is refused and starts nothing; one that can
starts with its refs pinned and its error parsed (real git, real Temporal, no worker needed)."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest

from tests.api.conftest import Gate
from tests.utils.repos import PY_REPO, commit, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, write_script


def divide_by_zero() -> str:
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        return traceback.format_exc()
    raise AssertionError("unreachable")


TRACEBACK = divide_by_zero()
EVENT_WITHOUT_EXCEPTION = {"title": "something", "tags": {"level": "error"}}
WRITE = {"reproduce": {"write": True}}
SCRIPTED = {"policy": "scripted", "policy_script": "@SCRIPT@"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "calc", PY_REPO)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reproduce": {"test_command": "pytest", "test_id": "tests/test_calc.py::test_add"}},
         "reproduce takes test_command or test_id, not both"),
        ({"kind": "performance"}, "a performance investigation needs good_ref (the fast commit)"),
        (WRITE | {"traceback": TRACEBACK}, 'reproduce.write needs a policy to write the test: '
         'pass "policy" (or give reproduce.test_command)'),
        (WRITE | SCRIPTED, 'reproduce.write needs the error: "event" or "traceback"'),
        ({"reproduce": {"write": True, "test_id": "t"}, "traceback": TRACEBACK} | SCRIPTED,
         "reproduce.write writes the reproduction: it takes no test_command or test_id"),
        ({"event": EVENT_WITHOUT_EXCEPTION, "traceback": TRACEBACK},
         'give "event" or "traceback", not both'),
        ({"event": EVENT_WITHOUT_EXCEPTION},
         "event has no exception: exception.values[-1] needs a type and a stacktrace"),
        ({"traceback": "it broke"}, "traceback holds no Python traceback (a 'Traceback (most "
         "recent call last):' block ending in the exception)"),
        ({"bad_ref": "no-such-branch"}, "unknown ref 'no-such-branch'"),
        ({"good_ref": "no-such-tag"}, "unknown ref 'no-such-tag'"),
        ({"repo": "calc"}, "repo must be an absolute path or a git URL, got 'calc'"),
    ],
)  # fmt: skip
async def test_an_investigation_that_cannot_work_is_refused_and_starts_nothing(
    gate: Gate, repo: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    script = write_script(tmp_path / "script.toml", [ADD_MUL_WRONG])
    body = json.loads(json.dumps({"repo": str(repo)} | change).replace("@SCRIPT@", str(script)))
    response = await gate.http.post("/investigations", json=body)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(message)  # unknown refs go on: "in <repo>"
    assert await gate.started() == 0


async def test_an_investigation_starts_with_pinned_refs_and_the_parsed_error(
    gate: Gate, repo: Path
) -> None:
    good = commit(repo, {}, "good")
    bad = commit(repo, {"calc.py": "def add(a, b):\n    return a - b\n"}, "bad")
    response = await gate.http.post("/investigations", json={
        "repo": str(repo), "good_ref": "HEAD~1", "traceback": TRACEBACK,
        "reproduce": {"test_command": "python -m pytest -q"},
    })  # fmt: skip
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["run_id"].startswith("inv-") and answer["policy"] == "none"
    handle = gate.client.get_workflow_handle(answer["run_id"])
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    inp = json.loads(started.input.payloads[0].data)
    assert (inp["bad_ref"], inp["good_ref"], inp["policy"]) == (bad, good, None)  # pinned
    assert inp["test_command"] == "python -m pytest -q"
    assert inp["event"]["exception_type"] == "ZeroDivisionError"
    assert inp["event"]["frames"][-1]["function"] == "divide_by_zero"
    described = await handle.describe()
    assert await described.static_summary() == "[investigation] ZeroDivisionError: division by zero"
