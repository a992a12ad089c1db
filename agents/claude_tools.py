"""Claude's own client tools, the ones its models are trained on: the text editor
(`str_replace_based_edit_tool`) and `bash`, offered by their Anthropic type names (no schema),
and mapped onto the gym's tools. Other providers get the JSON-schema tools of agents.tools."""

from __future__ import annotations

from typing import Any

from agents.tools import BASH, RUN_TESTS, SUBMIT, TOOL_SPECS
from gym.sandbox import WORKSPACE_INSIDE

TEXT_EDITOR = "str_replace_based_edit_tool"
# The current versions in Anthropic's tool-use docs (Claude 4 models).
CLAUDE_TOOL_TYPES = {TEXT_EDITOR: "text_editor_20250728", BASH: "bash_20250124"}

CLAUDE_TOOLS: list[dict[str, Any]] = [
    {"type": CLAUDE_TOOL_TYPES[TEXT_EDITOR], "name": TEXT_EDITOR},
    {"type": CLAUDE_TOOL_TYPES[BASH], "name": BASH},
    *(spec for spec in TOOL_SPECS if spec["name"] in (RUN_TESTS, SUBMIT)),
]


def editor_call(args: dict[str, Any]) -> tuple[str, dict[str, Any]] | str:
    """A text editor command as one of the gym's tool calls (name, input), or why it is not one."""
    command, path = args.get("command"), args.get("path")
    if not isinstance(path, str):
        return "the text editor needs a 'path'"
    # Claude names paths as it saw them (the shell's working directory is the workspace).
    path = "" if path == WORKSPACE_INSIDE else path.removeprefix(WORKSPACE_INSIDE + "/").lstrip("/")
    if command == "view":
        span = args.get("view_range")
        if isinstance(span, list) and len(span) == 2 and all(isinstance(n, int) for n in span):
            start, end = span
            return "read_file", {"path": path, "start_line": start,
                                 **({"end_line": end} if end != -1 else {})}  # fmt: skip
        return "view", {"path": path}
    if command == "str_replace":
        return "edit_file", {"path": path, "search": args.get("old_str"),
                             "replace": args.get("new_str", "")}  # fmt: skip
    if command == "create":
        return "write_file", {"path": path, "content": args.get("file_text")}
    if command == "insert":
        text = args.get("insert_text", args.get("new_str"))
        return "insert", {"path": path, "line": args.get("insert_line"), "text": text}
    return f"the text editor has no command {command!r} here (view, str_replace, create, insert)"
