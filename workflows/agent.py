"""AgentLoopWorkflow: a model acting through tools, one activity per model turn and one per tool
call, so a crash resumes at the last completed turn without paying for earlier ones again. Each
turn and call is a step of the loop's own (its `state` query lists them), run the way every
step of a run is (workflows/steps.py).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

import workflows.sandboxed  # noqa: F401 - the contracts' types decode in the sandbox

with workflow.unsafe.imports_passed_through():
    from contracts import agent as ag
    from contracts.runs import RunState
    from workflows.failures import root_cause
    from workflows.steps import Steps

T = TypeVar("T")
LOOP_LIMIT = 3
"""The same failing tool call this many times stops the loop."""


class _Stop(Exception):
    """Ends the loop with `stop` (see ag.AgentOutput.stop) and what it says about it."""

    def __init__(self, stop: str, **more: str) -> None:
        super().__init__(stop)
        self.stop, self.more = stop, more


@workflow.defn(name=ag.AGENT_WORKFLOW)
class AgentLoopWorkflow:
    def __init__(self) -> None:
        self._stop = False
        # Not `steps`: the loop is a part of a run, not a run (activities/observe.py counts runs).
        self._steps = Steps("agent")
        self._observed_step: tuple[str, int | None] | None = None
        """The step this loop serves ("patch", "refactor", "reproduce") and its round, named on
        every activity's span (activities/observe.py)."""

    @workflow.query(name="state")
    def state(self) -> RunState:
        return self._steps.state

    @workflow.signal(name="stop")
    def stop(self) -> None:
        """Stop before the next turn (the run was cancelled)."""
        self._stop = True

    @workflow.run
    async def run(self, arg: ag.AgentInput) -> ag.AgentOutput:
        self._arg, self._snapshot = arg, arg.snapshot
        self._transcript_ref, self._pending = arg.transcript_ref, list(arg.pending_results)
        self._failures = dict(arg.failures)
        self._steps.start(arg.queues, arg.test_timeout_s, arg.heartbeat_timeout_s,
                          run_id=workflow.info().workflow_id, usage=arg.usage,
                          policy_label=arg.provider, budget=arg.budget)  # fmt: skip
        # A model API storm (429, 529, 5xx) delays the run but never fails it: retries do not
        # stop, they back off up to two minutes and honour retry-after.
        self._steps.model_backoff = (arg.retry_initial_s, arg.retry_max_s)
        self._observed_step = arg.serves()
        started = datetime.fromisoformat(arg.started_at)
        try:
            for _ in range(arg.max_turns_per_execution):
                if self._stop:
                    return self._out("cancelled", reason="the run was cancelled")
                elapsed = (workflow.now() - started).total_seconds()
                if spent := arg.budget.exhausted(self._steps.state.usage, elapsed):
                    return self._out("budget", reason=spent)
                turn = await self._turn()
                if not turn.tool_calls:
                    return self._out("ended", summary=turn.text)
                if (submitted := await self._tools(turn)) is not None:
                    return self._out("submitted", summary=submitted)
        except _Stop as stopped:
            return self._out(stopped.stop, **stopped.more)
        # Keep the history short: carry the conversation's state into a fresh execution.
        workflow.continue_as_new(
            replace(arg, usage=self._steps.state.usage, snapshot=self._snapshot,
                    transcript_ref=self._transcript_ref, pending_results=self._pending,
                    failures=self._failures)
        )  # fmt: skip

    def _out(self, stop: str, **more: str) -> ag.AgentOutput:
        return ag.AgentOutput(stop, self._snapshot, self._steps.state.usage, self._transcript_ref,
                           self._pending, **more)  # fmt: skip

    async def _turn(self) -> ag.TurnOutput:
        """One model turn; what a turn that failed for good paid for counts all the same."""
        arg = self._arg
        ask = ag.TurnInput(arg.run, arg.role, arg.provider, self._transcript_ref, self._pending,
                        arg.goal, arg.plan_ref, arg.feedback_ref, self._snapshot, arg.policy,
                        arg.script_key)  # fmt: skip
        name = f"model turn {self._steps.state.usage.turns + 1} ({arg.role})"
        turn = await self._call(self._steps.step(name, ag.MODEL_TURN, ask, ag.TurnOutput))
        self._steps.charge(turn.usage)
        self._transcript_ref, self._pending = turn.transcript_ref, []
        return turn

    async def _tools(self, turn: ag.TurnOutput) -> str | None:
        """Run the turn's tool calls in order; the summary when one of them submits."""
        arg, submitted = self._arg, None
        for call in turn.tool_calls:
            if call.name == "submit":
                submitted = str(call.arguments().get("summary") or turn.text)
                self._pending.append(ag.ToolResult(call.id, "submitted"))
                continue
            use = ag.ToolInput(arg.run, self._snapshot, call, arg.test_command, arg.test_timeout_s)
            result = await self._call(
                self._steps.step(call.brief(), ag.RUN_TOOL, use, ag.ToolOutput)
            )
            self._snapshot = result.snapshot
            self._pending.append(result.result)
            if result.result.is_error:
                self._count_failure(call, result.result.content)
        return submitted

    async def _call(self, step: Awaitable[T]) -> T:
        """A step of the loop: one that failed for good ends the loop as "failed"."""
        try:
            return await step
        except ApplicationError as err:
            workflow.deprecate_patch("agent-failure-usage")
            kind, message = root_cause(err.__cause__ or err)
            raise _Stop("failed", reason=message, error_type=kind) from err

    def _count_failure(self, call: ag.ToolCall, said: str) -> None:
        key = call.key()
        self._failures[key] = self._failures.get(key, 0) + 1
        if self._failures[key] >= LOOP_LIMIT:
            raise _Stop("loop", reason=f"the model repeated the same failing {call.name} call "
                        f"{self._failures[key]} times: {said[:200]}")  # fmt: skip
