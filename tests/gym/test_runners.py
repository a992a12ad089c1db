"""Per-test outcomes from Node's test runner, `go test` and `cargo test`, each through the
runner's own machine-readable output, on real suites run by the real toolchains: the counts
equal what the runner itself says, a test that fails then passes is flaky, and only the failing
tests run again where the runner can select them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gym.runner import Limits
from gym.runners import collect, detect_runner, prepare, rerun_failing, select
from gym.testing import TestRun, run_tests
from tests.utils.envs import sealed
from tests.utils.repos import make_repo


def outcome_counts(run: TestRun) -> dict[str, int]:
    return {k: run.count(k) for k in ("passed", "failed", "skipped") if run.count(k)}


# --- Node's test runner ----------------------------------------------------------------------

NODE_FLAKY = (
    "const fs = require('node:fs');\n"
    "test('flaky', () => {\n"
    "  // Fails the first time it runs in this workspace, passes after.\n"
    "  if (!fs.existsSync('.flaky.seen')) { fs.writeFileSync('.flaky.seen', ''); "
    "throw new Error('first time'); }\n"
    "});\n"
)


def node_suite(tmp_path: Path) -> Path:
    head = (
        "const { test, describe, it } = require('node:test');\n"
        "const assert = require('node:assert');\n"
    )
    return make_repo(tmp_path / "node", {
        "package.json": json.dumps({"name": "calc", "scripts": {"test": "node --test"}}),
        "test/a.test.js": head + (
            "test('adds', () => assert.strictEqual(1 + 1, 2));\n"
            "test('broken', () => assert.strictEqual(1 + 1, 3));\n"
            "test('later', { skip: 'not today' }, () => {});\n"
            "describe('group', () => { it('adds', () => {}); });\n"
        ) + NODE_FLAKY,
        "test/b.test.js": head + "describe('outer', () => { describe('inner', () => {\n"
        "  it('adds', () => {}); }); });\n",
    })  # fmt: skip


def node_summary(output: bytes) -> dict[str, int]:
    """What Node's own reporter counts at the end of its output: "(i) pass 5"."""
    said = dict(re.findall(r"\N{INFORMATION SOURCE} (pass|fail|skipped) (\d+)", output.decode()))
    names = {"pass": "passed", "fail": "failed", "skipped": "skipped"}
    return {names[k]: int(v) for k, v in said.items() if int(v)}


async def test_node_s_runner_counts_match_its_own_and_a_flaky_test_is_told_apart(
    tmp_path: Path,
) -> None:
    repo = node_suite(tmp_path)
    run = await run_tests("npm test", repo, limits=Limits(timeout_s=120), sandbox=sealed())
    assert run.runner == "node"
    ids = {t.id: t.outcome for t in run.tests}
    assert ids == {
        "test/a.test.js::adds": "passed",
        "test/a.test.js::broken": "failed",
        "test/a.test.js::later": "skipped",
        "test/a.test.js::group > adds": "passed",
        "test/a.test.js::flaky": "flaky",
        "test/b.test.js::outer > inner > adds": "passed",
    }
    # Node's own count at the first run: the flaky test failed then.
    first = node_summary(run.result.output)
    assert first == {"passed": 3, "failed": 2, "skipped": 1}
    assert run.reruns == 1 and run.flaky == ["test/a.test.js::flaky"] and not run.passed


# --- go test ---------------------------------------------------------------------------------

GO_TESTS = """package calc

import (
	"os"
	"testing"
)

func TestAdd(t *testing.T) { if Add(1, 2) != 3 { t.Fatal("no") } }
func TestBroken(t *testing.T) { if Add(1, 2) != 4 { t.Fatal("broken") } }
func TestLater(t *testing.T) { t.Skip("not today") }
func TestTable(t *testing.T) {
	t.Run("one", func(t *testing.T) {})
	t.Run("two", func(t *testing.T) {})
}
func TestFlaky(t *testing.T) {
	// Fails the first time it runs in this workspace, passes after.
	if _, err := os.Stat(".flaky.seen"); err != nil {
		os.WriteFile(".flaky.seen", nil, 0o644)
		t.Fatal("first time")
	}
}
"""


def go_suite(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "go", {
        "go.mod": "module example.com/calc\n\ngo 1.19\n",
        "calc/calc.go": "package calc\n\nfunc Add(a, b int) int { return a + b }\n",
        "calc/calc_test.go": GO_TESTS,
        "more/more_test.go": 'package more\n\nimport "testing"\n\nfunc TestAdd(t *testing.T) {}\n',
    })  # fmt: skip


