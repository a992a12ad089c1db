"""The lint gate: ruff on a real repository, new findings against the baseline."""

from __future__ import annotations

import json
from pathlib import Path

from gym.config import RUFF, RepoConfig, detect_lint_command, load_config
from gym.lint import LintRun, lint_gate, parse_findings, run_lint
from gym.runner import Limits
from tests.utils.envs import sealed
from tests.utils.repos import PY_REPO, make_repo


async def test_ruff_in_the_sandbox_finds_what_a_patch_introduces(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    command, fmt = detect_lint_command(repo, load_config(repo)) or ("", "")
    assert (command, fmt) == (RUFF, "ruff-json")
    limits, sandbox = Limits(timeout_s=60), sealed()
    before = await run_lint(command, fmt, repo, limits=limits, sandbox=sandbox)
    assert before.ok and before.findings == []
    (repo / "calc.py").write_text("import os\n\n\ndef add(a, b):\n    return a + b\n")
    after = await run_lint(command, fmt, repo, limits=limits, sandbox=sandbox)
    assert after.findings == ["calc.py: F401 `os` imported but unused"]
    gate = lint_gate(before, after)
    assert not gate.passed and "1 new lint findings: calc.py: F401" in gate.detail
    assert lint_gate(after, after).passed  # already there at baseline: not new


def test_line_findings_ignore_positions_so_moved_code_is_not_new(tmp_path: Path) -> None:
    base = parse_findings("a.py:3:1: E1 bad\n", "lines", tmp_path) or []
    moved = parse_findings("a.py:10:1: E1 bad\n", "lines", tmp_path) or []
    assert base == moved == ["a.py: E1 bad"]


def test_lint_that_cannot_run_fails_only_if_it_ran_at_baseline() -> None:
    ok = LintRun("x", True, [])
    broken = LintRun("x", False, [], "lint did not run (exit 127)")
    assert not lint_gate(ok, broken).passed
    assert lint_gate(broken, broken).passed
    assert lint_gate(None, None).passed and "no lint command" in lint_gate(None, None).detail


def test_lint_configuration(tmp_path: Path) -> None:
    assert detect_lint_command(tmp_path, RepoConfig()) is None  # nothing to lint
    (tmp_path / "ratchet.toml").write_text("[lint]\ncommand = 'eslint .'\n")
    assert detect_lint_command(tmp_path, load_config(tmp_path)) == ("eslint .", "lines")
    (tmp_path / "ratchet.toml").write_text("[lint]\nenabled = false\n")
    (tmp_path / "x.py").write_text("")
    assert detect_lint_command(tmp_path, load_config(tmp_path)) is None


GO_HEAD = 'package calc\n\nimport "fmt"\n\n'


async def test_go_vet_in_the_sandbox_finds_what_a_patch_introduces(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "go", {
        "go.mod": "module example.com/calc\n\ngo 1.19\n",
        "calc/calc.go": GO_HEAD + 'func Show(n int) { fmt.Printf("%d", n) }\n',
    })  # fmt: skip
    command, fmt = detect_lint_command(repo, load_config(repo)) or ("", "")
    assert (command, fmt) == ("go vet -json ./...", "go-vet-json")
    limits, sandbox = Limits(timeout_s=300), sealed()
    before = await run_lint(command, fmt, repo, limits=limits, sandbox=sandbox)
    assert before.ok and before.findings == [], before
    (repo / "calc/calc.go").write_text(
        GO_HEAD + '// Show prints n.\nfunc Show(n int) { fmt.Printf("%d", "n") }\n'
    )
    after = await run_lint(command, fmt, repo, limits=limits, sandbox=sandbox)
    assert after.findings == [
        'calc/calc.go: printf fmt.Printf format %d has arg "n" of wrong type string'
    ], after
    assert not lint_gate(before, after).passed


async def test_staticcheck_runs_after_go_vet_when_the_repository_configures_it(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "go", {
        "go.mod": "module example.com/calc\n\ngo 1.19\n",
        "staticcheck.conf": 'checks = ["all"]\n',
        "calc/calc.go": "// Package calc shows.\n" + GO_HEAD
        + 'func Show(n int) string { return fmt.Sprint(n) }\n',
    })  # fmt: skip
    command, fmt = detect_lint_command(repo, load_config(repo)) or ("", "")
    # Debian names it go-staticcheck (make install installs it).
    assert command.startswith("go vet -json ./...; ") and command.endswith(
        "staticcheck -f json ./..."
    )
    limits, sandbox = Limits(timeout_s=300), sealed()
    before = await run_lint(command, fmt, repo, limits=limits, sandbox=sandbox)
    assert before.ok and before.findings == [], before
    # A comparison with a bool constant: go vet says nothing, staticcheck's S1002 does.
    (repo / "calc/calc.go").write_text(
        "// Package calc shows.\n"
        + GO_HEAD
        + "func Show(n int) string {\n\tif (n > 0) == true {\n\t\treturn fmt.Sprint(n)\n\t}\n"
        + '\treturn ""\n}\n'
    )
    after = await run_lint(command, fmt, repo, limits=limits, sandbox=sandbox)
    assert [f.split(" ", 2)[:2] for f in after.findings] == [["calc/calc.go:", "S1002"]], after
    assert not lint_gate(before, after).passed


async def test_clippy_finds_what_a_patch_introduces(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "rust", {
        "Cargo.toml": '[package]\nname = "calc"\nversion = "0.1.0"\nedition = "2021"\n',
        "src/lib.rs": "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
    })  # fmt: skip
    command, fmt = detect_lint_command(repo, load_config(repo)) or ("", "")
    assert fmt == "cargo-json"
    # The toolchain is the sealed sandbox's own (rustup's, shown at a neutral path, or Debian's).
    limits, sandbox = Limits(timeout_s=600), sealed()
    before = await run_lint(command, fmt, repo, limits=limits, sandbox=sandbox)
    assert before.ok and before.findings == [], before
    (repo / "src/lib.rs").write_text("pub fn add(a: i32, b: i32) -> i32 {\n    return a + b;\n}\n")
    after = await run_lint(command, fmt, repo, limits=limits, sandbox=sandbox)
    assert [f.split(" ", 2)[:2] for f in after.findings] == [
        ["src/lib.rs:", "clippy::needless_return"]
    ], after
    assert not lint_gate(before, after).passed


def test_eslint_s_json_is_read_per_rule_without_positions(tmp_path: Path) -> None:
    # What `eslint --format json` writes (its documented shape), positions dropped.
    unused = {"ruleId": "no-unused-vars", "line": 3,
              "message": "'x' is assigned a value but never used."}  # fmt: skip
    output = json.dumps([{"filePath": f"{tmp_path}/src/a.js", "messages": [unused]},
                         {"filePath": f"{tmp_path}/src/b.js", "messages": []}])  # fmt: skip
    assert parse_findings(output, "eslint-json", tmp_path) == [
        "src/a.js: no-unused-vars 'x' is assigned a value but never used."
    ]
    assert parse_findings("not json", "eslint-json", tmp_path) is None
