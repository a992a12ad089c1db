"""Multi-agent patterns with the scripted policy (a test double): many perspectives, the red
team and its judge, and malformed answers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from temporalio.worker import Worker

from gym.git import git
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, write_script
from tests.workflows.helpers import wait_for_end

LENSES = ["correctness", "simplicity", "performance", "security", "testability"]
MUL_RIGHT = ADD_MUL_WRONG.replace(
    "def mul(a, b):\n    return a + b", "def mul(a, b):\n    return a * b"
)


def draft(lens: str) -> str:
    return json.dumps({"lens": lens, "plan": [f"{lens}: add mul"], "objections": [f"{lens} worry"]})


SYNTHESIS = json.dumps({
    "plan": ["add mul(a, b) to calc.py", "test it in tests/test_mul.py"],
    "contributions": [{"lens": lens, "contribution": f"{lens} point"} for lens in LENSES],
    "overruled": [{"lens": "performance", "objection": "use a C extension",
                   "reason": "the simplest code is fast enough"}],
})  # fmt: skip


def roles_script(path: Path, patches: list[str], roles: dict[str, list[str]]) -> Path:
    write_script(path, patches)
    lines = [""]
    for key, answers in roles.items():
        lines.append(f"[roles.{key}]")
        lines.append("answers = [" + ", ".join(f"'''{a}'''" for a in answers) + "]")
    with path.open("a") as f:
        f.write("\n".join(lines) + "\n")
    return path


async def submit(
    api: httpx.AsyncClient, repo: Path, script: Path, **extra: object
) -> dict[str, object]:
    body = {"repo": str(repo), "goal": "add mul(a, b)", "policy": "scripted",
            "policy_script": str(script)} | extra  # fmt: skip
    response = await api.post("/tasks", json=body)
    assert response.status_code == 202, response.text
    return await wait_for_end(api, response.json()["run_id"])


async def test_the_synthesized_plan_shows_every_perspective(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    roles = {f"perspective.{lens}": [draft(lens)] for lens in LENSES}
    roles["synthesis"] = ["this is not json", SYNTHESIS]  # the first answer is retried once
    script = roles_script(tmp_path / "s.toml", [MUL_RIGHT], roles)
    run = await submit(api, repo, script, perspectives=5)
    assert run["status"] == "completed", run
    names = [s["name"] for s in run["steps"]]
    assert {f"perspective ({lens})" for lens in LENSES} <= set(names) and "plan" not in names
    synthesis = next(s for s in run["steps"] if s["name"] == "synthesis")
    assert "merged 5 perspectives" in synthesis["detail"]
    plan = (await api.get(run["result"]["plan_url"])).text
    for lens in LENSES:
        assert f"- {lens}: {lens} point" in plan
    assert "- performance: use a C extension — the simplest code is fast enough" in plan


async def test_an_answer_malformed_twice_fails_the_step_with_the_reason(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    roles = {f"perspective.{lens}": [draft(lens)] for lens in LENSES[:2]}
    roles["synthesis"] = ['{"plan": []}', '{"plan": "no"}']
    run = await submit(api, repo, roles_script(tmp_path / "s.toml", [MUL_RIGHT], roles),
                       perspectives=2)  # fmt: skip
    assert run["status"] == "failed"
    assert run["error"]["type"] == "PolicyError"
    assert "synthesis answer did not match its schema, twice" in run["error"]["message"]


ABS_MUL = ADD_MUL_WRONG.replace("def mul(a, b):\n    return a + b",
                                "def mul(a, b):\n    return abs(a) * abs(b)")  # fmt: skip
FIX_SIGN = (
    "calc.py\n<<<<<<< SEARCH\n    return abs(a) * abs(b)\n=======\n    return a * b\n"
    ">>>>>>> REPLACE\n"
)
ATTACK = json.dumps({"tests": [
    {"path": "tests/test_adversarial_negative.py", "rationale": "signs",
     "content": "from calc import mul\n\n\ndef test_negative():\n    assert mul(-2, 3) == -6\n"},
    {"path": "tests/test_adversarial_ints.py", "rationale": "integers only",
     "content": "from calc import mul\n\n\ndef test_ints():\n"
                "    assert isinstance(mul(2.5, 2), int)\n"},
]})  # fmt: skip
VERDICTS = json.dumps({"verdicts": [
    {"path": "tests/test_adversarial_negative.py", "valid": True,
     "reason": "multiplying signed numbers is what mul means"},
    {"path": "tests/test_adversarial_ints.py", "valid": False,
     "reason": "the goal does not restrict mul to integers"},
]})  # fmt: skip


async def test_a_valid_adversarial_test_sends_a_wrong_patch_back_and_ships_with_the_fix(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = roles_script(tmp_path / "s.toml", [ABS_MUL, FIX_SIGN],
                          {"adversary": [ATTACK], "judge": [VERDICTS]})  # fmt: skip
    run = await submit(api, repo, script, adversarial=True)
    assert run["status"] == "completed", run["error"]
    gate = next(g for g in run["result"]["gates"] if g["name"] == "adversarial")
    assert gate["passed"]
    assert gate["detail"] == "tried 2, broke the patch 2, judged invalid 1; every valid test passes"
    judge = next(s for s in run["steps"] if s["name"] == "judge")
    assert judge["detail"] == "1 valid, 1 invalid"
    patches = [s for s in run["steps"] if s["name"] == "patch"]
    assert [p["round"] for p in patches] == [1, 2]  # the red team sent round 1 back
    branch = run["result"]["branch"]
    assert "return a * b" in git("show", f"{branch}:calc.py", cwd=repo)
    shipped = git("ls-tree", "-r", "--name-only", branch, "tests", cwd=repo).split()
    assert "tests/test_adversarial_negative.py" in shipped
    assert "tests/test_adversarial_ints.py" not in shipped  # judged invalid: discarded


COMMUTES = json.dumps({"tests": [
    {"path": "tests/test_invariant_commutes.py", "rationale": "add is commutative",
     "content": "from hypothesis import given, strategies as st\n\nfrom calc import add\n\n\n"
                "@given(st.integers(), st.integers())\ndef test_commutes(a, b):\n"
                "    assert add(a, b) == add(b, a)\n"},
    {"path": "tests/test_invariant_wrong.py", "rationale": "a false belief about add",
     "content": "from hypothesis import given, strategies as st\n\nfrom calc import add\n\n\n"
                "@given(st.integers())\ndef test_identity(a):\n    assert add(a, 1) == a\n"},
]})  # fmt: skip
BREAK_ADD = (
    "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n    return a + b\n=======\n"
    "def add(a, b):\n    return a + b + (1 if a > b else 0)\n\n\ndef mul(a, b):\n    return a * b\n"
    ">>>>>>> REPLACE\n"
)
KEEP_ADD = (
    "calc.py\n<<<<<<< SEARCH\n    return a + b + (1 if a > b else 0)\n=======\n    return a + b\n"
    ">>>>>>> REPLACE\n"
)


async def test_an_invariant_that_holds_at_base_blocks_a_patch_that_breaks_it(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = roles_script(tmp_path / "s.toml", [BREAK_ADD, KEEP_ADD], {"invariants": [COMMUTES]})
    run = await submit(api, repo, script, invariants=True)
    assert run["status"] == "completed", run["error"]
    at_base = next(s for s in run["steps"] if s["name"] == "invariants at base")
    assert at_base["detail"] == "2 tests, 1 failing"
    checks = [s for s in run["steps"] if s["name"] == "invariants"]
    assert [c["detail"] for c in checks[:2]] == ["1 tests, 1 failing", "1 tests, 0 failing"]
    gate = next(g for g in run["result"]["gates"] if g["name"] == "invariants")
    assert gate["passed"]
    assert gate["detail"] == (
        "1 of 2 proposed invariants hold at base and guard the change; "
        "1 fail at base (reported, not used)"
    )
    assert "return a + b\n" in git("show", f"{run['result']['branch']}:calc.py", cwd=repo) + "\n"


LEARNED = json.dumps({"entries": [
    {"kind": "command", "text": "python -m pytest -q runs the whole suite"},
    {"kind": "pitfall", "text": "mul must multiply: a + b was tried and is wrong"},
], "contradicts": []})  # fmt: skip
LEARNED_AGAIN = json.dumps({"entries": [
    {"kind": "decision", "text": "mul lives next to add in calc.py"},
], "contradicts": ["m1"]})  # fmt: skip


async def test_memory_compounds_across_runs_and_contradicted_entries_go_stale(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    from urllib.parse import quote

    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = roles_script(tmp_path / "s.toml", [MUL_RIGHT], {"memory": [LEARNED, LEARNED_AGAIN]})
    first = await submit(api, repo, script, memory=True)
    assert first["status"] == "completed", first["error"]
    assert first["result"]["memory_used"] == []
    recorded = next(s for s in first["steps"] if s["name"] == "record memory")
    assert recorded["detail"] == "version 1: +2 entries, 0 marked stale"

    second_script = roles_script(tmp_path / "t.toml", [MUL_RIGHT], {"memory": [LEARNED_AGAIN]})
    second = await submit(api, repo, second_script, memory=True)
    assert second["status"] == "completed", second["error"]
    assert sorted(second["result"]["memory_used"]) == ["m1", "m2"]  # the planners got them
    memory = (await api.get(f"/repos/{quote(str(repo), safe='')}/memory")).json()
    assert memory["version"] == 2
    entries = {e["id"]: e for e in memory["entries"]}
    assert entries["m1"]["stale"] and entries["m1"]["stale_since"] == second["run_id"]
    assert not entries["m2"]["stale"]
    assert entries["m3"]["text"] == "mul lives next to add in calc.py"
    unknown = (await api.get(f"/repos/{quote('/nowhere', safe='')}/memory")).json()
    assert unknown["entries"] == [] and unknown["version"] == 0
