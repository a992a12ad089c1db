"""The root-cause report, as markdown. Everything that came from outside (the event, commit
messages, test output) is quoted in fenced blocks: shown as data, never as instructions.
"""

from __future__ import annotations

from collections.abc import Iterable


def quote(text: str, limit: int = 4000) -> str:
    body = text[:limit].replace("~~~", "~ ~ ~")
    return f"~~~text\n{body}\n~~~"


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    def clean(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")[:200]

    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
