"""Decisions the workflows leave to the contract types (pure data, tested without Temporal):
why an update is refused, how a run's state moves, what a gate and a failure say."""

from __future__ import annotations

from dataclasses import replace

from contracts.activities import spec
from contracts.agent import MODEL_TURN, RUN_TOOL, AgentInput, AgentOutput
from contracts.budget import Budget, Usage, usage_among, usage_detail
from contracts.control import ApprovalDecision, BudgetUpdate, CancelRequest
from contracts.investigation import ProbeResult
from contracts.roles import AdversarialOutput, RedTeam
from contracts.runs import SUITE_HOW_TO_FIX, Gate, RunRef, RunState
from contracts.steps import RUN_TESTS, VERIFY, VerifyOutput


def test_an_update_says_why_the_run_refuses_it() -> None:
    assert BudgetUpdate(max_turns=5).problem("paused") is None
    assert BudgetUpdate(max_turns=5).problem("completed") == (
        "the run is completed: its budget cannot change"
    )
    assert BudgetUpdate(max_cost_usd=0.0).problem("running") == "max_cost_usd must be positive"
    assert CancelRequest().problem("awaiting_approval") is None
    assert CancelRequest().problem("failed") == "the run is already failed"


def test_a_decision_is_refused_unless_the_run_waits_and_it_is_well_formed() -> None:
    waiting = "awaiting_approval"
    assert ApprovalDecision(by="ana").problem(waiting, "approved") is None
    assert "not waiting" in str(ApprovalDecision().problem("running", "approved"))
    assert ApprovalDecision().problem(waiting, "rejected") == "a rejection needs a reason"
    long = ApprovalDecision(comment="x" * 2001)
    assert long.problem(waiting, "approved") == "comment is over 2000 characters"


def test_a_run_s_steps_move_by_transitions() -> None:
    state = RunState("r", "task", "", "").begun("patch", 2, "t0").begun("lint", None, "t1")
    state = state.ended(0, "completed", 3, "t2", "applied")
    first, second = state.steps
    assert (first.status, first.attempts, first.ended_at, first.detail) == (
        "completed", 3, "t2", "applied",
    )  # fmt: skip
    assert (second.name, second.status, second.ended_at) == ("lint", "running", None)
    assert state.step_lines(1000) == "patch (round 2): completed applied\nlint: running "
    assert state.step_lines(8) == "running "


def test_charges_add_up_and_a_child_run_s_is_kept_apart() -> None:
    paid = Usage(turns=1, cost_usd=0.5)
    state = RunState("r", "investigation", "", "").charged(paid).charged(paid, "r-fix")
    assert state.usage == paid + paid
    assert state.child_usage == {"r-fix": paid}


def test_an_event_joins_once_and_only_the_newest_are_kept() -> None:
    state = RunState("r", "investigation", "", "")
    for event_id in ("a", "b", "a", "", "c"):
        state = state.with_event(event_id, keep=2)
    assert state.events == ["b", "c"]


def test_a_verdict_passes_only_while_every_gate_does() -> None:
    verdict = VerifyOutput(True, [Gate("tests", True, "")])
    failed = verdict.with_gate(Gate("invariants", False, "1 broken"))
    assert not failed.passed and [g.name for g in failed.gates] == ["tests", "invariants"]
    assert not failed.with_gate(Gate("adversarial", True, "")).passed


def test_the_red_team_s_gate_counts_its_round() -> None:
    team = RedTeam(tried=4, broke=2, invalid=1)
    assert team.gate(1) == Gate(
        "adversarial", False, "tried 4, broke the patch 2, judged invalid 1; 1 valid tests fail"
    )
    assert team.gate(0).passed
    at_base = AdversarialOutput(results_ref="r", tried=3, failing=1)
    assert at_base.guard_note() == (
        "2 of 3 proposed invariants hold at base and guard the change; "
        "1 fail at base (reported, not used)"
    )


def test_an_agent_loop_says_what_it_serves_and_how_it_failed() -> None:
    run = RunRef("r", "repo", "/m", "sha", "2026-12-02T00:00:00+00:00")
    loop = AgentInput(run, "code", "scripted", "", "", None, "s", "", 1.0, Budget(), Usage(), "",
                      script_key="patch.2")  # fmt: skip
    assert loop.serves() == ("patch", 2)
    assert replace(loop, script_key="", role="reproduce").serves() == ("reproduce", None)
    stopped = AgentOutput("failed", "s", Usage(), None, reason="boom", error_type="PolicyError")
    assert stopped.failure("patch") == ("PolicyError", "step patch failed: boom")
    assert AgentOutput("loop", "s", Usage(), None, reason="again").failure("patch") == (
        "LoopDetected", "again",
    )  # fmt: skip
    assert AgentOutput("submitted", "s", Usage(), None).failure("patch") is None


def test_a_probe_that_did_not_show_the_problem_says_what_would_help() -> None:
    skipped = ProbeResult("f43288c3ab0c48d0", "skip", "no tests ran", 1.0)
    why = skipped.not_reproduced(policy_could_write=True)
    assert why.startswith("the problem does not reproduce at f43288c3ab0c (skip: no tests ran)")
    assert SUITE_HOW_TO_FIX in why and "a policy (or reproduce.test_command)" in why
    assert "policy" not in ProbeResult("ab", "good", "passed", 1.0).not_reproduced(False)


def test_a_failure_s_usage_is_found_among_its_details() -> None:
    paid = Usage(turns=2, cost_usd=0.1)
    assert usage_among(["text", usage_detail(paid)]) == paid
    assert usage_among(["text", {"other": 1}]) is None


def test_the_registry_gives_each_step_its_heartbeat_and_summary() -> None:
    assert spec(RUN_TESTS).heartbeat_timeout(30.0) == 30.0
    assert spec(RUN_TOOL).heartbeat_timeout(30.0) == 60.0  # a timeout of its own
    assert spec(VERIFY).heartbeat_timeout(30.0) is None
    assert spec(MODEL_TURN).summary("patch", 2) == "patch (round 2): one model turn of the agent"
