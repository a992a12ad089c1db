from __future__ import annotations

import json

import pytest

from agents.model import ModelCall, PolicyError
from agents.scripted import TEST_DOUBLE_LABEL, ScriptedModel, parse_script
from ratchet.cli.demo import EXAMPLES


def turn_call(key: str, index: int) -> ModelCall:
    return ModelCall("code", "system", [], tools=True, script_key=key, index=index)


async def test_replays_tool_call_turns_by_round_and_says_it_is_a_test_double() -> None:
    model = ScriptedModel(parse_script((EXAMPLES / "median" / "script.toml").read_text()))
    assert "TEST DOUBLE" in model.label == TEST_DOUBLE_LABEL
    first = await model.turn(turn_call("patch.1", 0))
    assert first.text.startswith("Let me look") and first.stop_reason == "tool_use"
    ((use_id, name, args),) = first.tool_calls
    assert name == "str_replace_based_edit_tool" and json.loads(args)["command"] == "view"
    assert first.content[-1] == {"type": "tool_use", "id": use_id, "name": name,
                                 "input": json.loads(args)}  # fmt: skip
    assert not first.billed
    third = await model.turn(turn_call("patch.1", 2))
    assert third.tool_calls[0][1] == "apply_patch" and "--- a/statskit" in third.tool_calls[0][2]
    # Round 2's turns end without a submit: the model submits after its last one.
    after = await model.turn(turn_call("patch.2", 2))
    assert [c[1] for c in after.tool_calls] == ["submit"]
    refactor = await model.turn(turn_call("refactor.1", 0))
    assert "divmod" in refactor.tool_calls[0][2]
    with pytest.raises(PolicyError, match="round 3"):
        await model.turn(turn_call("patch.3", 0))


async def test_plans_and_role_answers_come_from_the_script() -> None:
    script = parse_script(
        "plan = 'the plan'\n[[patch]]\npatch = ''\n[roles.judge]\nanswers = ['{\"a\": 1}']\n"
    )
    model = ScriptedModel(script)
    assert (await model.turn(ModelCall("plan", "s", [], script_key="plan"))).text == "the plan"
    judge = ModelCall("judge", "s", [], script_key="judge", index=0)
    assert (await model.turn(judge)).text == '{"a": 1}'
    with pytest.raises(PolicyError, match="1 answers for role 'judge'; answer 2"):
        await model.turn(ModelCall("judge", "s", [], script_key="judge", index=1))
    # An empty patch proposes nothing: the round submits at once.
    assert [c[1] for c in (await model.turn(turn_call("patch.1", 0))).tool_calls] == ["submit"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("plan = ", "not valid TOML"),
        ("plan = 'x'", "at least one [[patch]]"),
        ("[[patch]]\nfoo = 1", "entry 1 needs patch"),
        ("plan = 3\n[[patch]]\npatch = 'x'", "plan must be a string"),
        ("refactor = 1\n[[patch]]\npatch = 'x'", "[refactor]"),
        ("[[patch]]\n[[patch.turn]]\ncall = [{ input = {} }]", "each call needs tool"),
        ("[[patch]]\n[[patch.turn]]\ntext = ''", "neither text nor calls"),
    ],
)
def test_bad_scripts_are_explained(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_script(text)