def go_summary(log: bytes) -> dict[str, int]:
    """What go test itself says of each test: "--- PASS: TestAdd (0.00s)"."""
    said = re.findall(r"--- (PASS|FAIL|SKIP): ", log.decode())
    names = {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}
    return {names[k]: said.count(k) for k in dict.fromkeys(said)}


async def test_go_test_counts_match_its_own_and_only_the_failing_tests_run_again(
    tmp_path: Path,
) -> None:
    repo = go_suite(tmp_path)
    run = await run_tests("go test ./...", repo, limits=Limits(timeout_s=300), sandbox=sealed())
    assert run.runner == "go"
    outcomes = {t.id: t.outcome for t in run.tests}
    assert outcomes["example.com/calc/calc::TestBroken"] == "failed"
    assert outcomes["example.com/calc/calc::TestFlaky"] == "flaky"
    assert outcomes["example.com/calc/calc::TestTable/two"] == "passed"
    assert outcomes["example.com/calc/more::TestAdd"] == "passed"  # a name in two packages
    # The log reads as go test prints it, and its count is the first run's.
    assert b'"Action"' not in run.result.output
    assert go_summary(run.result.output) == {"passed": 5, "failed": 2, "skipped": 1}
    assert outcome_counts(run) == {"passed": 5, "failed": 1, "skipped": 1}


# --- cargo test ------------------------------------------------------------------------------

RUST_LIB = """pub fn add(a: i32, b: i32) -> i32 { a + b }

#[cfg(test)]
mod tests {
    use super::*;
    #[test] fn adds() { assert_eq!(add(1, 2), 3); }
    #[test] fn broken() { assert_eq!(add(1, 2), 4); }
    #[test] #[ignore] fn later() {}
    #[test] fn flaky() {
        // Fails the first time it runs in this workspace, passes after.
        if std::fs::metadata(".flaky.seen").is_err() {
            std::fs::write(".flaky.seen", "").unwrap();
            panic!("first time");
        }
    }
}
"""


def rust_suite(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "rust", {
        "Cargo.toml": '[package]\nname = "calc"\nversion = "0.1.0"\nedition = "2021"\n',
        "src/lib.rs": RUST_LIB,
        "tests/api.rs": "#[test]\nfn adds() { assert_eq!(calc::add(2, 2), 4); }\n",
    })  # fmt: skip


def libtest_summary(output: bytes) -> dict[str, int]:
    """libtest's own totals: each test binary's "suite" event counts its tests."""
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for line in output.decode().splitlines():
        if '"type": "suite"' in line and '"passed"' in line:
            suite = json.loads(line)
            totals["passed"] += suite["passed"]
            totals["failed"] += suite["failed"]
            totals["skipped"] += suite["ignored"]
    return {k: v for k, v in totals.items() if v}


async def test_cargo_test_counts_match_libtest_s_own_across_its_test_binaries(
    tmp_path: Path,
) -> None:
    repo = rust_suite(tmp_path)
    # In the sealed sandbox, with the worker's toolchain (rustup's here) shown read-only.
    run = await run_tests("cargo test", repo, limits=Limits(timeout_s=600), sandbox=sealed())
    assert run.runner == "cargo"
    outcomes = {t.id: t.outcome for t in run.tests}
    assert outcomes == {
        "src/lib.rs::tests::adds": "passed",
        "src/lib.rs::tests::broken": "failed",
        "src/lib.rs::tests::later": "skipped",
        "src/lib.rs::tests::flaky": "flaky",
        "tests/api.rs::adds": "passed",  # the second binary ran although the first failed
    }
    assert libtest_summary(run.result.output) == {"passed": 2, "failed": 2, "skipped": 1}


# --- What each runner is asked -------------------------------------------------------------


def test_the_runner_is_read_from_the_command_or_the_package_s_test_script(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"test": "vitest run"}}))
    assert detect_runner("python -m pytest -q") == "pytest"
    assert detect_runner("go test -race ./...") == "go"
    assert detect_runner("cargo test --workspace") == "cargo"
    assert detect_runner("node --test test/") == "node"
    assert detect_runner("npx jest --ci") == "jest"
    assert detect_runner("bun test") == "bun"
    assert detect_runner("npm test", tmp_path) == "vitest"
    assert detect_runner("pnpm run test", tmp_path) == "vitest"
    assert detect_runner("make check", tmp_path) is None


