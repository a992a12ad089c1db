from __future__ import annotations

import os
from pathlib import Path

import pytest

from gym.errors import PatchDoesNotApply, PatchRefused
from gym.patching import PatchRules, apply_patch


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("".join(f"line {i}\n" for i in range(1, 21)))
    (root / "README.md").write_text("hello\n")
    return root


def block(path: str, search: str, replace: str) -> str:
    return f"{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def test_unified_diff_with_wrong_line_numbers_still_applies(ws: Path) -> None:
    diff = (
        "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n"
        "@@ -2,3 +2,3 @@\n line 10\n-line 11\n+LINE ELEVEN\n line 12\n"  # really at line 10
    )
    assert apply_patch(ws, diff) == ["pkg/mod.py"]
    text = (ws / "pkg" / "mod.py").read_text()
    assert "LINE ELEVEN\n" in text and "line 11\n" not in text


def test_unified_diff_creates_and_deletes_files(ws: Path) -> None:
    diff = (
        "--- /dev/null\n+++ b/new/file.txt\n@@ -0,0 +1,2 @@\n+a\n+b\n"
        "--- a/README.md\n+++ /dev/null\n@@ -1 +0,0 @@\n-hello\n"
    )
    assert sorted(apply_patch(ws, diff)) == ["README.md", "new/file.txt"]
    assert (ws / "new" / "file.txt").read_text() == "a\nb\n"
    assert not (ws / "README.md").exists()


def test_hunk_that_does_not_match_names_file_and_hunk_and_writes_nothing(ws: Path) -> None:
    before = (ws / "pkg" / "mod.py").read_text()
    diff = (
        "--- /dev/null\n+++ b/created.txt\n@@ -0,0 +1 @@\n+x\n"
        "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -1,2 +1,2 @@\n line 1\n-line 2\n+two\n"
        "@@ -5,2 +5,2 @@\n line 5\n-no such line\n+six\n"
    )
    with pytest.raises(PatchDoesNotApply, match=r"pkg/mod.py: hunk 2 \(@@ -5,2 \+5,2 @@\)"):
        apply_patch(ws, diff)
    assert (ws / "pkg" / "mod.py").read_text() == before
    assert not (ws / "created.txt").exists()


def test_search_replace_blocks_edit_and_create(ws: Path) -> None:
    patch = block("pkg/mod.py", "line 3\nline 4\n", "three\n") + block("pkg/new.py", "", "x = 1\n")
    assert apply_patch(ws, patch) == ["pkg/mod.py", "pkg/new.py"]
    assert "three\nline 5" in (ws / "pkg" / "mod.py").read_text()
    assert (ws / "pkg" / "new.py").read_text() == "x = 1\n"


def test_search_replace_tolerates_trailing_whitespace(ws: Path) -> None:
    apply_patch(ws, block("pkg/mod.py", "line 7   \nline 8\n", "seven\n"))
    assert "line 6\nseven\nline 9" in (ws / "pkg" / "mod.py").read_text()


def test_ambiguous_and_missing_search_text(ws: Path) -> None:
    with pytest.raises(PatchDoesNotApply, match="occurs 2 times"):
        apply_patch(ws, block("pkg/mod.py", "0\n", "x\n"))  # in "line 10" and "line 20"
    with pytest.raises(PatchDoesNotApply, match=r"pkg/mod.py: edit block 1: SEARCH text not found"):
        apply_patch(ws, block("pkg/mod.py", "nothing like this\n", "x\n"))


def test_file_operations(ws: Path) -> None:
    apply_patch(ws, "*** RENAME README.md -> docs/README.md\n*** DELETE pkg/mod.py\n")
    assert (ws / "docs" / "README.md").read_text() == "hello\n"
    assert not (ws / "README.md").exists() and not (ws / "pkg" / "mod.py").exists()


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/etc/passwd", "absolute"),
        ("../outside.txt", "'..'"),
        ("pkg/../../outside.txt", "'..'"),
        (".git/hooks/pre-commit", ".git/"),
        ("pkg/.git/config", ".git/"),
        (".github/workflows/ci.yml", "protected"),
        ("ratchet.toml", "protected"),
    ],
)
def test_refused_paths_write_nothing(ws: Path, tmp_path: Path, path: str, reason: str) -> None:
    rules = PatchRules(protected=(".github/workflows/**", "ratchet.toml"))
    for patch in (
        block(path, "", "owned\n"),
        f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+owned\n",
    ):
        with pytest.raises(PatchRefused, match=reason):
            apply_patch(ws, patch, rules)
    assert not (tmp_path / "outside.txt").exists()
    assert not (ws / ".github").exists()


def test_symlink_out_of_the_workspace_is_refused(ws: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_text("safe\n")
    os.symlink(outside, ws / "link")
    os.symlink(outside / "target.txt", ws / "file-link")
    for path in ("link/target.txt", "file-link", "link/new.txt"):
        with pytest.raises(PatchRefused, match="symlink"):
            apply_patch(ws, block(path, "", "owned\n"))
    assert (outside / "target.txt").read_text() == "safe\n"
    assert not (outside / "new.txt").exists()


def test_binary_and_oversized_content_is_refused(ws: Path) -> None:
    with pytest.raises(PatchRefused, match="binary"):
        apply_patch(ws, "diff --git a/x.bin b/x.bin\nGIT binary patch\nliteral 10\n")
    with pytest.raises(PatchRefused, match="over the 100-byte limit"):
        apply_patch(ws, block("big.txt", "", "x" * 200 + "\n"), PatchRules(max_file_bytes=100))
    assert not (ws / "big.txt").exists()


def test_text_with_no_edits_says_what_was_expected(ws: Path) -> None:
    with pytest.raises(PatchDoesNotApply, match="expected a unified diff"):
        apply_patch(ws, "I think you should change the README.")
