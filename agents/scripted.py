"""The scripted model: a TEST DOUBLE that replays a script instead of asking a model.

It exists for deterministic tests and for the demo, and it goes through the same agent loop,
activities, tools and transcript as a real model: each scripted turn is a model turn whose tool
calls the gym runs. Every run that uses it says so. The format is documented in the README
("Scripted runs").

    label = "what this script demonstrates"   # optional
    pause_s = 0                                # optional: wait before each turn (a slow model)
    plan = '''the plan text'''

    [[patch]]                                  # round 1 of the patch step: its turns, in order
    [[patch.turn]]
    text = "Reproduce it first."               # optional text of the turn
    call = [{ tool = "bash", input = { command = "python repro.py" } }]
    [[patch.turn]]
    call = [{ tool = "run_tests", input = { select = ["tests/test_x.py"] } }]

    [[patch]]                                  # round 2: a plain patch is a convenience, an
    patch = '''unified diff or search/replace'''  # apply_patch call (then submit)

    [refactor]                                 # optional: turns or a patch, as a round
    patch = '''...'''

    [[reproduce]]                              # an investigation's reproducer, per attempt:
    [[reproduce.turn]]                         # turns (or a patch) that write the new test
    call = [{ tool = "create_file", input = { path = "tests/test_x.py", content = "..." } }]

    [roles.perspective.security]               # answers of the roles that answer JSON
    answers = ['{"lens": ...}']

A round whose turns end without a submit call submits after its last turn.
"""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from agents.model import ModelCall, PolicyError, TurnResult
from agents.tools import APPLY_PATCH

TEST_DOUBLE_LABEL = "scripted policy (TEST DOUBLE: replays a script, no model involved)"


@dataclass(frozen=True)
class ScriptedCall:
    tool: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ScriptedTurn:
    text: str = ""
    calls: tuple[ScriptedCall, ...] = ()


@dataclass(frozen=True)
class Script:
    plan: str
    rounds: tuple[tuple[ScriptedTurn, ...], ...]
    """The patch step's rounds, each a conversation of turns."""
    refactor: tuple[ScriptedTurn, ...]
    description: str
    pause_s: float = 0.0
    """Seconds to wait before each turn, as a slow model would (fault-injection tests)."""
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Answers of the structured roles, in call order, by key ("perspective.security",
    "synthesis", "adversary", "judge")."""
    reproduce: tuple[tuple[ScriptedTurn, ...], ...] = ()
    """An investigation's reproducer: one conversation per attempt."""


def _turns(entry: object, where: str) -> tuple[ScriptedTurn, ...]:
    if not isinstance(entry, dict):
        raise PolicyError(f"policy script: {where} must be a table")
    if "patch" in entry:
        if not isinstance(entry["patch"], str):
            raise PolicyError(f"policy script: {where} needs patch = '...'")
        if not entry["patch"].strip():
            return ()
        return (ScriptedTurn(calls=(ScriptedCall(APPLY_PATCH, {"patch": entry["patch"]}),)),)
    turns = entry.get("turn")
    if not isinstance(turns, list) or not turns:
        raise PolicyError(f"policy script: {where} needs patch = '...' or [[...turn]] entries")
    out = []
    for number, turn in enumerate(turns, 1):
        here = f"{where} turn {number}"
        calls = turn.get("call", []) if isinstance(turn, dict) else None
        text = turn.get("text", "") if isinstance(turn, dict) else None
        if not isinstance(calls, list) or not isinstance(text, str):
            raise PolicyError(f"policy script: {here} needs call = [...] and text = '...'")
        parsed = []
        for call in calls:
            tool = call.get("tool") if isinstance(call, dict) else None
            args = call.get("input", {}) if isinstance(call, dict) else None
            if not isinstance(tool, str) or not tool or not isinstance(args, dict):
                raise PolicyError(
                    f"policy script: {here}: each call needs tool = '...' and input = {{...}}"
                )
            parsed.append(ScriptedCall(tool, args))
        if not parsed and not text:
            raise PolicyError(f"policy script: {here} has neither text nor calls")
        out.append(ScriptedTurn(text, tuple(parsed)))
    return tuple(out)


