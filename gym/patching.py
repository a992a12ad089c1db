"""Apply what a policy proposes: unified diffs, search/replace edit blocks and file operations.

Every change is computed in memory and every path checked before the first byte is written, so
a patch applies whole or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gym.errors import PatchDoesNotApply, PatchRefused
from gym.paths import DEFAULT_PROTECTED, safe_path

MAX_FILE_BYTES = 1_000_000
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_SEARCH, _DIVIDER, _REPLACE = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"
_OP = re.compile(r"^\*\*\* (DELETE|RENAME) (.+?)(?: -> (.+))?$")


@dataclass(frozen=True)
class PatchRules:
    protected: tuple[str, ...] = DEFAULT_PROTECTED
    max_file_bytes: int = MAX_FILE_BYTES


@dataclass
class _Change:
    """The new content of one file (None deletes it)."""

    path: str
    content: str | None


def is_unified_diff(text: str) -> bool:
    return bool(re.search(r"^(diff --git |--- \S)", text, re.M)) and "\n+++ " in text


def apply_patch(workspace: Path, text: str, rules: PatchRules | None = None) -> list[str]:
    """Apply `text` to the workspace and return the paths it changed."""
    rules = rules or PatchRules()
    if "GIT binary patch" in text:
        raise PatchRefused("binary patches are not accepted; write text files only")
    reader = _FileReader(workspace, rules)
    if is_unified_diff(text):
        changes = _unified_changes(text, reader)
    else:
        changes = _block_changes(text, reader)
    for change in changes:
        if change.content is not None and len(change.content.encode()) > rules.max_file_bytes:
            raise PatchRefused(
                f"refused {change.path}: {len(change.content.encode())} bytes is over the "
                f"{rules.max_file_bytes}-byte limit for one file"
            )
    for change in changes:
        target = safe_path(workspace, change.path, rules.protected)
        if change.content is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(change.content)
    return sorted({c.path for c in changes})


class _FileReader:
    """Current content of files as the patch sees them, including its own earlier changes."""

    def __init__(self, workspace: Path, rules: PatchRules) -> None:
        self.workspace = workspace
        self.rules = rules
        self.pending: dict[str, str | None] = {}

    def read(self, path: str) -> str | None:
        if path in self.pending:
            return self.pending[path]
        target = safe_path(self.workspace, path, self.rules.protected)
        if target.is_dir():
            raise PatchRefused(f"refused {path}: it is a directory")
        try:
            return target.read_text()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise PatchRefused(f"refused {path}: not a text file") from None

    def write(self, path: str, content: str | None) -> None:
        safe_path(self.workspace, path, self.rules.protected)
        self.pending[path] = content

    def changes(self) -> list[_Change]:
        return [_Change(path, content) for path, content in self.pending.items()]


# --- unified diffs -------------------------------------------------------------------------


def _strip_prefix(raw: str) -> str | None:
    path = raw.split("\t")[0].strip()
    if path == "/dev/null":
        return None
    if path.startswith(("a/", "b/")):
        path = path[2:]
    return path


def _unified_changes(text: str, reader: _FileReader) -> list[_Change]:
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _strip_prefix(lines[i][4:]), _strip_prefix(lines[i + 1][4:])
            i += 2
            hunks: list[tuple[str, list[str]]] = []
            while i < len(lines) and not (
                lines[i].startswith("--- ")
                and i + 1 < len(lines)
                and lines[i + 1].startswith("+++ ")
            ):
                if lines[i].startswith("@@"):
                    header, body = lines[i], []
                    i += 1
                    while i < len(lines) and lines[i][:1] in (" ", "+", "-", "\\", ""):
                        if (
                            lines[i].startswith("--- ")
                            and i + 1 < len(lines)
                            and lines[i + 1].startswith("+++ ")
                        ):
                            break
                        body.append(lines[i])
                        i += 1
                    hunks.append((header, body))
                else:
                    i += 1
            _apply_file_hunks(old, new, hunks, reader)
        else:
            i += 1
    changes = reader.changes()
    if not changes:
        raise PatchDoesNotApply(
            "the diff names no file: expected '--- a/PATH' and '+++ b/PATH' lines"
        )
    return changes


def _apply_file_hunks(
    old: str | None, new: str | None, hunks: list[tuple[str, list[str]]], reader: _FileReader
) -> None:
    name = new or old
    if name is None:
        raise PatchDoesNotApply("a diff goes from /dev/null to /dev/null")
    source = "" if old is None else reader.read(old)
    if source is None:
        raise PatchDoesNotApply(f"{old}: the diff changes a file that does not exist")
    if old is None and reader.read(name) is not None:
        raise PatchDoesNotApply(f"{name}: the diff creates a file that already exists")
    file_lines = source.splitlines()
    offset = 0
    for number, (header, body) in enumerate(hunks, 1):
        before = [ln[1:] for ln in body if ln[:1] in (" ", "-") or ln == ""]
        after = [ln[1:] for ln in body if ln[:1] in (" ", "+") or ln == ""]
        match = _HUNK.match(header)
        expected = (int(match.group(1)) - 1 if match else 0) + offset
        at = _find(file_lines, before, max(expected, 0))
        if at is None:
            first = before[0] if before else ""
            raise PatchDoesNotApply(
                f"{name}: hunk {number} ({header.strip()}) does not match the file; "
                f"its first context line {first!r} was not found"
            )
        file_lines[at : at + len(before)] = after
        offset = at - (int(match.group(1)) - 1 if match else 0) + len(after) - len(before)
    if new is None:
        reader.write(name, None)
        return
    content = "\n".join(file_lines) + ("\n" if file_lines else "")
    if old is not None and new != old:
        reader.write(old, None)
    reader.write(new, content)


def _find(lines: list[str], needle: list[str], near: int) -> int | None:
    """Where `needle` sits in `lines`, nearest to `near` (fuzzy offsets), exact then by rstrip."""
    if not needle:
        return min(near, len(lines))
    for normalize in (lambda s: s, str.rstrip):
        want = [normalize(s) for s in needle]
        have = [normalize(s) for s in lines]
        starts = [i for i in range(len(have) - len(want) + 1) if have[i : i + len(want)] == want]
        if starts:
            return min(starts, key=lambda i: abs(i - near))
    return None


# --- search/replace blocks and file operations ----------------------------------------------


def _block_changes(text: str, reader: _FileReader) -> list[_Change]:
    lines = text.splitlines(keepends=True)
    i, block, last_path = 0, 0, None
    while i < len(lines):
        stripped = lines[i].strip()
        op = _OP.match(stripped)
        if op:
            _file_operation(op.group(1), op.group(2).strip(), op.group(3), reader)
        elif stripped == _SEARCH:
            block += 1
            if last_path is None:
                raise PatchDoesNotApply(f"edit block {block}: no file path on the line before it")
            search, replace, i = _read_block(lines, i + 1, block, last_path)
            _replace(last_path, search, replace, block, reader)
        elif stripped and not stripped.startswith("```"):
            last_path = stripped.strip("`*").strip()
        i += 1
    changes = reader.changes()
    if not changes:
        raise PatchDoesNotApply(
            "no edits found: expected a unified diff or blocks of "
            f"'PATH' / '{_SEARCH}' / '{_DIVIDER}' / '{_REPLACE}'"
        )
    return changes


def _read_block(lines: list[str], i: int, block: int, path: str) -> tuple[str, str, int]:
    parts: list[list[str]] = [[]]
    while i < len(lines):
        stripped = lines[i].rstrip("\r\n")
        if stripped.strip() == _DIVIDER and len(parts) == 1:
            parts.append([])
        elif stripped.strip() == _REPLACE and len(parts) == 2:
            return "".join(parts[0]), "".join(parts[1]), i
        else:
            parts[-1].append(lines[i])
        i += 1
    raise PatchDoesNotApply(f"{path}: edit block {block} is not closed with '{_REPLACE}'")


def _replace(path: str, search: str, replace: str, block: int, reader: _FileReader) -> None:
    current = reader.read(path)
    if not search.strip():
        if current:
            raise PatchDoesNotApply(
                f"{path}: edit block {block} has an empty SEARCH but the file exists; "
                "quote the text to replace"
            )
        reader.write(path, replace)
        return
    if current is None:
        raise PatchDoesNotApply(f"{path}: edit block {block} edits a file that does not exist")
    count = current.count(search)
    if count == 1:
        reader.write(path, current.replace(search, replace, 1))
        return
    if count > 1:
        raise PatchDoesNotApply(
            f"{path}: edit block {block}: SEARCH text occurs {count} times; add context lines"
        )
    # Tolerate trailing-whitespace drift, the most common difference in model output.
    file_lines = current.splitlines(keepends=True)
    at = _find([ln.rstrip("\r\n") for ln in file_lines], search.splitlines(), 0)
    if at is None:
        first = search.strip().splitlines()[0]
        raise PatchDoesNotApply(
            f"{path}: edit block {block}: SEARCH text not found (first line {first!r})"
        )
    n = len(search.splitlines())
    new = "".join(file_lines[:at]) + replace + "".join(file_lines[at + n :])
    reader.write(path, new)


def _file_operation(kind: str, path: str, dest: str | None, reader: _FileReader) -> None:
    if reader.read(path) is None:
        raise PatchDoesNotApply(f"{path}: cannot {kind.lower()} a file that does not exist")
    if kind == "RENAME":
        if not dest:
            raise PatchDoesNotApply(f"{path}: RENAME needs '-> NEW_PATH'")
        if reader.read(dest.strip()) is not None:
            raise PatchDoesNotApply(f"{dest.strip()}: RENAME target already exists")
        reader.write(dest.strip(), reader.read(path))
    reader.write(path, None)
