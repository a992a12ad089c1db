from __future__ import annotations

from pathlib import Path

import pytest

from gym.config import RepoConfig, detect_test_command, load_config
from gym.errors import BadRepository
from gym.gates import TestOutcome, evaluate
from gym.workspace import ChangedFile

OK = TestOutcome(True, 0, False, "")
FAILED = TestOutcome(False, 1, False, "1 failed")


def test_detects_python_and_reads_ratchet_toml(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    assert detect_test_command(tmp_path, load_config(tmp_path))[0] == "python -m pytest -q"
    (tmp_path / "ratchet.toml").write_text(
        "[tests]\ncommand = 'make check'\n"
        "[patch]\nprotected = ['infra/**']\nmax_changed_lines = 5\n"
    )
    config = load_config(tmp_path)
    assert detect_test_command(tmp_path, config) == ("make check", "ratchet.toml")
    assert config.protected == ("infra/**", "ratchet.toml")  # ratchet.toml stays protected
    assert config.max_changed_lines == 5


def test_go_and_rust_repositories_are_detected_and_a_runner_can_be_named(tmp_path: Path) -> None:
    go, rust = tmp_path / "go", tmp_path / "rust"
    go.mkdir(), rust.mkdir()
    (go / "go.mod").write_text("module example.com/m\n\ngo 1.19\n")
    (rust / "Cargo.toml").write_text('[package]\nname = "m"\nversion = "0.1.0"\n')
    assert detect_test_command(go, load_config(go)) == ("go test ./...", "detected: go.mod")
    assert detect_test_command(rust, load_config(rust)) == ("cargo test", "detected: Cargo.toml")
    (go / "ratchet.toml").write_text("[tests]\ncommand = 'make check'\nrunner = 'go'\n")
    assert load_config(go).test_runner == "go"
    (go / "ratchet.toml").write_text("[tests]\nrunner = 'mocha'\n")
    with pytest.raises(BadRepository, match="runner must be one of pytest, node"):
        load_config(go)


def test_no_way_to_test_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BadRepository, match="pass test_command"):
        detect_test_command(tmp_path, RepoConfig())
    (tmp_path / "ratchet.toml").write_text("[tests\n")
    with pytest.raises(BadRepository, match="not valid TOML"):
        load_config(tmp_path)


def gates(
    changed: list[ChangedFile], patched: TestOutcome = OK, config: RepoConfig | None = None
) -> dict[str, tuple[bool, str]]:
    results = evaluate(changed=changed, config=config or RepoConfig(), patched=patched, baseline=OK)
    return {g.name: (g.passed, g.detail) for g in results}


def test_gates_pass_on_a_clean_change() -> None:
    result = gates(
        [
            ChangedFile("A", "tests/test_new.py", 5, 0, False),
            ChangedFile("M", "calc.py", 2, 1, False),
        ]
    )
    assert all(passed for passed, _ in result.values())


def test_each_gate_fails_with_an_actionable_detail() -> None:
    result = gates(
        [
            ChangedFile("D", "tests/test_calc.py", 0, 10, False),
            ChangedFile("M", ".github/workflows/ci.yml", 1, 1, False),
            ChangedFile("M", "big.py", 3000, 0, False),
        ],
        patched=FAILED,
    )
    assert result["tests"] == (
        False,
        "the test command exited with 1; it passed at baseline, "
        "so the patch broke something. 1 failed",
    )
    assert not result["tamper"][0] and "tests/test_calc.py (deleted)" in result["tamper"][1]
    assert (
        not result["protected_paths"][0]
        and ".github/workflows/ci.yml" in result["protected_paths"][1]
    )
    assert not result["diff_budget"][0] and "3012 lines" in result["diff_budget"][1]
    assert not gates([])["diff_budget"][0]
    allowed = gates(
        [ChangedFile("M", "tests/test_calc.py", 1, 1, False)],
        config=RepoConfig(allow_test_changes=True),
    )
    assert allowed["tamper"][0]
