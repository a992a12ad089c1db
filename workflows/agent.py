"""AgentLoopWorkflow: a model acting through tools, one activity per model turn and one per tool
call, so a crash resumes at the last completed turn without paying for earlier ones again.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

import workflows.sandboxed  # noqa: F401 - the contracts' types decode in the sandbox

with workflow.unsafe.imports_passed_through():
    from contracts.activities import queue_for, spec
    from contracts.agent import (
        AGENT_WORKFLOW,
        MODEL_TURN,
        RUN_TOOL,
        AgentInput,
        AgentOutput,
        ToolCall,
        ToolInput,
        ToolOutput,
        ToolResult,
        TurnInput,
        TurnOutput,
    )
    from contracts.budget import Usage
    from contracts.runs import NON_RETRYABLE_TYPES
    from workflows.retries import model_retry_policy
    from workflows.steps import MODEL_STEP_LIMIT, usage_in

LOOP_LIMIT = 3
"""The same failing tool call this many times stops the loop."""
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)


class _Stop(Exception):
    """Ends the loop with `stop` (see AgentOutput.stop) and what it says about it."""

    def __init__(self, stop: str, **more: str) -> None:
        super().__init__(stop)
        self.stop, self.more = stop, more


@workflow.defn(name=AGENT_WORKFLOW)
class AgentLoopWorkflow:
    def __init__(self) -> None:
        self._stop = False
        self._observed_step: tuple[str, int | None] | None = None
        """The step this loop serves ("patch", "refactor", "reproduce") and its round, named on
        every activity's span (activities/observe.py)."""

    @workflow.signal(name="stop")
    def stop(self) -> None:
        """Stop before the next turn (the run was cancelled)."""
        self._stop = True

    @workflow.run
    async def run(self, arg: AgentInput) -> AgentOutput:
        self._arg, self._usage, self._snapshot = arg, arg.usage, arg.snapshot
        self._transcript_ref, self._pending = arg.transcript_ref, list(arg.pending_results)
        self._failures = dict(arg.failures)
        started = datetime.fromisoformat(arg.started_at)
        step, _, number = arg.script_key.partition(".")
        self._observed_step = (step or arg.role, int(number) if number.isdigit() else None)
        try:
            for _ in range(arg.max_turns_per_execution):
                if self._stop:
                    return self._out("cancelled", reason="the run was cancelled")
                spent = arg.budget.exhausted(
                    self._usage, (workflow.now() - started).total_seconds()
                )
                if spent:
                    return self._out("budget", reason=spent)
                turn = await self._turn()
                if not turn.tool_calls:
                    return self._out("ended", summary=turn.text)
                submitted = await self._tools(turn)
                if submitted is not None:
                    return self._out("submitted", summary=submitted)
        except _Stop as stopped:
            return self._out(stopped.stop, **stopped.more)
        # Keep the history short: carry the conversation's state into a fresh execution.
        workflow.continue_as_new(
            replace(arg, usage=self._usage, snapshot=self._snapshot,
                    transcript_ref=self._transcript_ref, pending_results=self._pending,
                    failures=self._failures)
        )  # fmt: skip

    def _out(self, stop: str, **more: str) -> AgentOutput:
        return AgentOutput(stop, self._snapshot, self._usage, self._transcript_ref,
                           self._pending, **more)  # fmt: skip

    async def _turn(self) -> TurnOutput:
        """One model turn. A model API storm (429, 529, 5xx) delays the run but never fails
        it: retries do not stop, they back off up to two minutes and honour retry-after."""
        arg = self._arg
        ask = TurnInput(arg.run, arg.role, arg.provider, self._transcript_ref, self._pending,
                        arg.goal, arg.plan_ref, arg.feedback_ref, self._snapshot, arg.policy,
                        arg.script_key)  # fmt: skip
        try:
            turn: TurnOutput = await workflow.execute_activity(
                MODEL_TURN, ask, result_type=TurnOutput,
                start_to_close_timeout=timedelta(seconds=spec(MODEL_TURN).limit_s),
                schedule_to_close_timeout=MODEL_STEP_LIMIT,
                heartbeat_timeout=timedelta(seconds=arg.heartbeat_timeout_s),
                retry_policy=model_retry_policy(arg.retry_initial_s, arg.retry_max_s),
                summary=f"model turn {self._usage.turns + 1} ({arg.role})",
                task_queue=queue_for(MODEL_TURN, arg.queues),
            )  # fmt: skip
        except ActivityError as err:
            # A turn that failed for good still paid for its calls: the parent counts them.
            self._usage = self._usage + _paid_for(err)
            if (stop := _failed(err)) is None:
                raise
            raise stop from err
        self._usage, self._transcript_ref = self._usage + turn.usage, turn.transcript_ref
        self._pending = []
        return turn

    async def _tools(self, turn: TurnOutput) -> str | None:
        """Run the turn's tool calls in order; the summary when one of them submits."""
        submitted: str | None = None
        for call in turn.tool_calls:
            if call.name == "submit":
                submitted = str(call.arguments().get("summary") or turn.text)
                self._pending.append(ToolResult(call.id, "submitted"))
                continue
            result = await self._tool(call)
            self._snapshot = result.snapshot
            self._pending.append(result.result)
            if result.result.is_error:
                key = call.key()
                self._failures[key] = self._failures.get(key, 0) + 1
                if self._failures[key] >= LOOP_LIMIT:
                    said = result.result.content[:200]
                    raise _Stop("loop", reason=f"the model repeated the same failing {call.name} "
                                f"call {self._failures[key]} times: {said}")  # fmt: skip
        return submitted

    async def _tool(self, call: ToolCall) -> ToolOutput:
        arg = self._arg
        limit = spec(RUN_TOOL).limit(arg.test_timeout_s)
        try:
            done: ToolOutput = await workflow.execute_activity(
                RUN_TOOL, ToolInput(arg.run, self._snapshot, call, arg.test_command,
                                    arg.test_timeout_s),
                result_type=ToolOutput, start_to_close_timeout=timedelta(seconds=limit),
                heartbeat_timeout=timedelta(seconds=60), retry_policy=TOOL_RETRY,
                summary=call.brief(), task_queue=queue_for(RUN_TOOL, arg.queues),
            )  # fmt: skip
        except ActivityError as err:
            if (stop := _failed(err)) is None:
                raise
            raise stop from err
        return done


def _paid_for(err: ActivityError) -> Usage:
    """What a failed turn paid for (runs recorded before this was counted: nothing)."""
    if is_cancelled_exception(err) or not workflow.patched("agent-failure-usage"):
        return Usage()
    return usage_in(err)


def _failed(err: ActivityError) -> _Stop | None:
    """A step that failed for good ends the loop as "failed"; None lets the failure through
    (a cancel, or a run recorded before this was so)."""
    if is_cancelled_exception(err) or not workflow.patched("agent-failure-usage"):
        return None
    kind, message = _failure(err)
    return _Stop("failed", reason=message, error_type=kind)


def _failure(err: ActivityError) -> tuple[str, str]:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.type or "StepFailed", cause.message
    return "StepFailed", str(cause or err)
