"""The scripted policy: a TEST DOUBLE that replays a script file instead of asking a model.

It exists for deterministic tests and for the demo; every run that uses it says so.

Script format (TOML):

    label = "what this script demonstrates"   # optional
    pause_s = 0                                # optional: wait before each patch (a slow model)
    plan = '''the plan text'''
    [[patch]]                                  # one entry per round, in order
    patch = '''unified diff or search/replace blocks'''
    [refactor]                                 # optional
    patch = '''...'''
"""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import dataclass, field

from agents.policy import PatchRequest, PlanAnswer, PlanRequest, PolicyError

TEST_DOUBLE_LABEL = "scripted policy (TEST DOUBLE: replays a script, no model involved)"


@dataclass(frozen=True)
class Script:
    plan: str
    patches: tuple[str, ...]
    refactor: str
    description: str
    pause_s: float = 0.0
    """Seconds to wait before each patch, as a slow model would (fault-injection tests)."""
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Answers of the structured roles, in call order, by key ("perspective.security",
    "synthesis", "adversary", "judge")."""


def parse_script(text: str) -> Script:
    """Parse and check a script; PolicyError says what is wrong with it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"policy script is not valid TOML: {err}") from None
    patches = data.get("patch", [])
    if not isinstance(patches, list) or not patches:
        raise PolicyError("policy script needs at least one [[patch]] entry with patch = '...'")
    texts = []
    for number, entry in enumerate(patches, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("patch"), str):
            raise PolicyError(f"policy script: [[patch]] entry {number} needs patch = '...'")
        texts.append(entry["patch"])
    refactor = data.get("refactor", {})
    if not isinstance(refactor, dict) or not isinstance(refactor.get("patch", ""), str):
        raise PolicyError("policy script: [refactor] needs patch = '...'")
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
        patches=tuple(texts),
        refactor=refactor.get("patch", ""),
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


class ScriptedPolicy:
    name = "scripted"
    label = TEST_DOUBLE_LABEL

    def __init__(self, script: Script) -> None:
        self.script = script

    async def plan(self, request: PlanRequest) -> PlanAnswer:
        return PlanAnswer(self.script.plan or f"(scripted plan) {request.goal}")

    def answer(self, key: str, index: int) -> str:
        """The scripted answer number `index` (0-based) of a structured role."""
        answers = self.script.roles.get(key, ())
        if index >= len(answers):
            raise PolicyError(
                f"the script has {len(answers)} answers for role {key!r}; answer {index + 1} "
                "was asked for"
            )
        return answers[index]

    async def propose(self, request: PatchRequest) -> str:
        if self.script.pause_s:
            await asyncio.sleep(self.script.pause_s)
        if request.step == "refactor":
            return self.script.refactor
        if request.round > len(self.script.patches):
            raise PolicyError(
                f"the script has {len(self.script.patches)} patch rounds; round {request.round} "
                "was asked for"
            )
        return self.script.patches[request.round - 1]
