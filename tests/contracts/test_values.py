"""What the contracts compute themselves: budget maths, a tool call's key and brief, a run's
details line, a Sentry signal's event id."""

from __future__ import annotations

from contracts.agent import AgentOutput, ToolCall
from contracts.budget import Budget, Usage
from contracts.control import BudgetUpdate
from contracts.runs import RunState, StepRecord
from contracts.sentry import EventSignal, SentryEvent


def test_a_budget_update_changes_only_the_limits_it_names() -> None:
    budget = Budget(max_cost_usd=1.0, max_turns=10)
    assert budget.updated(BudgetUpdate(max_turns=30)) == Budget(max_cost_usd=1.0, max_turns=30)
    assert budget.updated(BudgetUpdate()) == budget


def test_a_pattern_s_share_is_a_fraction_of_each_limit_and_at_least_one() -> None:
    share = Budget(max_cost_usd=2.0, max_tokens=1000, max_turns=3, max_wall_s=60).share(0.25)
    assert share == Budget(max_cost_usd=0.5, max_tokens=250, max_turns=1)  # no time share
    assert Budget().share(0.5) == Budget()


def test_the_same_call_has_the_same_key_and_says_what_it_acts_on() -> None:
    call = ToolCall("t1", "bash", '{"command": "pytest -q tests/test_calc.py"}')
    again = ToolCall("t2", "bash", '{"command": "pytest -q tests/test_calc.py"}')
    other = ToolCall("t3", "bash", '{"command": "pytest -q"}')
    assert call.key() == again.key() != other.key()
    assert call.brief() == "bash pytest -q tests/test_calc.py"
    assert ToolCall("t4", "submit", "not json").brief() == "submit"
    assert ToolCall("t5", "read_file", "[1, 2]").arguments() == {}


def test_a_run_s_details_say_where_it_is_and_what_it_spent() -> None:
    state = RunState("task-1", "task", "", "scripted", phase="paused", pause_reason="turns",
                     steps=[StepRecord("patch", "running", 2, "t0", round=3)],
                     usage=Usage(turns=4, input_tokens=10, cost_usd=0.5),
                     budget=Budget(max_turns=4))  # fmt: skip
    assert state.details().split("\n\n") == [
        "**paused**: turns", "step: patch (round 3), running, attempt 2",
        "used: 4 turns, 10 tokens, $0.5000 (budget: turns ≤ 4)",
    ]  # fmt: skip


def test_an_agent_loop_s_step_line_names_how_it_stopped() -> None:
    out = AgentOutput("failed", "sha", Usage(), None, reason="the model API refused: " + "x" * 300)
    assert (
        out.step_detail.startswith("failed: the model API refused") and len(out.step_detail) < 220
    )


def test_a_join_signal_names_its_event_by_id_old_or_new() -> None:
    assert EventSignal(event_id="e1").id() == "e1"
    old = EventSignal(SentryEvent("issue-9", event_id="e2"))  # recorded before ids alone
    assert old.id() == "e2"
