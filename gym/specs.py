"""A repository's specifications as text (specs/**/*.md, README, docstrings) and the mechanical
checks of the claims made about them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gym.errors import PatchRefused
from gym.paths import matches_any, safe_path

DEFAULT_SPECS = ("specs/**/*.md", "README.md")
MAX_SPEC_CHARS = 100_000


def spec_text(workspace: Path, tracked: list[str], globs: tuple[str, ...], docstrings: bool) -> str:
    """The specification, each part in a <spec source="..."> element, bounded."""
    parts, used = [], 0
    for rel in tracked:
        text = ""
        if matches_any(rel, globs):
            text = _read(workspace / rel)
        elif docstrings and rel.endswith(".py") and not re.search(r"(^|/)test", rel):
            text = _docstrings(_read(workspace / rel))
        if text and used + len(text) <= MAX_SPEC_CHARS:
            parts.append(f'<spec source="{rel}">\n{text}\n</spec>')
            used += len(text)
    return "\n".join(parts)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def _docstrings(source: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            doc = ast.get_docstring(node)
            if doc:
                name = getattr(node, "name", "module")
                found.append(f"{name}: {doc}")
    return "\n".join(found)


def inspect(workspace: Path, path: str, pattern: str, expect: str) -> tuple[bool, str]:
    """(claim holds, evidence) for an inspection: a pattern present in (or absent from) a file."""
    try:
        target = safe_path(workspace, path, ())
        text = target.read_text()
        regex = re.compile(pattern, re.M)
    except (PatchRefused, OSError, UnicodeDecodeError, re.error) as err:
        return False, f"could not inspect {path}: {err}"
    hits = [f"{path}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)[:120]}"
            for m in regex.finditer(text)][:5]  # fmt: skip
    present = bool(hits)
    holds = present if expect == "present" else not present
    evidence = "; ".join(hits) if hits else f"no match for /{pattern}/ in {path}"
    return holds, evidence
