"""Where the roles' tests live and how one runs, per runner (the runs themselves are in
tests/workflows/test_languages.py and tests/workflows/test_patterns.py)."""

from __future__ import annotations

import json
from pathlib import Path

from gym.config import load_config
from gym.test_files import CONVENTIONS, convention_for


def test_the_convention_is_the_repository_s_runner(tmp_path: Path) -> None:
    assert convention_for(tmp_path, load_config(tmp_path)).runner == "pytest"  # nothing to go on
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"test": "vitest run"}}))
    assert convention_for(tmp_path, load_config(tmp_path)).runner == "vitest"
    (tmp_path / "ratchet.toml").write_text('[tests]\ncommand = "make check"\nrunner = "jest"\n')
    assert convention_for(tmp_path, load_config(tmp_path)).runner == "jest"
    (tmp_path / "ratchet.toml").unlink()
    (tmp_path / "package.json").unlink()
    (tmp_path / "go.mod").write_text("module example.com/x\n")
    assert convention_for(tmp_path, load_config(tmp_path)).runner == "go"


def test_a_test_runs_alone_where_its_runner_finds_it() -> None:
    go, cargo, bun = CONVENTIONS["go"], CONVENTIONS["cargo"], CONVENTIONS["bun"]
    content = "package calc\n\nfunc TestA(t *testing.T) {}\nfunc TestB(t *testing.T) {}\n"
    assert go.command("calc/adversarial_edge_test.go", content) == (
        "go test ./calc -run '^(TestA|TestB)$'"
    )
    assert go.command("invariant_x_test.go", content).startswith("go test . -run")
    assert cargo.command("tests/invariant_order.rs", "") == "cargo test --test invariant_order"
    assert bun.command("test/claim_x.test.ts", "") == "bun test ./test/claim_x.test.ts"
    assert CONVENTIONS["pytest"].command("tests/test_claim_x.py", "") == (
        "python -m pytest -q tests/test_claim_x.py"
    )
    assert CONVENTIONS["jest"].command("test/adversarial_a.test.js", "") == (
        "node_modules/.bin/jest test/adversarial_a.test.js"
    )
    # What the runner would not run (or would run as something else) is refused.
    assert go.allows("adversarial", "calc/adversarial_edge_test.go")
    assert not go.allows("adversarial", "calc/adversarial_edge.go")
    assert not CONVENTIONS["pytest"].allows("invariant", "tests/test_adversarial_x.py")
    assert not CONVENTIONS["node"].allows("claim", "../claim_x.test.js")
    assert go.path("claim", "zero") == "claim_zero_test.go"
    assert "kind" not in go.guidance("claim") and "claim_<name>_test.go" in go.guidance("claim")
