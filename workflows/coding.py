"""The coder of a forward run: each proposal is an agent loop (a child workflow), for a model and
for the scripted test double alike. A loop that spends the budget pauses the run with its work
kept as a partial patch; a raised budget resumes it where it stopped.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts import runs
    from contracts import steps as io
    from contracts.agent import AgentOutput, ToolResult
    from contracts.budget import Budget
    from contracts.results import TaskResult
    from workflows.steps import Cancelled, Steps
    from workflows.verify import Verifier

MAX_RESUMES = 1000


class Coder:
    def __init__(self, steps: Steps, task: runs.TaskInput, prepared: io.Prepared,
                 plan: io.PlanOutput, verifier: Verifier) -> None:  # fmt: skip
        self._steps, self.task, self.plan, self.verifier = steps, task, plan, verifier
        self.run, self._test_command = prepared.run, prepared.test_command
        self.latest: str | None = None
        """The newest snapshot: a cancelled run delivers it as a draft."""
        self._child_id: str | None = None
        self._resume = False

    async def stop(self) -> None:
        """Tell the running agent loop to stop before its next turn (the run was cancelled)."""
        if self._child_id:
            await workflow.get_external_workflow_handle(self._child_id).signal("stop")

    def budget_raised(self, budget: Budget) -> str:
        """A paused run's budget was raised: resume unless it is still spent."""
        elapsed = (workflow.now() - workflow.info().start_time).total_seconds()
        still = budget.exhausted(self._steps.state.usage, elapsed)
        self._resume = still is None
        return f"still paused: {still}" if still else "resuming"

    async def propose(self, step: str, round_: int, snapshot: str,
                      feedback_ref: str | None) -> io.PatchOutput:  # fmt: skip
        """The policy's next change: an agent loop, resumed after each pause."""
        task = self.task
        # Runs recorded before scripted runs went through the agent loop replay their patch
        # activity (no worker runs it any more).
        if task.policy.name == "scripted" and not workflow.patched("scripted-agent-loop"):
            old = io.PatchInput(self.run, snapshot, step, round_, task.goal, self.plan.plan_ref,
                                  feedback_ref, task.policy)  # fmt: skip
            return await self._steps.step(step, io.PATCH, old, io.PatchOutput, round_=round_)
        transcript_ref: str | None = None
        pending: list[ToolResult] = []
        for resumed in range(MAX_RESUMES):
            out = await self._loop(step, round_, snapshot, feedback_ref, transcript_ref, pending,
                                   f"{task.run_id}-{step}-{round_}-{resumed}")  # fmt: skip
            changed, snapshot = out.snapshot != snapshot, out.snapshot
            self.latest = snapshot
            if out.stop == "cancelled":
                raise Cancelled
            if failed := out.failure(step):
                raise self._steps.fail(*failed)
            if out.stop != "budget":
                return io.PatchOutput(out.snapshot, True, changed, out.summary[:300] or out.stop)
            await self._pause(out.reason, out.snapshot)
            transcript_ref, pending = out.transcript_ref, out.pending_results
        raise self._steps.fail("BudgetLoop", "the run was paused and resumed too many times")

    async def _loop(
        self, step: str, round_: int, snapshot: str, feedback_ref: str | None,
        transcript_ref: str | None, pending: list[ToolResult], child_id: str,
    ) -> AgentOutput:  # fmt: skip
        """One execution of the agent loop (a pause ends it; a raised budget starts the next)."""
        task, self._child_id = self.task, child_id
        try:
            out = await self._steps.agent(
                step, child_id, round_, run=self.run,
                role="refactor" if step == "refactor" else "code", provider=task.policy.name,
                goal=task.goal, plan_ref=self.plan.plan_ref, feedback_ref=feedback_ref,
                snapshot=snapshot, test_command=self._test_command,
                budget=self._steps.state.budget, transcript_ref=transcript_ref,
                pending_results=pending, max_turns_per_execution=task.turns_per_execution,
                policy=task.policy, script_key=f"{step}.{round_}",
            )  # fmt: skip
        finally:
            self._child_id = None
        if out.transcript_ref:
            transcripts = {**self._steps.state.transcripts, f"{step}-{round_}": out.transcript_ref}
            self._steps.update(transcripts=transcripts)
        return out

    async def _pause(self, reason: str, snapshot: str) -> None:
        """Keep the work (a partial patch) and wait for a raised budget or a cancel."""
        partial = await self.keep_patch("partial patch", snapshot)
        self._resume = False
        self._steps.set_phase("paused", pause_reason=reason, result=TaskResult(
            gates=self.verifier.gates(), patch_ref=partial, branch=None, draft=True))  # fmt: skip
        await workflow.wait_condition(lambda: self._resume or self._steps.cancel_requested)
        self._steps.set_phase("running", pause_reason="")
        if self._steps.cancel_requested:
            raise Cancelled

    async def keep_patch(self, label: str, snapshot: str) -> str:
        """A step keeping `snapshot`'s change from the base as a patch artifact (its ref)."""
        arg = io.DiffInput(self.run, snapshot)
        kept = await self._steps.step(label, io.SNAPSHOT_DIFF, arg, io.DiffOutput)
        return kept.patch_ref
