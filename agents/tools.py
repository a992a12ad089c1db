"""The tools a model may call: read, list, search, edit, create, apply a patch, a shell, run the
tests, submit.

Every path of the file tools goes through the gym's patch rules, so they can never write outside
the workspace, into .git or onto a protected path; the shell runs in the sealed sandbox, and what
it changes on a protected path is put back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.context import tracked_files
from gym.errors import GymError
from gym.patching import PatchRules
from gym.paths import safe_path

MAX_RESULT_CHARS = 20_000
MAX_MATCHES = 100

EDITING = {"edit_file", "create_file", "write_file", "insert"}
"""Tools that write (the last two are what Claude's text editor's create and insert become)."""
SUBMIT = "submit"
RUN_TESTS = "run_tests"
BASH = "bash"
APPLY_PATCH = "apply_patch"

TOOL_SPECS: list[dict[str, Any]] = [
    {
        "name": "read_file",
        "description": "Read a text file of the repository, with line numbers.",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "path relative to the repository root"},
                "start_line": {"type": "integer", "minimum": 1},
                "end_line": {"type": "integer", "minimum": 1},
            },
            "required": ["path"],
        },
    },
    {
        "name": "list_files",
        "description": "List the repository's tracked files under a directory.",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string", "description": "directory; '' for all"}},
        },
    },
    {
        "name": "search",
        "description": "Search the repository's files for a regular expression.",
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "path_glob": {"type": "string", "description": "e.g. '*.py' (optional)"},
            },
            "required": ["pattern"],
        },
    },
    {
        "name": "edit_file",
        "description": "Replace an exact, unique piece of text in a file with new text.",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "search": {"type": "string", "description": "existing text, exactly once"},
                "replace": {"type": "string"},
            },
            "required": ["path", "search", "replace"],
        },
    },
    {
        "name": "create_file",
        "description": "Create a new file with the given content.",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
    {
        "name": APPLY_PATCH,
        "description": (
            "Apply a patch to the repository: a unified diff (git diff format) or search/replace "
            "blocks. Nothing is written unless all of it applies."
        ),
        "input_schema": {
            "type": "object",
            "properties": {"patch": {"type": "string"}},
            "required": ["patch"],
        },
    },
    {
        "name": BASH,
        "description": (
            "Run a shell command (/bin/sh) in the repository's workspace, in its environment "
            "(python, pip and the test tools are the environment's), in a sandbox with no "
            "network. Use it to reproduce a problem, run one test or a script, read git log, "
            "run a linter. Changes it makes to files are part of your change. Returns the exit "
            "code and the head and tail of the output."
        ),
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "the command line"}},
            "required": ["command"],
        },
    },
    {
        "name": RUN_TESTS,
        "description": (
            "Run the repository's tests in the sandbox and get per-test results: all of them, "
            "or only `select` (test ids such as tests/test_x.py::test_y, or files/directories)."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "select": {"type": "array", "items": {"type": "string"}, "maxItems": 200},
            },
        },
    },
    {
        "name": SUBMIT,
        "description": "Submit the change when the goal is met and the tests pass.",
        "input_schema": {
            "type": "object",
            "properties": {"summary": {"type": "string", "description": "what changed and why"}},
            "required": ["summary"],
        },
    },
]
TOOL_NAMES = {spec["name"] for spec in TOOL_SPECS}


@dataclass(frozen=True)
class ToolAnswer:
    content: str
    is_error: bool = False


def parse_input(input_json: str) -> dict[str, Any]:
    try:
        data = json.loads(input_json or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _text(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a string")
    return value


def _cap(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[:MAX_RESULT_CHARS] + f"\n[... {len(text) - MAX_RESULT_CHARS} more characters]"


def read_tool(workspace: Path, name: str, args: dict[str, Any], rules: PatchRules) -> ToolAnswer:
    """The tools that only read: read_file, list_files, search."""
    try:
        if name == "read_file":
            path = safe_path(workspace, _text(args, "path"), ())
            lines = path.read_text().splitlines()
            start = int(args.get("start_line") or 1)
            end = int(args.get("end_line") or len(lines))
            numbered = [
                f"{i:>5}  {lines[i - 1]}" for i in range(max(start, 1), min(end, len(lines)) + 1)
            ]
            return ToolAnswer(_cap("\n".join(numbered) or "(empty file)"))
        if name == "view":  # Claude's text editor: a file with line numbers, or a directory
            target = safe_path(workspace, _text(args, "path"), ()) if args.get("path") else None
            if target is not None and target.is_file():
                return read_tool(workspace, "read_file", args, rules)
            return read_tool(workspace, "list_files", args, rules)
        if name == "list_files":
            prefix = str(args.get("path") or "").strip("/")
            files = [f for f in tracked_files(workspace) if f.startswith(prefix)]
            return ToolAnswer(_cap("\n".join(files) or "(no files)"))
        if name == "search":
            return ToolAnswer(_search(workspace, _text(args, "pattern"), args.get("path_glob")))
    except (OSError, UnicodeDecodeError, ValueError, re.error, GymError) as err:
        return ToolAnswer(f"{name} failed: {err}", is_error=True)
    return ToolAnswer(f"unknown tool {name!r}", is_error=True)


def _search(workspace: Path, pattern: str, path_glob: object) -> str:
    regex = re.compile(pattern)
    matches = []
    for rel in tracked_files(workspace):
        if isinstance(path_glob, str) and path_glob and not Path(rel).match(path_glob):
            continue
        try:
            text = (workspace / rel).read_text()
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if regex.search(line):
                matches.append(f"{rel}:{number}: {line.strip()[:200]}")
                if len(matches) >= MAX_MATCHES:
                    return "\n".join(matches) + f"\n[stopped at {MAX_MATCHES} matches]"
    return "\n".join(matches) or "(no matches)"


def edit_tool(workspace: Path, name: str, args: dict[str, Any], rules: PatchRules) -> ToolAnswer:
    """edit_file and create_file, under the gym's path rules; nothing is written on failure."""
    try:
        path = _text(args, "path")
        target = safe_path(workspace, path, rules.protected)
        if name == "create_file":
            content = _text(args, "content")
            if target.exists():
                raise ValueError(f"{path} already exists: use edit_file")
        elif name == "write_file":  # the text editor's create: a new file or all of one
            content = _text(args, "content")
        elif name == "insert":
            current = target.read_text() if target.is_file() else None
            if current is None:
                raise ValueError(f"{path} does not exist")
            lines, at = current.splitlines(keepends=True), args.get("line")
            if not isinstance(at, int) or not 0 <= at <= len(lines):
                raise ValueError(f"insert_line must be a line number from 0 to {len(lines)}")
            text = _text(args, "text")
            content = "".join([*lines[:at], text if text.endswith("\n") else text + "\n",
                               *lines[at:]])  # fmt: skip
        else:
            search, replace = _text(args, "search"), _text(args, "replace")
            current = target.read_text() if target.is_file() else None
            if current is None:
                raise ValueError(f"{path} does not exist: use create_file")
            count = current.count(search) if search else 0
            if count != 1:
                where = "not found" if count == 0 else f"found {count} times; quote more context"
                raise ValueError(f"the search text was {where} in {path}")
            content = current.replace(search, replace, 1)
        if len(content.encode()) > rules.max_file_bytes:
            raise ValueError(f"{path} would be over the {rules.max_file_bytes}-byte limit")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    except (ValueError, OSError, UnicodeDecodeError, GymError) as err:
        return ToolAnswer(f"{name} failed, nothing was written: {err}", is_error=True)
    return ToolAnswer(f"{name}: {path} written")
