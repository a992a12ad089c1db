"""Which model serves a run: the provider its policy names, or the script it replays."""

from __future__ import annotations

from agents.model import Model, PolicyError
from agents.scripted import ScriptedModel, parse_script
from contracts.runs import PolicyChoice
from ratchet.artifacts import ArtifactStore

MISSING = {
    "anthropic": "the worker has no ANTHROPIC_API_KEY, so it cannot run the anthropic policy",
    "openai-compatible": "the worker has no RATCHET_OPENAI_BASE_URL, so it cannot run the "
    "openai-compatible policy",
}


class Models:
    def __init__(self, store: ArtifactStore, served: dict[str, Model]) -> None:
        """`served`: the providers this worker can reach, by policy name."""
        self.store = store
        self.served = served

    def choose(self, choice: PolicyChoice) -> Model:
        if choice.name == "scripted":
            if not choice.script_ref:
                raise PolicyError("the scripted policy needs a policy script")
            return ScriptedModel(parse_script(self.store.get_text(choice.script_ref)))
        model = self.served.get(choice.name)
        if model is None:
            raise PolicyError(MISSING.get(choice.name, f"unknown policy {choice.name!r}"))
        return model
