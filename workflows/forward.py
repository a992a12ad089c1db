"""ForwardPlanningWorkflow: plan → patch → test → verify (→ repair) → refactor → test → verify
→ deliver. Each step is an activity (or, for a model, an agent-loop child workflow) with an
explicit name, a timeout and a retry policy. A spent budget pauses the run with its work kept.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    # The sandbox decodes results by type hints found through its own module table: every
    # module whose dataclasses this workflow receives must be imported here, not only inside
    # the modules it imports.
    import contracts.roles  # noqa: F401 - the sandbox decodes its types by name
    from contracts.agent import AGENT_WORKFLOW, AgentInput, AgentOutput, ToolResult
    from contracts.budget import Budget, usage_detail
    from contracts.runs import (
        DELIVER,
        LINT,
        PATCH,
        PERFORMANCE,
        PLAN,
        PREPARE,
        RUN_TESTS,
        SNAPSHOT_DIFF,
        VERIFY,
        ApprovalDecision,
        BudgetUpdate,
        CancelRequest,
        ControlAnswer,
        DeliverInput,
        Delivery,
        DiffInput,
        DiffOutput,
        LintInput,
        LintReport,
        PatchInput,
        PatchOutput,
        PerfInput,
        PerfReport,
        PlanInput,
        PlanOutput,
        Prepared,
        PrepareInput,
        RunRef,
        RunResult,
        RunState,
        TaskInput,
        TestInput,
        TestReport,
        VerifyInput,
        VerifyOutput,
    )  # fmt: skip
    from contracts.runs import SUITE_HOW_TO_FIX as HOW_TO_FIX
    from workflows.approvals import ApprovalEnded, ApprovalSteps
    from workflows.patterns import PatternSteps

QUICK = timedelta(minutes=2)
POLICY_CALL = timedelta(minutes=10)


class _Cancelled(Exception):
    """Raised inside the workflow to leave the pipeline and deliver a draft."""


@workflow.defn(name="ForwardPlanningWorkflow")
class ForwardPlanningWorkflow(ApprovalSteps, PatternSteps):
    def __init__(self) -> None:
        self._state = RunState(run_id="", kind="task", trace_id="", policy_label="")
        self._init_patterns()
        self._cancel_requested = False
        self._resume = False
        self._run: RunRef | None = None
        self._latest: str | None = None
        self._gates: VerifyOutput | None = None
        self._child_id: str | None = None

    @workflow.query(name="state")
    def state(self) -> RunState:
        return self._state

    @workflow.update(name="budget")
    async def raise_budget(self, update: BudgetUpdate) -> ControlAnswer:
        old = self._state.budget
        budget = Budget(
            max_cost_usd=update.max_cost_usd
            if update.max_cost_usd is not None
            else old.max_cost_usd,
            max_tokens=update.max_tokens if update.max_tokens is not None else old.max_tokens,
            max_turns=update.max_turns if update.max_turns is not None else old.max_turns,
            max_wall_s=update.max_wall_s if update.max_wall_s is not None else old.max_wall_s,
        )
        self._state = replace(self._state, budget=budget)
        message = "budget updated"
        if self._state.phase == "paused":
            still = budget.exhausted(self._state.usage, self._elapsed())
            self._resume = still is None
            message = f"still paused: {still}" if still else "resuming"
        return ControlAnswer(self._state.phase, budget, self._state.usage, message)

    @raise_budget.validator
    def _check_budget(self, update: BudgetUpdate) -> None:
        if self._state.phase not in ("running", "paused"):
            raise ApplicationError(f"the run is {self._state.phase}: its budget cannot change")
        for name, value in vars(update).items():
            if value is not None and value <= 0:
                raise ApplicationError(f"{name} must be positive")

    @workflow.update(name="cancel")
    async def cancel(self, request: CancelRequest) -> ControlAnswer:
        self._cancel_requested = True
        if self._child_id:
            await workflow.get_external_workflow_handle(self._child_id).signal("stop")
        return ControlAnswer("cancelling", self._state.budget, self._state.usage, request.reason)

    @cancel.validator
    def _check_cancel(self, request: CancelRequest) -> None:
        if self._state.phase not in ("running", "paused", "awaiting_approval"):
            raise ApplicationError(f"the run is already {self._state.phase}")

    @workflow.update(name="approve")
    async def approve(self, decision: ApprovalDecision) -> ControlAnswer:
        return self._decide(decision, "approved")

    @approve.validator
    def _check_approve(self, decision: ApprovalDecision) -> None:
        self._check_decision(decision, "approved")

    @workflow.update(name="reject")
    async def reject(self, decision: ApprovalDecision) -> ControlAnswer:
        return self._decide(decision, "rejected")

    @reject.validator
    def _check_reject(self, decision: ApprovalDecision) -> None:
        self._check_decision(decision, "rejected")

    def _before_step(self) -> None:
        if self._cancel_requested:
            raise _Cancelled

    def _elapsed(self) -> float:
        return (workflow.now() - workflow.info().start_time).total_seconds()

    @workflow.run
    async def run(self, task: TaskInput) -> RunResult:
        self._state = replace(
            self._state, run_id=task.run_id, trace_id=task.trace_id,
            policy_label=task.policy.name, task=task, budget=task.budget,
        )  # fmt: skip
        self._queues = task.queues
        self._model_backoff = (task.model_retry_initial_s, task.model_retry_max_s)
        self._started()
        try:
            result = await self._pipeline(task)
        except _Cancelled:
            result = await self._deliver_draft(task)
            result = replace(result, usage=self._state.usage)
            self._set_phase("cancelled", result=result)
            return result
        except ApprovalEnded as ended:
            # Nothing is delivered without approval; the patch and snapshots stay readable.
            kept = self._state.result or RunResult(gates=[], patch_ref=None, branch=None)
            kept = replace(kept, usage=self._state.usage)
            self._set_phase(
                ended.phase,
                result=kept,
                error={"type": ended.phase.title(), "message": ended.message},
            )
            return kept
        except ApplicationError as failure:
            if task.memory and self._run is not None:
                await self._learn(task, self._run, f"failed: {failure.message}")
            self._set_phase("failed")
            # Raised again with the usage as it ends (learning paid for calls too).
            raise ApplicationError(
                failure.message, usage_detail(self._state.usage), type=failure.type,
                non_retryable=True,
            ) from failure  # fmt: skip
        if task.memory and self._run is not None:
            await self._learn(task, self._run, "completed: verified and delivered")
        result = replace(result, usage=self._state.usage)
        self._set_phase("completed", result=result)
        return result

    async def _pipeline(self, task: TaskInput) -> RunResult:
        when = workflow.now().replace(microsecond=0).isoformat()
        prepared: Prepared = await self._step(
            "prepare", PREPARE, PrepareInput(task.run_id, task.repo, task.base_ref,
                                             task.test_command, when, task.start_snapshot,
                                             task.environment),
            Prepared, limit=timedelta(minutes=15), heartbeat=None,
        )  # fmt: skip
        run = await self._prepare_environment(prepared.run, task.heartbeat_timeout_s)
        prepared = replace(prepared, run=run)
        self._run = run
        self._record_snapshot("base", run.base_sha)
        baseline = await self._tests(task, prepared, run.base_sha, "baseline", None)
        if baseline.cannot_run_fatal:
            # Nothing a patch does can make this suite run: say so before any model is paid.
            raise self._fail(
                "SuiteDoesNotRun",
                f"the suite cannot run at the base commit ({baseline.cannot_run}), so no change "
                f"can be verified: {HOW_TO_FIX}",
            )
        baseline_lint = await self._lint(run, run.base_sha, "baseline lint", None)
        memory = await self._read_memory(task)
        merged = await self._plan_with_perspectives(task, run) if task.perspectives > 0 else None
        if merged is not None:
            plan = merged
        else:
            plan = await self._step(
                "plan", PLAN, PlanInput(run, task.goal, task.policy, memory.context_ref),
                PlanOutput, limit=POLICY_CALL,
                heartbeat=timedelta(seconds=task.heartbeat_timeout_s),
            )  # fmt: skip
        self._charge(plan.usage)
        if task.approve_plan:
            self._state = replace(self._state, result=RunResult(
                gates=[], patch_ref=None, branch=None, plan_ref=plan.plan_ref))  # fmt: skip
            await self._await_approval(
                "plan", task.approval_timeout_s, lambda: self._cancel_requested
            )
        if task.invariants:
            await self._extract_invariants(task, run)
        self._state = replace(self._state, policy_label=plan.policy_label)

        async def verify(snapshot: str, round_: int | None) -> tuple[VerifyOutput, TestReport]:
            report = await self._tests(task, prepared, snapshot, "test", round_)
            linted = await self._lint(run, snapshot, "lint", round_)
            perf = None
            if prepared.benchmark:
                perf = await self._step(
                    "performance", PERFORMANCE, PerfInput(run, snapshot, task.test_timeout_s),
                    PerfReport, limit=timedelta(seconds=task.test_timeout_s * 4 + 300),
                    heartbeat=None, round_=round_,
                )  # fmt: skip
            verdict: VerifyOutput = await self._step(
                "verify", VERIFY,
                VerifyInput(run, snapshot, report, baseline, linted, baseline_lint, perf),
                VerifyOutput, limit=QUICK, heartbeat=None, round_=round_,
            )  # fmt: skip
            self._gates = verdict
            return verdict, report

        # Each round patches the previous attempt, so feedback is about what is in front of it.
        current = self._latest = task.start_snapshot or run.base_sha
        feedback_ref: str | None = None
        verified: VerifyOutput | None = None
        isolation = baseline.isolation
        rounds = task.max_repair_rounds + 1
        for round_ in range(1, rounds + 1):
            patch = await self._propose(
                task, prepared, plan, "patch", round_, current, feedback_ref
            )
            if not patch.applied:
                feedback_ref = patch.patch_ref
                continue
            current = self._latest = patch.snapshot
            self._record_snapshot(f"patch-{round_}", current)
            verdict, report = await verify(current, round_)
            gates = verdict.gates
            if verdict.passed and task.invariants:
                guard, guard_feedback = await self._check_invariants(task, run, current, round_)
                gates = [*gates, guard]
                if not guard.passed:
                    self._gates = replace(verdict, passed=False, gates=gates)
                    feedback_ref = guard_feedback
                    continue
            if verdict.passed and task.adversarial:
                red, red_feedback = await self._red_team(task, run, current, round_)
                gates = [*gates, red]
                if not red.passed:
                    self._gates = replace(verdict, passed=False, gates=gates)
                    feedback_ref = red_feedback
                    continue
            if verdict.passed:
                verified, isolation = replace(verdict, gates=gates), report.isolation
                break
            feedback_ref = verdict.feedback_ref
        if verified is None:
            gates = self._gates.gates if self._gates else []
            self._state = replace(self._state, result=RunResult(
                gates=gates, patch_ref=None, branch=None, plan_ref=plan.plan_ref,
                isolation=isolation,
            ))  # fmt: skip
            unrunnable = (
                f"; the suite cannot run at the base commit either ({baseline.cannot_run})"
                if baseline.cannot_run else ""
            )  # fmt: skip
            raise self._fail(
                "VerificationFailed",
                f"no patch passed verification in {rounds} rounds; see the last gates{unrunnable}",
            )
        snapshot = current

        # Refactor, and keep it only if it verifies too: quality only moves one way.
        refactor = await self._propose(task, prepared, plan, "refactor", 1, snapshot, None)
        refactor_kept = False
        if refactor.applied and refactor.changed:
            self._record_snapshot("refactor-1", refactor.snapshot)
            verdict, report = await verify(refactor.snapshot, None)
            if verdict.passed and task.invariants:
                guard, _ = await self._check_invariants(task, run, refactor.snapshot, None)
                verdict = replace(verdict, passed=guard.passed, gates=[*verdict.gates, guard])
            if verdict.passed and task.adversarial:
                red, _ = await self._red_team(task, run, refactor.snapshot, 0)
                verdict = replace(verdict, passed=red.passed, gates=[*verdict.gates, red])
            if verdict.passed:
                snapshot, verified, isolation = refactor.snapshot, verdict, report.isolation
                refactor_kept = True
        if task.adversarial:
            snapshot = await self._with_red_tests(run, snapshot)
        self._latest = snapshot
        if task.require_approval:
            review = await self._keep_patch("patch for review", run, snapshot)
            self._state = replace(self._state, result=RunResult(
                gates=verified.gates, patch_ref=review, branch=None,
                plan_ref=plan.plan_ref, refactor_kept=refactor_kept, isolation=isolation,
            ))  # fmt: skip
            await self._await_approval(
                "delivery", task.approval_timeout_s, lambda: self._cancel_requested
            )
        handover = DeliverInput(
            run, snapshot, task.goal, gates=verified.gates, plan_ref=plan.plan_ref,
            usage=self._state.usage, trace_id=task.trace_id, policy_label=plan.policy_label,
        )  # fmt: skip
        delivery: Delivery = await self._step(
            "deliver", DELIVER, handover, Delivery, limit=QUICK, heartbeat=None
        )
        return RunResult(
            gates=verified.gates, patch_ref=delivery.patch_ref, branch=delivery.branch,
            commit=delivery.commit, plan_ref=plan.plan_ref, refactor_kept=refactor_kept,
            isolation=isolation, memory_used=memory.ids,
            pull_request_url=delivery.pull_request_url,
        )  # fmt: skip

    def _tests(
        self, task: TaskInput, prepared: Prepared, snapshot: str, label: str, round_: int | None
    ) -> Awaitable[TestReport]:
        arg = TestInput(prepared.run, snapshot, prepared.test_command, task.test_timeout_s,
                        label, grade_with_base_tests=label != "baseline")  # fmt: skip
        return self._step(
            label, RUN_TESTS, arg, TestReport, limit=timedelta(seconds=task.test_timeout_s + 120),
            heartbeat=timedelta(seconds=task.heartbeat_timeout_s), round_=round_,
        )  # fmt: skip

    def _lint(
        self, run: RunRef, snapshot: str, label: str, round_: int | None
    ) -> Awaitable[LintReport]:
        return self._step(label, LINT, LintInput(run, snapshot), LintReport,
                          limit=timedelta(minutes=10), heartbeat=None, round_=round_)  # fmt: skip

    async def _propose(
        self, task: TaskInput, prepared: Prepared, plan: PlanOutput, step: str, round_: int,
        snapshot: str, feedback_ref: str | None,
    ) -> PatchOutput:  # fmt: skip
        """The policy's next change: an agent loop, for a model and for a script alike."""
        run = prepared.run
        # Runs recorded before scripted runs went through the agent loop replay their patch
        # activity (no worker runs it any more).
        if task.policy.name == "scripted" and not workflow.patched("scripted-agent-loop"):
            return await self._step(
                step, PATCH,
                PatchInput(run, snapshot, step, round_, task.goal, plan.plan_ref, feedback_ref,
                           task.policy),
                PatchOutput, limit=POLICY_CALL,
                heartbeat=timedelta(seconds=task.heartbeat_timeout_s), round_=round_,
            )  # fmt: skip
        transcript_ref: str | None = None
        pending: list[ToolResult] = []
        for resumed in range(1000):
            arg = AgentInput(
                run=run, role="refactor" if step == "refactor" else "code",
                provider=task.policy.name, goal=task.goal, plan_ref=plan.plan_ref,
                feedback_ref=feedback_ref, snapshot=snapshot, test_command=prepared.test_command,
                test_timeout_s=task.test_timeout_s, budget=self._state.budget,
                usage=self._state.usage, started_at=workflow.info().start_time.isoformat(),
                transcript_ref=transcript_ref, pending_results=pending,
                retry_initial_s=task.model_retry_initial_s,
                max_turns_per_execution=task.turns_per_execution, queues=task.queues,
                heartbeat_timeout_s=task.heartbeat_timeout_s,
                retry_max_s=task.model_retry_max_s, policy=task.policy,
                script_key=f"{step}.{round_}",
            )  # fmt: skip
            self._child_id = f"{task.run_id}-{step}-{round_}-{resumed}"
            try:
                out: AgentOutput = await self._child(
                    step, AGENT_WORKFLOW, arg, AgentOutput, child_id=self._child_id, round_=round_
                )
            finally:
                self._child_id = None
            self._state = replace(self._state, usage=out.usage)
            if out.transcript_ref:
                transcripts = {**self._state.transcripts, f"{step}-{round_}": out.transcript_ref}
                self._state = replace(self._state, transcripts=transcripts)
            snapshot = self._latest = out.snapshot
            if out.stop == "cancelled":
                raise _Cancelled
            if out.stop == "loop":
                raise self._fail("LoopDetected", out.reason)
            if out.stop == "failed":
                kind = out.error_type or "StepFailed"
                raise self._fail(kind, f"step {step} failed: {out.reason}")
            if out.stop != "budget":
                changed = out.snapshot != arg.snapshot
                message = out.summary[:300] or out.stop
                return PatchOutput(out.snapshot, True, changed, message, attempt=1)
            await self._pause(out.reason, out.snapshot)
            transcript_ref, pending = out.transcript_ref, out.pending_results
        raise self._fail("BudgetLoop", "the run was paused and resumed too many times")

    async def _pause(self, reason: str, snapshot: str) -> None:
        """Keep the work (a partial patch) and wait for a raised budget or a cancel."""
        if self._run is None:
            raise self._fail("NotPrepared", "a run cannot pause before it is prepared")
        partial = await self._keep_patch("partial patch", self._run, snapshot)
        gates = self._gates.gates if self._gates else []
        self._resume = False
        self._set_phase(
            "paused", pause_reason=reason,
            result=RunResult(gates=gates, patch_ref=partial, branch=None, draft=True),
        )  # fmt: skip
        await workflow.wait_condition(lambda: self._resume or self._cancel_requested)
        self._set_phase("running", pause_reason="")
        if self._cancel_requested:
            raise _Cancelled

    async def _keep_patch(self, label: str, run: RunRef, snapshot: str) -> str:
        """A step keeping `snapshot`'s change from the base as a patch artifact (its ref)."""
        kept: DiffOutput = await self._step(
            label, SNAPSHOT_DIFF, DiffInput(run, snapshot), DiffOutput, limit=QUICK, heartbeat=None
        )
        return kept.patch_ref

    async def _deliver_draft(self, task: TaskInput) -> RunResult:
        """A cancelled run delivers what it has, unverified, marked as a draft."""
        gates = self._gates.gates if self._gates else []
        self._cancel_requested = False  # let the delivery step itself run
        if self._run is None or self._latest in (None, self._run.base_sha):
            return RunResult(gates=gates, patch_ref=None, branch=None, draft=True)
        delivery: Delivery = await self._step(
            "deliver", DELIVER, DeliverInput(self._run, self._latest, f"[draft] {task.goal}"),
            Delivery, limit=QUICK, heartbeat=None,
        )  # fmt: skip
        return RunResult(
            gates=gates, patch_ref=delivery.patch_ref, branch=delivery.branch,
            commit=delivery.commit, draft=True,
        )  # fmt: skip
