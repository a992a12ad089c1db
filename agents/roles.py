"""Structured roles (planners, synthesizer, red team, judge): a versioned prompt with the JSON
schema its answer must match, and one retry with the parse error before the step fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema

from agents.model import PolicyError
from agents.prompts import PROMPTS

_SCHEMA = re.compile(r"## Output schema\s*```json\s*(\{.*?\})\s*```", re.S)
_JSON_BLOCK = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.S)


class AnswerInvalid(ValueError):
    """The answer is not JSON or does not match the role's schema."""


@dataclass(frozen=True)
class RolePrompt:
    name: str
    version: int
    text: str
    schema: dict[str, Any]


_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


# The roles whose prompt is past its first version (the test-writing roles write tests in the
# repository's own language since version 2).
CURRENT = {"adversary": 2, "invariants": 2, "claims": 2}


@cache
def load_role(name: str, version: int | None = None) -> RolePrompt:
    """The role's prompt (its current version unless one is named); a PolicyError (no retry
    helps) for a role that has none."""
    version = version if version is not None else CURRENT.get(name, 1)
    path = PROMPTS / f"{name}.v{version}.md"
    # The name comes from the workflow: it never becomes a path outside the prompts.
    if not _NAME.fullmatch(name) or not path.is_file():
        raise PolicyError(f"unknown role {name[:80]!r} (no prompt for version {version})")
    raw = path.read_text()
    match = _SCHEMA.search(raw)
    if match is None:
        raise RuntimeError(f"prompt {name}.v{version} has no '## Output schema' json block")
    text = raw.split("\n", 1)[1] if raw.startswith("<!--") else raw
    return RolePrompt(name, version, text, json.loads(match.group(1)))


def parse_answer(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    body = text.strip()
    fenced = _JSON_BLOCK.search(body)
    if fenced:
        body = fenced.group(1)
    elif "{" in body:
        start, end = body.index("{"), body.rfind("}")
        if end < start:  # an answer cut off at max_tokens ends inside its object
            raise AnswerInvalid("the answer ends before its JSON object does (cut off?)")
        body = body[start : end + 1]
    try:
        answer = json.loads(body)
    except ValueError as err:
        raise AnswerInvalid(f"not JSON: {err}") from None
    try:
        jsonschema.validate(answer, schema)
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "the answer"
        raise AnswerInvalid(f"{where}: {err.message}") from None
    if not isinstance(answer, dict):
        raise AnswerInvalid("the answer is not a JSON object")
    return answer


Blocks = list[dict[str, Any]]


async def ask(
    role: RolePrompt, content: Blocks, call: Callable[[str, Blocks], Awaitable[str]]
) -> tuple[dict[str, Any], int]:
    """(answer, calls made): a malformed answer is retried once with the parse error. `content`
    is the user message's blocks (shared repository content first, marked for the cache)."""
    text = await call(role.text, content)
    try:
        return parse_answer(text, role.schema), 1
    except AnswerInvalid as first:
        retry = (
            f"Your previous answer could not be used: {first}. Answer again with one JSON "
            "object that matches the output schema, and nothing else."
        )
        text = await call(role.text, [*content, {"type": "text", "text": retry}])
        try:
            return parse_answer(text, role.schema), 2
        except AnswerInvalid as second:
            raise PolicyError(
                f"the {role.name} answer did not match its schema, twice: {second}"
            ) from None
