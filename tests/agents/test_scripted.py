from __future__ import annotations

from pathlib import Path

import pytest

from agents.policy import PatchRequest, PolicyError
from agents.scripted import TEST_DOUBLE_LABEL, ScriptedPolicy, parse_script
from ratchet.demo import EXAMPLES


def req(step: str, round_: int) -> PatchRequest:
    return PatchRequest(goal="g", plan="p", step=step, round=round_, feedback="", workspace=Path())  # type: ignore[arg-type]


async def test_replays_patches_by_round_and_says_it_is_a_test_double() -> None:
    policy = ScriptedPolicy(parse_script((EXAMPLES / "median" / "script.toml").read_text()))
    assert "TEST DOUBLE" in policy.label == TEST_DOUBLE_LABEL
    assert "--- a/statskit/stats.py" in await policy.propose(req("patch", 1))
    assert "<<<<<<< SEARCH" in await policy.propose(req("patch", 2))
    assert "divmod" in await policy.propose(req("refactor", 1))
    with pytest.raises(PolicyError, match="round 3"):
        await policy.propose(req("patch", 3))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("plan = ", "not valid TOML"),
        ("plan = 'x'", "at least one [[patch]]"),
        ("[[patch]]\nfoo = 1", "entry 1 needs patch"),
        ("plan = 3\n[[patch]]\npatch = 'x'", "plan must be a string"),
        ("refactor = 1\n[[patch]]\npatch = 'x'", "[refactor]"),
    ],
)
def test_bad_scripts_are_explained(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_script(text)