def parse_script(text: str) -> Script:
    """Parse and check a script; PolicyError says what is wrong with it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"policy script is not valid TOML: {err}") from None
    rounds = data.get("patch", [])
    reproduce = data.get("reproduce", [])
    if not isinstance(reproduce, list):
        raise PolicyError("policy script: reproduce must be [[reproduce]] entries")
    if not isinstance(rounds, list) or not (rounds or reproduce):
        raise PolicyError("policy script needs at least one [[patch]] entry (a patch or turns)")
    parsed = tuple(_turns(entry, f"[[patch]] entry {n}") for n, entry in enumerate(rounds, 1))
    attempts = tuple(
        _turns(entry, f"[[reproduce]] entry {n}") for n, entry in enumerate(reproduce, 1)
    )
    refactor = data.get("refactor", {})
    refactor_turns = _turns(refactor, "[refactor]") if refactor else ()
    plan = data.get("plan", "")
    if not isinstance(plan, str):
        raise PolicyError("policy script: plan must be a string")
    roles: dict[str, tuple[str, ...]] = {}
    for key, entry in _flatten(data.get("roles", {})):
        answers = entry.get("answers")
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise PolicyError(f"policy script: [roles.{key}] needs answers = ['...', ...]")
        roles[key] = tuple(answers)
    pause_s = data.get("pause_s", 0)
    if not isinstance(pause_s, int | float) or not 0 <= pause_s <= 600:
        raise PolicyError("policy script: pause_s must be a number of seconds from 0 to 600")
    return Script(
        plan=plan,
        pause_s=float(pause_s),
        rounds=parsed,
        reproduce=attempts,
        refactor=refactor_turns,
        description=str(data.get("label", "")),
        roles=roles,
    )


def _flatten(tables: object, prefix: str = "") -> list[tuple[str, dict[str, object]]]:
    """[roles.perspective.security] → ("perspective.security", {...})."""
    if not isinstance(tables, dict):
        raise PolicyError("policy script: [roles] must be a table")
    out: list[tuple[str, dict[str, object]]] = []
    for name, value in tables.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and "answers" in value:
            out.append((key, value))
        elif isinstance(value, dict):
            out += _flatten(value, f"{key}.")
        else:
            raise PolicyError(f"policy script: roles.{key} must be a table with answers")
    return out


def _text_turn(text: str) -> TurnResult:
    return TurnResult([{"type": "text", "text": text}], [], "end_turn", text, "scripted",
                      billed=False)  # fmt: skip


class ScriptedModel:
    provider = "scripted"
    label = TEST_DOUBLE_LABEL

    def __init__(self, script: Script) -> None:
        self.script = script

    def model_for(self, purpose: str) -> str:
        return "scripted"

    def limit_for(self, purpose: str) -> tuple[int, int]:
        return 0, 0

    def _conversation(self, key: str) -> tuple[ScriptedTurn, ...]:
        """The turns of "patch.<round>" or "refactor.<round>"."""
        step, _, number = key.partition(".")
        round_ = int(number) if number.isdigit() else 1
        if step == "refactor":
            return self.script.refactor
        rounds = self.script.reproduce if step == "reproduce" else self.script.rounds
        if round_ > len(rounds):
            raise PolicyError(
                f"the script has {len(rounds)} {step} rounds; round {round_} was asked for"
            )
        return rounds[round_ - 1]

    async def turn(self, call: ModelCall) -> TurnResult:
        if call.purpose == "plan":
            return _text_turn(self.script.plan or "(scripted plan)")
        if not call.tools:  # a structured role
            answers = self.script.roles.get(call.script_key, ())
            if call.index >= len(answers):
                raise PolicyError(
                    f"the script has {len(answers)} answers for role {call.script_key!r}; "
                    f"answer {call.index + 1} was asked for"
                )
            return _text_turn(answers[call.index])
        if self.script.pause_s:
            await asyncio.sleep(self.script.pause_s)
        turns = self._conversation(call.script_key)
        if call.index >= len(turns):  # the script's turns are done: submit
            turn = ScriptedTurn(calls=(ScriptedCall("submit", {"summary": "scripted change"}),))
            if call.index > len(turns):  # it submitted already and was asked again
                return _text_turn("(the script has no more turns)")
        else:
            turn = turns[call.index]
        prefix = re.sub(r"[^a-zA-Z0-9_-]", "_", call.script_key)
        blocks: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
        calls = []
        for position, scripted in enumerate(turn.calls):
            use_id = f"toolu_{prefix}_{call.index}_{position}"
            blocks.append(
                {"type": "tool_use", "id": use_id, "name": scripted.tool, "input": scripted.input}
            )
            calls.append((use_id, scripted.tool, json.dumps(scripted.input)))
        stop = "tool_use" if calls else "end_turn"
        return TurnResult(blocks, calls, stop, turn.text, "scripted", billed=False)
