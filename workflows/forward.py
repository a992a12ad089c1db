"""ForwardPlanningWorkflow: plan → patch → test → verify (→ repair) → refactor → test → verify
→ deliver. Each step is an activity (or, for a model, an agent-loop child workflow) with an
explicit name, a timeout and a retry policy. A spent budget pauses the run with its work kept.
"""

from __future__ import annotations

from dataclasses import replace

from temporalio import workflow
from temporalio.exceptions import ApplicationError

import workflows.sandboxed  # noqa: F401 - the contracts' types decode in the sandbox

with workflow.unsafe.imports_passed_through():
    from contracts import runs
    from contracts import steps as io
    from contracts.control import ApprovalDecision, BudgetUpdate, CancelRequest, ControlAnswer
    from contracts.results import TaskResult, TaskState
    from contracts.runs import RunState, TaskInput
    from workflows.approvals import ApprovalEnded, Approvals
    from workflows.coding import Coder
    from workflows.patterns import Patterns
    from workflows.rounds import Rounds
    from workflows.steps import Cancelled, Steps
    from workflows.verify import Verifier


@workflow.defn(name="ForwardPlanningWorkflow")
class ForwardPlanningWorkflow:
    def __init__(self) -> None:
        self.steps = Steps("task", TaskState)
        self._approvals = Approvals(self.steps)
        self._coder: Coder | None = None
        self._run: runs.RunRef | None = None
        """The prepared run: what it learned is recorded against it, however it ended."""

    @workflow.query(name="state")
    def state(self) -> RunState:
        return self.steps.state

    @workflow.update(name="budget")
    async def raise_budget(self, update: BudgetUpdate) -> ControlAnswer:
        state = self.steps.state
        budget = state.budget.updated(update)
        self.steps.update(budget=budget)
        message = "budget updated"
        if state.phase == "paused" and self._coder is not None:
            message = self._coder.budget_raised(budget)
        return ControlAnswer(state.phase, budget, state.usage, message)

    @raise_budget.validator
    def _check_budget(self, update: BudgetUpdate) -> None:
        _refuse(update.problem(self.steps.state.phase))

    @workflow.update(name="cancel")
    async def cancel(self, request: CancelRequest) -> ControlAnswer:
        self.steps.cancel_requested = True
        if self._coder is not None:
            await self._coder.stop()
        state = self.steps.state
        return ControlAnswer("cancelling", state.budget, state.usage, request.reason)

    @cancel.validator
    def _check_cancel(self, request: CancelRequest) -> None:
        _refuse(request.problem(self.steps.state.phase))

    @workflow.update(name="approve")
    async def approve(self, decision: ApprovalDecision) -> ControlAnswer:
        return self._approvals.decide(decision, "approved")

    @approve.validator
    def _check_approve(self, decision: ApprovalDecision) -> None:
        _refuse(decision.problem(self.steps.state.phase, "approved"))

    @workflow.update(name="reject")
    async def reject(self, decision: ApprovalDecision) -> ControlAnswer:
        return self._approvals.decide(decision, "rejected")

    @reject.validator
    def _check_reject(self, decision: ApprovalDecision) -> None:
        _refuse(decision.problem(self.steps.state.phase, "rejected"))

    @workflow.run
    async def run(self, task: TaskInput) -> TaskResult:
        self.steps.start(task.queues, task.test_timeout_s, task.heartbeat_timeout_s,
                         run_id=task.run_id, trace_id=task.trace_id, policy_label=task.policy.name,
                         task=task, budget=task.budget)  # fmt: skip
        self.steps.model_backoff = (task.model_retry_initial_s, task.model_retry_max_s)
        patterns = Patterns(self.steps, task)
        try:
            result = await self._pipeline(task, patterns)
        except Cancelled:
            return self.steps.finish(await self._deliver_draft(task), "cancelled")
        except ApprovalEnded as ended:
            # Nothing is delivered without approval; the patch and snapshots stay readable.
            kept = self.steps.state.result
            kept = kept if isinstance(kept, TaskResult) else TaskResult([], None, None)
            error = {"type": ended.phase.title(), "message": ended.message}
            return self.steps.finish(kept, ended.phase, error=error)
        except ApplicationError as failure:
            await patterns.learn(self._run, f"failed: {failure.message}")
            # Raised again with the usage as it ends (learning paid for calls too).
            again = self.steps.fail(failure.type or "StepFailed", failure.message)
            self.steps.set_phase("failed")
            raise again from failure
        await patterns.learn(self._run, "completed: verified and delivered")
        return self.steps.finish(result)

    async def _pipeline(self, task: TaskInput, patterns: Patterns) -> TaskResult:
        prepared = await self._prepare(task)
        run = prepared.run
        if run.goal_ref:  # the goal travels by reference from here on (RunRef.goal_ref)
            task = patterns.task = replace(task, goal="")
        verifier = Verifier(self.steps, run, prepared.test_command, benchmark=prepared.benchmark)
        baseline = await verifier.measure_base()
        if baseline.cannot_run_fatal:
            # Nothing a patch does can make this suite run: say so before any model is paid.
            raise self.steps.fail(
                "SuiteDoesNotRun",
                f"the suite cannot run at the base commit ({baseline.cannot_run}), so no change "
                f"can be verified: {runs.SUITE_HOW_TO_FIX}",
            )
        await verifier.lint_base()
        memory = await patterns.read_memory(run)
        plan = await self._plan(task, run, patterns)
        coder = self._coder = Coder(self.steps, task, prepared, plan, verifier)
        rounds = Rounds(self.steps, coder, patterns)
        verified = await rounds.refactor(await rounds.repair())
        snapshot = verified.snapshot
        if task.adversarial:
            snapshot = await patterns.with_red_tests(run, snapshot)
        coder.latest = snapshot
        if task.require_approval:
            review = await coder.keep_patch("patch for review", snapshot)
            self.steps.keep_result(TaskResult(
                gates=verified.verdict.gates, patch_ref=review, branch=None, plan_ref=plan.plan_ref,
                refactor_kept=verified.refactor_kept, isolation=verified.isolation,
            ))  # fmt: skip
            await self._approvals.wait("delivery", task.approval_timeout_s)
        handover = io.DeliverInput(
            run, snapshot, task.goal, gates=verified.verdict.gates, plan_ref=plan.plan_ref,
            usage=self.steps.state.usage, trace_id=task.trace_id, policy_label=plan.policy_label,
        )  # fmt: skip
        delivery = await self.steps.step("deliver", io.DELIVER, handover, io.Delivery)
        return TaskResult(
            gates=verified.verdict.gates, patch_ref=delivery.patch_ref, branch=delivery.branch,
            commit=delivery.commit, plan_ref=plan.plan_ref, refactor_kept=verified.refactor_kept,
            isolation=verified.isolation, memory_used=memory.ids,
            pull_request_url=delivery.pull_request_url,
        )  # fmt: skip

    async def _prepare(self, task: TaskInput) -> io.Prepared:
        when = workflow.now().replace(microsecond=0).isoformat()
        arg = io.PrepareInput(task.run_id, task.repo, task.base_ref, task.test_command, when,
                              task.start_snapshot, task.environment, goal=task.goal)  # fmt: skip
        prepared = await self.steps.step("prepare", io.PREPARE, arg, io.Prepared)
        run = await self.steps.prepare_environment(prepared.run)
        self.steps.record_snapshot("base", run.base_sha)
        self._run = run
        return replace(prepared, run=run)

    async def _plan(self, task: TaskInput, run: runs.RunRef, patterns: Patterns) -> io.PlanOutput:
        """The plan (merged from perspectives when asked), approved when the task says so."""
        plan = await patterns.plan_with_perspectives(run) if task.perspectives > 0 else None
        if plan is None:
            arg = io.PlanInput(run, task.goal, task.policy, patterns.memory.context_ref)
            plan = await self.steps.step("plan", io.PLAN, arg, io.PlanOutput)
        self.steps.charge(plan.usage)
        if task.approve_plan:
            self.steps.keep_result(TaskResult(gates=[], patch_ref=None, branch=None,
                                             plan_ref=plan.plan_ref))  # fmt: skip
            await self._approvals.wait("plan", task.approval_timeout_s)
        if task.invariants:
            await patterns.extract_invariants(run)
        self.steps.update(policy_label=plan.policy_label)
        return plan

    async def _deliver_draft(self, task: TaskInput) -> TaskResult:
        """A cancelled run delivers what it has, unverified, marked as a draft."""
        coder = self._coder
        gates = coder.verifier.gates() if coder else []
        self.steps.cancel_requested = False  # let the delivery step itself run
        if coder is None or coder.latest in (None, coder.run.base_sha):
            return TaskResult(gates=gates, patch_ref=None, branch=None, draft=True)
        draft = io.DeliverInput(coder.run, coder.latest, f"[draft] {task.goal}")
        delivery = await self.steps.step("deliver", io.DELIVER, draft, io.Delivery)
        return TaskResult(gates=gates, patch_ref=delivery.patch_ref, branch=delivery.branch,
                         commit=delivery.commit, draft=True)  # fmt: skip


def _refuse(problem: str | None) -> None:
    """An update's validator: a refused update writes nothing to the run's history."""
    if problem:
        raise ApplicationError(problem)
