"""Applying a unified diff: its files' hunks found in the current text, with fuzzy offsets.

A hunk is placed where its context and removed lines sit nearest to the line its header names
(exactly, else ignoring trailing whitespace), so a diff made against a slightly different file
still applies; one that matches nowhere fails with the hunk and its first line named. The
changes go to gym/patching.py's reader, which writes nothing until the whole patch is known.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from gym.errors import PatchDoesNotApply

if TYPE_CHECKING:  # only for annotations: gym.patching imports this module
    from gym.patching import Change, FileReader

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def is_unified_diff(text: str) -> bool:
    return bool(re.search(r"^(diff --git |--- \S)", text, re.M)) and "\n+++ " in text


def _strip_prefix(raw: str) -> str | None:
    path = raw.split("\t")[0].strip()
    if path == "/dev/null":
        return None
    if path.startswith(("a/", "b/")):
        path = path[2:]
    return path


def unified_changes(text: str, reader: FileReader) -> list[Change]:
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
    old: str | None, new: str | None, hunks: list[tuple[str, list[str]]], reader: FileReader
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
        at = find_lines(file_lines, before, max(expected, 0))
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


def find_lines(lines: list[str], needle: list[str], near: int) -> int | None:
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
