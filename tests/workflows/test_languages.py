"""Go, Rust and Node repositories through the workflows, on real histories built in the test:
investigations find the culprit by running the repository's own runner at each commit (a test id
in the runner's own form) and verify the revert test by test; spec drift and invariants run the
tests the scripted policy (a test double) writes in the repository's own language."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.worker import Worker

from gym.git import git
from ratchet.cli.demo import EXAMPLES, GOALS, build_example
from ratchet.settings import Settings
from tests.utils.history import planted
from tests.utils.npmreg import npm_registry
from tests.utils.repos import make_repo
from tests.utils.scripts import write_script
from tests.utils.settings import make_settings
from tests.workflows.helpers import wait_for_end
from tests.workflows.test_patterns import roles_script

GO_CALC = {
    "go.mod": "module example.com/calc\n\ngo 1.19\n",
    "calc/calc.go": "package calc\n\nfunc Add(a, b int) int { return a + b }\n",
    "calc/calc_test.go": (
        'package calc\n\nimport "testing"\n\n'
        "func TestAdd(t *testing.T) { if Add(2, 3) != 5 { t.Fatal(Add(2, 3)) } }\n"
        "func TestZero(t *testing.T) { if Add(0, 0) != 0 { t.Fatal(Add(0, 0)) } }\n"
    ),
}
GO_BROKEN = {
    "calc/calc.go": (
        "package calc\n\nfunc Add(a, b int) int {\n\tif b > 2 {\n\t\treturn a + b + 1\n\t}\n"
        "\treturn a + b\n}\n"
    )
}
NODE_CALC = {
    "package.json": json.dumps({"name": "calc", "scripts": {"test": "node --test"}}),
    "calc.js": "exports.add = (a, b) => a + b;\n",
    "test/calc.test.js": (
        "const { test } = require('node:test');\nconst assert = require('node:assert');\n"
        "const { add } = require('../calc');\n"
        "test('adds', () => assert.strictEqual(add(2, 3), 5));\n"
        "test('zero', () => assert.strictEqual(add(0, 0), 0));\n"
    ),
}
NODE_BROKEN = {"calc.js": "exports.add = (a, b) => a + b + (b > 2 ? 1 : 0);\n"}


RUST_CALC = {
    "Cargo.toml": '[package]\nname = "calc"\nversion = "0.1.0"\nedition = "2021"\n',
    ".gitignore": "/target\n",
    "src/lib.rs": "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
    "tests/api.rs": (
        "#[test]\nfn adds() { assert_eq!(calc::add(2, 3), 5); }\n"
        "#[test]\nfn zero() { assert_eq!(calc::add(0, 0), 0); }\n"
    ),
}
RUST_BROKEN = {"src/lib.rs": "pub fn add(a: i32, b: i32) -> i32 {\n    a + b + (b > 2) as i32\n}\n"}


async def investigate(api: httpx.AsyncClient, body: dict[str, object]) -> dict[str, Any]:
    response = await api.post("/investigations", json=body)
    assert response.status_code == 202, response.text
    run = await wait_for_end(api, response.json()["run_id"], timeout_s=300)
    assert run["status"] == "completed", run.get("error")
    return run


async def test_a_go_regression_is_bisected_with_go_test_and_its_revert_verified(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = tmp_path / "calc"
    shas = planted(repo, GO_CALC, commits=6, bad_at=3, breaking=GO_BROKEN)
    run = await investigate(api, {
        "repo": str(repo), "good_ref": shas[0],
        "reproduce": {"test_id": "example.com/calc/calc::TestAdd"},
    })  # fmt: skip
    result = run["result"]
    assert result["culprit"]["sha"] == shas[3]
    gates = {g["name"]: g for g in result["gates"]}
    assert all(g["passed"] for g in result["gates"]), result["gates"]
    assert gates["tests"]["detail"].startswith("2 tests passed"), gates[
        "tests"
    ]  # TestAdd and TestZero
    assert "return a + b" in git("show", f"{result['branch']}:calc/calc.go", cwd=repo)


async def test_a_rust_regression_is_bisected_with_cargo_test_and_its_revert_verified(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = tmp_path / "calc"
    shas = planted(repo, RUST_CALC, commits=6, bad_at=2, breaking=RUST_BROKEN)
    run = await investigate(api, {
        "repo": str(repo), "good_ref": shas[0], "reproduce": {"test_id": "tests/api.rs::adds"},
    })  # fmt: skip
    result = run["result"]
    assert result["culprit"]["sha"] == shas[2]
    assert all(g["passed"] for g in result["gates"]), result["gates"]
    gates = {g["name"]: g for g in result["gates"]}
    assert gates["tests"]["detail"].startswith("2 tests passed"), gates["tests"]
    assert "(b > 2)" not in git("show", f"{result['branch']}:src/lib.rs", cwd=repo)


async def test_a_node_regression_is_bisected_with_node_s_runner_and_its_revert_verified(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = tmp_path / "calc"
    shas = planted(repo, NODE_CALC, commits=12, bad_at=4, breaking=NODE_BROKEN)
    run = await investigate(api, {"repo": str(repo), "good_ref": shas[0]})
    result = run["result"]
    assert result["culprit"]["sha"] == shas[4]
    gates = {g["name"]: g for g in result["gates"]}
    assert all(g["passed"] for g in result["gates"]), result["gates"]
    assert gates["tests"]["detail"].startswith("2 tests passed"), gates["tests"]
    report = (await api.get(str(result["report_url"]))).text
    assert "failing: test/calc.test.js::adds" in report  # the probes name the test that fails


NODE_MUL_BROKEN = {
    **NODE_CALC,
    "calc.js": "exports.add = (a, b) => a + b;\nexports.mul = (a, b) => a + b;\n",
    "test/calc.test.js": NODE_CALC["test/calc.test.js"]
    + "test('multiplies', () => assert.strictEqual(require('../calc').mul(3, 4), 12));\n",
}
BREAKS_ADD = """
calc.js
<<<<<<< SEARCH
exports.add = (a, b) => a + b;
exports.mul = (a, b) => a + b;
=======
exports.add = (a, b) => a - b;
exports.mul = (a, b) => a * b;
>>>>>>> REPLACE
"""
FIXES_ADD = """
calc.js
<<<<<<< SEARCH
exports.add = (a, b) => a - b;
=======
exports.add = (a, b) => a + b;
>>>>>>> REPLACE
"""


async def test_a_node_patch_that_breaks_a_passing_test_fails_with_its_id_and_a_fix_passes(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    # One test fails at the base: per-test grading lets a patch fix it (an exit code could not).
    repo = make_repo(tmp_path / "calc", NODE_MUL_BROKEN)
    script = write_script(tmp_path / "s.toml", [BREAKS_ADD, FIXES_ADD])
    body = {"repo": str(repo), "goal": "fix mul", "policy": "scripted",
            "policy_script": str(script)}  # fmt: skip
    response = await api.post("/tasks", json=body)
    assert response.status_code == 202, response.text
    run = await wait_for_end(api, response.json()["run_id"], timeout_s=300)
    assert run["status"] == "completed", run.get("error")
    tests = [s["detail"] for s in run["steps"] if s["name"] == "test"]
    assert [t.split(" in ")[0] for t in tests] == [
        "failed (exit 1): 2 passed, 1 failed",  # the first patch broke `adds`, fixed `mul`
        "passed: 3 passed, 0 failed",
    ]
    gates = {g["name"]: g for g in run["result"]["gates"]}
    assert gates["tests"] == {
        "name": "tests",
        "passed": True,
        "detail": "3 tests passed, none newly failing",
    }


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    with npm_registry() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, temporal_target: str, registry: str) -> Settings:
    # Builds may reach the loopback npm registry, and nothing else on this machine.
    host = registry.removeprefix("http://")
    return make_settings(tmp_path / "home", temporal_target, env_allowed_hosts=json.dumps([host]))


async def test_the_typescript_example_is_repaired_test_by_test_and_delivered(
    api: httpx.AsyncClient, worker: Worker, settings: Settings, registry: str
) -> None:
    repo = build_example(settings, "ts")
    setup = [f"npm ci --no-audit --no-fund --registry {registry}"]
    body = {"repo": str(repo), "goal": GOALS["ts"], "policy": "scripted",
            "policy_script": str(EXAMPLES / "ts" / "script.toml"),
            "environment": {"setup": setup}}  # fmt: skip
    response = await api.post("/tasks", json=body)
    assert response.status_code == 202, response.text
    run = await wait_for_end(api, response.json()["run_id"], timeout_s=300)
    assert run["status"] == "completed", run.get("error")
    tests = [
        s["detail"].split(" in ")[0] for s in run["steps"] if s["name"] in ("baseline", "test")
    ]
    # tsc, then Node's runner, graded per test: the first patch broke one of its own tests.
    assert tests == ["passed: 2 passed, 0 failed", "failed (exit 1): 5 passed, 1 failed",
                     "passed: 6 passed, 0 failed"]  # fmt: skip
    transcript = (await api.get(f"/runs/{run['run_id']}/transcript")).json()
    said = json.dumps(transcript["conversations"][0])
    assert "failing: dist/test/median.test.js::even length is the mean of the middle two" in said
    gates = {g["name"]: g for g in run["result"]["gates"]}
    assert gates["tests"]["detail"] == "6 tests passed, none newly failing"
    assert "Math.floor" in git("show", f"{run['result']['branch']}:src/stats.ts", cwd=repo)


GO_CLAIMS = json.dumps({"claims": [
    {"id": "adds", "text": "Add(2, 3) is 5.", "source": "README.md",
     "check": {"kind": "test", "path": "calc/claim_adds_test.go", "content":
               'package calc\n\nimport "testing"\n\n'
               "func TestClaimAdds(t *testing.T) { if Add(2, 3) != 5 { t.Fatal(Add(2, 3)) } }\n"}},
    {"id": "zero", "text": "Add(0, 0) is 0.", "source": "README.md",
     "check": {"kind": "test", "path": "calc/claim_zero_test.go", "content":
               'package calc\n\nimport "testing"\n\n'
               "func TestClaimZero(t *testing.T) { if Add(0, 0) != 0 { t.Fatal(Add(0, 0)) } }\n"}},
]})  # fmt: skip


async def test_spec_drift_in_a_go_repository_checks_claims_with_go_test(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = tmp_path / "calc"
    readme = {"README.md": "# calc\n\nAdd(2, 3) is 5. Add(0, 0) is 0.\n"}
    planted(repo, {**GO_CALC, **readme}, commits=4, bad_at=2, breaking=GO_BROKEN)
    script = roles_script(tmp_path / "s.toml", ["unused\n"], {"claims": [GO_CLAIMS]})
    response = await api.post("/drift", json={
        "repo": str(repo), "policy": "scripted", "policy_script": str(script),
        "investigate": False,
    })  # fmt: skip
    assert response.status_code == 202, response.text
    run = await wait_for_end(api, response.json()["run_id"], timeout_s=300)
    assert run["status"] == "completed", run.get("error")
    (gate,) = run["result"]["gates"]
    assert gate["detail"] == "1 hold, 1 drifted, 0 unchecked", gate
    report = (await api.get(run["result"]["report_url"])).text
    assert "| adds | drift | README.md |" in report and "| zero | holds | README.md |" in report
    assert "--- FAIL: TestClaimAdds" in report  # go test's own words, as the evidence


GO_INVARIANTS = json.dumps({"tests": [
    {"path": "calc/invariant_commutes_test.go", "rationale": "Add is commutative",
     "content": 'package calc\n\nimport "testing"\n\n'
                "func TestCommutes(t *testing.T) {\n\tfor a := -20; a <= 20; a++ {\n"
                "\t\tfor b := -20; b <= 20; b++ {\n\t\t\tif Add(a, b) != Add(b, a) "
                '{\n\t\t\t\tt.Fatalf("Add(%d, %d)", a, b)\n\t\t\t}\n\t\t}\n\t}\n}\n'},
    {"path": "calc/invariant_wrong_test.go", "rationale": "a false belief about Add",
     "content": 'package calc\n\nimport "testing"\n\n'
                "func TestIdentity(t *testing.T) { if Add(3, 1) != 3 { t.Fatal(Add(3, 1)) } }\n"},
]})  # fmt: skip
GO_BREAK_ADD = (
    "calc/calc.go\n<<<<<<< SEARCH\nfunc Add(a, b int) int { return a + b }\n=======\n"
    "func Add(a, b int) int {\n\tif a > b {\n\t\treturn a + b + 1\n\t}\n\treturn a + b\n}\n"
    ">>>>>>> REPLACE\n"
)
GO_KEEP_ADD = (
    "calc/calc.go\n<<<<<<< SEARCH\n\tif a > b {\n\t\treturn a + b + 1\n\t}\n=======\n"
    ">>>>>>> REPLACE\n"
)


async def test_a_go_invariant_that_holds_at_base_blocks_a_patch_that_breaks_it(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", GO_CALC)
    script = roles_script(tmp_path / "s.toml", [GO_BREAK_ADD, GO_KEEP_ADD],
                          {"invariants": [GO_INVARIANTS]})  # fmt: skip
    response = await api.post("/tasks", json={
        "repo": str(repo), "goal": "make Add faster", "policy": "scripted",
        "policy_script": str(script), "invariants": True,
    })  # fmt: skip
    assert response.status_code == 202, response.text
    run = await wait_for_end(api, response.json()["run_id"], timeout_s=300)
    assert run["status"] == "completed", run["error"]
    at_base = next(s for s in run["steps"] if s["name"] == "invariants at base")
    assert at_base["detail"] == "2 tests, 1 failing"
    checks = [s for s in run["steps"] if s["name"] == "invariants"]
    assert [c["detail"] for c in checks[:2]] == ["1 tests, 1 failing", "1 tests, 0 failing"]
    gate = next(g for g in run["result"]["gates"] if g["name"] == "invariants")
    assert gate["passed"], gate
    shipped = git("show", f"{run['result']['branch']}:calc/calc.go", cwd=repo)
    assert "a + b + 1" not in shipped


async def test_a_typescript_regression_is_bisected_by_a_test_id_tsc_compiling_each_probe(
    api: httpx.AsyncClient, worker: Worker, tmp_path: Path, registry: str
) -> None:
    example = EXAMPLES / "ts" / "repo"
    files = {str(p.relative_to(example)): p.read_text() for p in example.rglob("*") if p.is_file()}
    broken = files["src/stats.ts"].replace("/ values.length", "/ (values.length + 1)")
    assert broken != files["src/stats.ts"]
    repo = tmp_path / "stats"
    shas = planted(repo, files, commits=6, bad_at=3, breaking={"src/stats.ts": broken})
    run = await investigate(api, {
        "repo": str(repo), "good_ref": shas[0],
        # The id of the compiled test Node's runner runs: each probe compiles first (dist/ is
        # not in the repository), as the package's test script does.
        "reproduce": {"test_id": "dist/test/stats.test.js::mean of a few values"},
        "environment": {"setup": [f"npm ci --no-audit --no-fund --registry {registry}"]},
    })  # fmt: skip
    result = run["result"]
    assert result["culprit"]["sha"] == shas[3], result
    assert all(g["passed"] for g in result["gates"]), result["gates"]
    assert "/ values.length" in git("show", f"{result['branch']}:src/stats.ts", cwd=repo)