def test_each_runner_is_asked_for_its_machine_readable_report(tmp_path: Path) -> None:
    assert prepare("cargo test -p calc", "cargo", tmp_path).command == (
        "cargo test --no-fail-fast -p calc -- -Z unstable-options --format json --report-time"
    )
    assert prepare("cargo test -- --nocapture", "cargo", tmp_path).command == (
        "cargo test --no-fail-fast -- --nocapture -Z unstable-options --format json --report-time"
    )
    assert prepare("go test ./...", "go", tmp_path).env == {"GOFLAGS": "-json"}
    assert prepare("npm test", "jest", tmp_path).command.startswith("npm test -- --json")
    assert "--reporter=junit" in prepare("npx vitest run", "vitest", tmp_path).command
    node = prepare("node --test", "node", tmp_path)
    assert "node_reporter.mjs" in node.env["NODE_OPTIONS"]
    assert (tmp_path / "node_reporter.mjs").is_file()


def test_only_the_failing_tests_are_selected_where_the_runner_can() -> None:
    failing = ["example.com/m/calc::TestBroken", "example.com/m/calc::TestTable/two"]
    assert (
        rerun_failing("go test ./...", "go", failing)
        == "go test ./... -run '^(TestBroken|TestTable)$'"
    )
    assert rerun_failing(
        "cargo test", "cargo", ["src/lib.rs::tests::broken", "doc::src/lib.rs - add (line 3)"]
    ) == ("cargo test -- --exact tests::broken 'src/lib.rs - add (line 3)'")
    assert rerun_failing("make test", "go", failing) is None  # cannot select through make
    assert rerun_failing("node --test", "node", ["a.test.js::adds"]) is None


def test_a_selection_through_a_package_script_builds_first(tmp_path: Path) -> None:
    script = {"scripts": {"test": "tsc -p . && node --test dist/test/"}}
    (tmp_path / "package.json").write_text(json.dumps(script))
    ids = ["dist/test/stats.test.js::median > odd"]
    # A probe at a commit has no dist/ yet: the compile step comes with the selection.
    assert select("npm test", "node", ids, tmp_path) == (
        'export PATH="$PWD/node_modules/.bin:$PATH"; '
        "tsc -p . && node --test dist/test/stats.test.js"
    )
    assert select("node --test", "node", ids, tmp_path) == "node --test dist/test/stats.test.js"


def test_jest_s_json_report_is_read_per_assertion_and_a_file_that_fails_to_run_is_an_error(
    tmp_path: Path,
) -> None:
    # The shape `jest --json` writes (its documented AggregatedResult).
    report = {"testResults": [
        {"name": f"{tmp_path}/src/sum.test.js", "status": "failed", "assertionResults": [
            {"ancestorTitles": ["sum"], "title": "adds", "status": "passed", "duration": 3},
            {"ancestorTitles": ["sum"], "title": "overflows", "status": "failed", "duration": 5},
            {"ancestorTitles": [], "title": "later", "status": "pending", "duration": None},
        ]},
        {"name": f"{tmp_path}/src/broken.test.js", "status": "failed", "assertionResults": []},
    ]}  # fmt: skip
    (tmp_path / "jest.json").write_text(json.dumps(report))
    # Jest names files absolutely: the ids are relative to the workspace.
    found = {t.id: t.outcome for t in collect(tmp_path, b"", "jest", tmp_path)}
    assert found == {
        "src/sum.test.js::sum > adds": "passed",
        "src/sum.test.js::sum > overflows": "failed",
        "src/sum.test.js::later": "skipped",
        "src/broken.test.js": "error",
    }


def test_vitest_s_junit_names_each_test_by_its_file_and_suites(tmp_path: Path) -> None:
    # The shape Vitest's junit reporter writes: classname is the file, name the suite path.
    (tmp_path / "vitest.xml").write_text(
        '<testsuites><testsuite name="src/sum.test.ts" tests="2">'
        '<testcase classname="src/sum.test.ts" name="sum &gt; adds" time="0.001"/>'
        '<testcase classname="src/sum.test.ts" name="sum &gt; overflows" time="0.002">'
        '<failure message="expected 1 to be 2"/></testcase>'
        "</testsuite></testsuites>"
    )
    found = {t.id: t.outcome for t in collect(tmp_path, b"", "vitest")}
    assert found == {"src/sum.test.ts::sum > adds": "passed",
                     "src/sum.test.ts::sum > overflows": "failed"}  # fmt: skip
