"""The agent's shell: Claude (the real SDK against a fake Messages API) reproduces a bug with
`bash`, fixes it, runs one selected test and submits; what the shell may not do is handled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gym.git import git
from tests.utils.fake_anthropic import Answer, FakeMessagesApi, text_message, tool_use
from tests.utils.repos import make_repo
from tests.workflows.helpers import wait_for_end
from tests.workflows.test_agent import Harness, harness  # noqa: F401 (the fixture)

EDITOR = "str_replace_based_edit_tool"
BUGGY = {
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\npythonpath = ["."]\n',
    "calc.py": "def add(a, b):\n    return a - b\n",
    "repro.py": "from calc import add\n\nassert add(2, 3) == 5, add(2, 3)\nprint('fixed')\n",
    "tests/test_calc.py": "from calc import add\n\n\n"
    "def test_add():\n    assert add(2, 3) == 5\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n",
    ".github/workflows/ci.yml": "on: push\n",
}


def script() -> list[Answer]:
    return [
        text_message("reproduce, fix, test"),  # plan
        tool_use("bash", {"command": "python repro.py"}, call_id="toolu_repro"),
        tool_use(EDITOR, {"command": "view", "path": "/tmp/workspace"}, call_id="toolu_ls"),
        tool_use(
            EDITOR,
            {"command": "str_replace", "path": "calc.py", "old_str": "a - b", "new_str": "a + b"},
            call_id="toolu_fix",
        ),
        tool_use(
            EDITOR,
            {"command": "insert", "path": "calc.py", "insert_line": 0, "insert_text": "# calc"},
            call_id="toolu_insert",
        ),
        tool_use(EDITOR, {"command": "undo_edit", "path": "calc.py"}, call_id="toolu_undo"),
        tool_use(
            "bash", {"command": "python repro.py && git log --format=%s -1"}, call_id="toolu_again"
        ),
        tool_use(
            "bash",
            {
                "command": "echo evil > .github/workflows/ci.yml; "
                "echo new > .github/workflows/new.yml; echo kept > NOTES.md; "
                "rm -f .git; echo broken > .git; git config user.name evil; echo done"
            },
            call_id="toolu_protected",
        ),
        tool_use(
            "bash", {"command": "python -c \"print('x' * 10_000_000)\""}, call_id="toolu_loud"
        ),
        tool_use("bash", {"command": "sleep 60"}, call_id="toolu_slow"),
        tool_use("run_tests", {"select": ["tests/test_calc.py::test_add"]}, call_id="toolu_one"),
        tool_use("submit", {"summary": "add adds"}, call_id="toolu_submit"),
        tool_use("submit", {"summary": "nothing to refactor"}, call_id="toolu_refactor"),
    ]


def tool_results(fake: FakeMessagesApi) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for request in fake.requests:
        for message in request["body"]["messages"]:
            if isinstance(message["content"], list):
                for block in message["content"]:
                    if block.get("type") == "tool_result":
                        results[block["tool_use_id"]] = block
    return results


# Through test_agent's harness: the worker, the app and the fake, with a 2 s shell limit.
@pytest.mark.parametrize("harness", [(script(), {"tool_timeout_s": 2.0})], indirect=True)
async def test_the_agent_reproduces_fixes_and_tests_through_its_shell(
    harness: Harness,  # noqa: F811 (the imported fixture, by name)
    tmp_path: Path,
) -> None:
    http, fake = harness.api, harness.fake
    repo = make_repo(tmp_path / "calc", BUGGY)
    response = await http.post("/tasks", json={
        "repo": str(repo), "goal": "add(2, 3) must be 5", "policy": "anthropic", "memory": False,
    })  # fmt: skip
    run = await wait_for_end(http, response.json()["run_id"], timeout_s=180)
    assert run["status"] == "completed", run
    assert all(g["passed"] for g in run["result"]["gates"]), run["result"]["gates"]
    results = tool_results(fake)

    def said(call: str) -> str:
        content = results[call]["content"]
        return content if isinstance(content, str) else str(content)

    assert said("toolu_repro").startswith("exit 1") and "AssertionError: -1" in said("toolu_repro")
    assert not results["toolu_repro"].get("is_error")  # a failing command is an answer
    assert said("toolu_again").startswith("exit 0") and "fixed" in said("toolu_again")
    assert "toolu_insert" in said("toolu_again")  # git works: the last snapshot's message
    assert "repro.py" in said("toolu_ls") and "tests/test_calc.py" in said("toolu_ls")
    assert results["toolu_undo"]["is_error"] and "no command 'undo_edit'" in said("toolu_undo")
    protected = said("toolu_protected")
    assert "put back" in protected and ".github/workflows/ci.yml" in protected
    assert ".github/workflows/new.yml" in protected
    # .git is a read-only file naming a read-only mirror: removing or writing it fails.
    assert "busy" in protected.lower() or "read-only" in protected.lower(), protected
    assert "done" in protected
    loud = said("toolu_loud")
    assert "bytes of output left out" in loud and len(loud) < 20_000
    assert said("toolu_slow").startswith("timed out (killed)")
    one = said("toolu_one")
    assert one.startswith("PASSED: 1 passed, 0 failed"), one
    branch = run["result"]["branch"]
    assert git("show", f"{branch}:calc.py", cwd=repo) == "# calc\ndef add(a, b):\n    return a + b"
    assert git("show", f"{branch}:.github/workflows/ci.yml", cwd=repo) == "on: push"
    files = git("ls-tree", "-r", "--name-only", branch, cwd=repo).split()
    assert ".github/workflows/new.yml" not in files and "NOTES.md" in files


def toml_turns(answers: list[Answer]) -> str:
    """The same tool calls as a scripted model's turns (JSON strings are valid TOML strings)."""
    lines = ["plan = 'reproduce, fix, test'", "[[patch]]"]
    for _, body in answers:
        for block in body["content"]:
            args = ", ".join(f"{k} = {json.dumps(v)}" for k, v in block["input"].items())
            lines += ["[[patch.turn]]",
                      f'call = [{{ tool = "{block["name"]}", input = {{ {args} }} }}]']  # fmt: skip
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("harness", [([], {"tool_timeout_s": 2.0})], indirect=True)
async def test_the_scripted_model_takes_the_same_road_through_the_shell(
    harness: Harness,  # noqa: F811 (the imported fixture, by name)
    tmp_path: Path,
) -> None:
    http = harness.api
    repo = make_repo(tmp_path / "calc", BUGGY)
    path = tmp_path / "script.toml"
    path.write_text(toml_turns(script()[1:-1]))  # the coding turns, without plan and refactor
    response = await http.post("/tasks", json={
        "repo": str(repo), "goal": "add(2, 3) must be 5", "policy": "scripted",
        "policy_script": str(path),
    })  # fmt: skip
    run_id = response.json()["run_id"]
    run = await wait_for_end(http, run_id, timeout_s=180)
    assert run["status"] == "completed", run
    assert all(g["passed"] for g in run["result"]["gates"]), run["result"]["gates"]
    transcript = (await http.get(f"/runs/{run_id}/transcript?result_chars=0")).json()
    calls = [c for t in transcript["conversations"][0]["turns"] for c in t["calls"]]
    results = {i: c for i, c in enumerate(calls)}
    assert (
        results[0]["result"].startswith("exit 1") and "AssertionError: -1" in results[0]["result"]
    )
    assert not results[0]["is_error"]
    assert results[5]["result"].startswith("exit 0") and "fixed" in results[5]["result"]
    assert "put back" in results[6]["result"] and ".github/workflows/ci.yml" in results[6]["result"]
    assert "bytes of output left out" in results[7]["result"]
    assert results[8]["result"].startswith("timed out (killed)")
    assert results[9]["result"].startswith("PASSED: 1 passed, 0 failed"), results[9]
    # Counted like a model's turns (at no cost), and the same patch was delivered.
    assert run["usage"]["turns"] == 1 + 11 + 1 and run["usage"]["cost_usd"] == 0
    branch = run["result"]["branch"]
    assert git("show", f"{branch}:calc.py", cwd=repo) == "# calc\ndef add(a, b):\n    return a + b"
    assert git("show", f"{branch}:.github/workflows/ci.yml", cwd=repo) == "on: push"
