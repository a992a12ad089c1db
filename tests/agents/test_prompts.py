"""The goals and blocks the prompts are made of."""

from __future__ import annotations

from agents.prompts import fix_goal
from contracts.investigation import ReproductionCheck


def test_a_fix_s_goal_names_the_culprit_or_the_latent_bug_and_the_new_test() -> None:
    written = ReproductionCheck(True, "ZeroDivisionError in mean", files={"tests/t.py": ""})
    goal = fix_goal("9f3c2ab1d2e3f4", ["calc.py"], "pytest -q", written)
    assert goal.startswith("Fix the regression introduced by commit 9f3c2ab1d2e3 in calc.py.")
    assert "The new test tests/t.py reproduces the production error (ZeroDivisionError" in goal
    latent = fix_goal(None, [], "pytest -q", None)
    assert "no commit introduced it" in latent and "new test tests" not in latent
