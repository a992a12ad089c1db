"""AgentLoopWorkflow: a model acting through tools, one activity per model turn and one per tool
call, so a crash resumes at the last completed turn without paying for earlier ones again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from contracts.activities import queue_for
    from contracts.agent import (
        AGENT_WORKFLOW,
        MODEL_TURN,
        RUN_TOOL,
        AgentInput,
        AgentOutput,
        ToolInput,
        ToolOutput,
        ToolResult,
        TurnInput,
        TurnOutput,
    )
    from contracts.runs import NON_RETRYABLE_TYPES
    from workflows.retries import model_retry_policy
    from workflows.steps import usage_in

LOOP_LIMIT = 3
"""The same failing tool call this many times stops the loop."""
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)


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
        usage, snapshot = arg.usage, arg.snapshot
        transcript_ref, pending = arg.transcript_ref, list(arg.pending_results)
        failures = dict(arg.failures)
        started = datetime.fromisoformat(arg.started_at)
        # A model API storm (429, 529, 5xx) delays the run but never fails it: retries do not
        # stop, they back off up to two minutes and honour retry-after.
        model_retry = model_retry_policy(arg.retry_initial_s, arg.retry_max_s)

        step, _, number = arg.script_key.partition(".")
        self._observed_step = (step or arg.role, int(number) if number.isdigit() else None)

        def out(stop: str, **more: object) -> AgentOutput:
            return AgentOutput(stop, snapshot, usage, transcript_ref, pending, **more)  # type: ignore[arg-type]

        for _ in range(arg.max_turns_per_execution):
            if self._stop:
                return out("cancelled", reason="the run was cancelled")
            spent = arg.budget.exhausted(usage, (workflow.now() - started).total_seconds())
            if spent:
                return out("budget", reason=spent)
            try:
                turn: TurnOutput = await workflow.execute_activity(
                    MODEL_TURN,
                    TurnInput(arg.run, arg.role, arg.provider, transcript_ref, pending, arg.goal,
                              arg.plan_ref, arg.feedback_ref, snapshot, arg.policy,
                              arg.script_key),
                    result_type=TurnOutput,
                    start_to_close_timeout=timedelta(minutes=10),
                    schedule_to_close_timeout=timedelta(hours=6),
                    heartbeat_timeout=timedelta(seconds=arg.heartbeat_timeout_s),
                    retry_policy=model_retry,
                    summary=f"model turn {usage.turns + 1} ({arg.role})",
                    task_queue=queue_for(MODEL_TURN, arg.queues),
                )  # fmt: skip
            except ActivityError as err:
                # A turn that failed for good still paid for its calls: the parent counts them
                # (runs recorded before this was so let the failure through).
                if is_cancelled_exception(err) or not workflow.patched("agent-failure-usage"):
                    raise
                kind, message = _failure(err)
                usage = usage + usage_in(err)
                return out("failed", reason=message, error_type=kind)
            usage, transcript_ref, pending = usage + turn.usage, turn.transcript_ref, []
            if not turn.tool_calls:
                return out("ended", summary=turn.text)
            submitted: str | None = None
            for call in turn.tool_calls:
                if call.name == "submit":
                    submitted = str(_args(call.input_json).get("summary") or turn.text)
                    pending.append(ToolResult(call.id, "submitted"))
                    continue
                try:
                    result: ToolOutput = await workflow.execute_activity(
                        RUN_TOOL,
                        ToolInput(arg.run, snapshot, call, arg.test_command, arg.test_timeout_s),
                        result_type=ToolOutput,
                        start_to_close_timeout=timedelta(seconds=arg.test_timeout_s + 300),
                        heartbeat_timeout=timedelta(seconds=60),
                        retry_policy=TOOL_RETRY,
                        summary=f"{call.name} {_brief(call.input_json)}",
                        task_queue=queue_for(RUN_TOOL, arg.queues),
                    )  # fmt: skip
                except ActivityError as err:
                    if is_cancelled_exception(err) or not workflow.patched("agent-failure-usage"):
                        raise
                    kind, message = _failure(err)
                    return out("failed", reason=message, error_type=kind)
                snapshot = result.snapshot
                pending.append(result.result)
                if result.result.is_error:
                    key = hashlib.sha256(f"{call.name}\0{call.input_json}".encode()).hexdigest()[
                        :16
                    ]
                    failures[key] = failures.get(key, 0) + 1
                    if failures[key] >= LOOP_LIMIT:
                        return out(
                            "loop",
                            reason=f"the model repeated the same failing {call.name} call "
                            f"{failures[key]} times: {result.result.content[:200]}",
                        )
            if submitted is not None:
                return out("submitted", summary=submitted)
        # Keep the history short: carry the conversation's state into a fresh execution.
        workflow.continue_as_new(
            replace(arg, usage=usage, snapshot=snapshot, transcript_ref=transcript_ref,
                    pending_results=pending, failures=failures)
        )  # fmt: skip


def _args(input_json: str) -> dict[str, object]:
    try:
        value = json.loads(input_json)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _failure(err: ActivityError) -> tuple[str, str]:
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.type or "StepFailed", cause.message
    return "StepFailed", str(cause or err)


def _brief(input_json: str) -> str:
    args = _args(input_json)
    for key in ("path", "pattern", "command"):
        if isinstance(args.get(key), str):
            return str(args[key])[:80]
    return ""
