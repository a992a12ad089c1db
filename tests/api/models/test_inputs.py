"""Request bodies: what every one refuses (NUL, NaN, unknown fields) and the environment's paths."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api.models.inputs import (
    BudgetIn,
    EnvironmentIn,
    InvestigationCreate,
    RejectIn,
    ScheduleCreate,
    TaskCreate,
)
from contracts.runs import EnvironmentSpec

TASK = {"repo": "/srv/calc", "goal": "add mul"}


def refusal(model: type[Any], body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    return str(refused.value)


@pytest.mark.parametrize(
    "body",
    [
        TASK | {"goal": "add\x00mul"},
        TASK | {"lenses": ["security", "a\x00"]},
        TASK | {"environment": {"setup": ["pip install -e ."], "key_files": ["x\x00"]}},
        {"repo": "/srv/calc", "event": {"tags": {"k\x00": "v"}}},  # a key, deep in free data
    ],
)
def test_a_nul_anywhere_in_a_body_is_refused(body: dict[str, Any]) -> None:
    model = InvestigationCreate if "event" in body else TaskCreate
    assert "may not contain a NUL character" in refusal(model, body)


def test_a_body_without_nul_nested_deep_is_taken() -> None:
    deep: dict[str, Any] = {"v": "end"}
    for _ in range(200):
        deep = {"next": [deep]}
    body = InvestigationCreate.model_validate({"repo": "/srv/calc", "event": deep})
    assert body.event == deep


def test_unknown_fields_nan_and_out_of_range_limits_are_refused() -> None:
    assert "surprise" in refusal(TaskCreate, TASK | {"surprise": 1})
    assert "finite number" in refusal(BudgetIn, {"max_cost_usd": float("nan")})
    assert "greater than 0" in refusal(BudgetIn, {"max_turns": 0})
    assert "less than or equal to 2678400" in refusal(
        ScheduleCreate, {"repo": "/srv/calc", "every_s": 31 * 86400 + 1}
    )
    assert "reason" in refusal(RejectIn, {"reason": "   "})  # a reason needs a visible character


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside", "a/../../b"])
def test_environment_key_files_must_stay_inside_the_repository(path: str) -> None:
    detail = refusal(EnvironmentIn, {"setup": ["make"], "key_files": [path]})
    assert f"key_files must be paths inside the repository: {path!r}" in detail


def test_environment_spec_keeps_setup_and_key_files_in_order() -> None:
    body = EnvironmentIn.model_validate(
        {"setup": ["pip install -e .", "make deps"], "key_files": ["requirements*.txt", "a/..b"]}
    )
    assert EnvironmentIn.spec(body) == EnvironmentSpec(
        ["pip install -e .", "make deps"], ["requirements*.txt", "a/..b"]
    )
    assert EnvironmentIn.spec(None) is None
    assert "at least 1 item" in refusal(EnvironmentIn, {"setup": []})
