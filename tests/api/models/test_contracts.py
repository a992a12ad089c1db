"""The API models that repeat a contract's fields stay in step with it: a field added to the
contract (or renamed there) fails here until the API model declares it too, alike.

Why repeated, not derived: BudgetIn bounds each limit (an API fact the contract does not hold),
and a model built at run time from dataclasses.fields could not be used as a type under mypy.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

import pytest
from pydantic import BaseModel

from api.models.inputs import BudgetIn
from api.models.public import UsagePublic
from contracts.budget import Budget, Usage
from contracts.control import BudgetUpdate

PAIRS = [(BudgetIn, Budget), (BudgetIn, BudgetUpdate), (UsagePublic, Usage)]
ONLY_IN_THE_API = {
    UsagePublic: {"cache_read_share", "price_unknown", "children"},  # derived for callers
    BudgetIn: set(),  # converted to the contract with Budget(**body.model_dump())
}


@pytest.mark.parametrize(
    ("model", "contract"), PAIRS, ids=[f"{m.__name__}-{c.__name__}" for m, c in PAIRS]
)
def test_the_api_model_declares_every_field_of_its_contract_alike(
    model: type[BaseModel], contract: type[Any]
) -> None:
    hints = get_type_hints(contract)
    declared = model.model_fields
    for field in dataclasses.fields(contract):
        assert field.name in declared, f"{model.__name__} lacks {contract.__name__}.{field.name}"
        assert declared[field.name].annotation == hints[field.name], field.name
        assert declared[field.name].default == field.default, field.name
    extra = set(declared) - {f.name for f in dataclasses.fields(contract)}
    assert extra == ONLY_IN_THE_API[model]


def test_budget_in_and_the_contract_convert_both_ways() -> None:
    limits = {"max_cost_usd": 2.5, "max_tokens": 10_000, "max_turns": 30, "max_wall_s": 600.0}
    assert dataclasses.asdict(Budget(**BudgetIn(**limits).model_dump())) == limits
    assert BudgetIn(**dataclasses.asdict(Budget(**limits))).model_dump() == limits
