"""A role's answer is parsed against its schema; a bad answer gets one retry, then a permanent
error: never an exception that a step would retry without bound."""

from __future__ import annotations

from typing import Any

import pytest

from agents.model import PolicyError
from agents.roles import AnswerInvalid, ask, load_role, parse_answer

CLAIMS = '{"claims": [{"id": "a", "text": "t", "source": "README.md", "check": {"kind": "inspe'


def test_an_answer_cut_off_inside_its_object_is_invalid_not_a_crash() -> None:
    role = load_role("claims")
    with pytest.raises(AnswerInvalid, match="cut off"):
        parse_answer(CLAIMS, role.schema)
    with pytest.raises(AnswerInvalid, match="not JSON"):
        parse_answer('{"claims": [} nonsense }', role.schema)


async def test_a_truncating_model_gets_one_retry_then_a_permanent_error() -> None:
    calls: list[list[dict[str, Any]]] = []

    async def call(system: str, blocks: list[dict[str, Any]]) -> str:
        calls.append(blocks)
        return CLAIMS  # cut off inside its JSON, every time

    with pytest.raises(PolicyError, match="twice"):
        await ask(load_role("claims"), [{"type": "text", "text": "the specs"}], call)
    assert len(calls) == 2 and calls[1][0] == {"type": "text", "text": "the specs"}
    assert "could not be used: the answer ends before" in calls[1][-1]["text"]


@pytest.mark.parametrize("name", ["nope", "../prompts/claims", ""])
def test_a_role_without_a_prompt_is_unknown_for_good(name: str) -> None:
    with pytest.raises(PolicyError) as caught:  # permanent: a retry finds no prompt either
        load_role(name)
    assert str(caught.value) == f"unknown role {name!r} (no prompt for version 1)"
    assert load_role("claims").name == "claims"
