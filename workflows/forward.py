"""ForwardPlanningWorkflow: plan → patch → test → verify (→ repair) → refactor → test → verify
→ deliver. Each step is an activity with an explicit name, a timeout and a retry policy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from workflows.shared import (
        DELIVER,
        LINT,
        NON_RETRYABLE_TYPES,
        PATCH,
        PERFORMANCE,
        PLAN,
        PREPARE,
        RUN_TESTS,
        VERIFY,
        DeliverInput,
        Delivery,
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
        RunResult,
        RunState,
        StepRecord,
        TaskInput,
        TestInput,
        TestReport,
        VerifyInput,
        VerifyOutput,
    )

T = TypeVar("T")

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)
QUICK = timedelta(minutes=2)
POLICY_CALL = timedelta(minutes=10)


@workflow.defn(name="ForwardPlanningWorkflow")
class ForwardPlanningWorkflow:
    def __init__(self) -> None:
        self._state = RunState(run_id="", kind="task", trace_id="", policy_label="")

    @workflow.query(name="state")
    def state(self) -> RunState:
        return self._state

    @workflow.run
    async def run(self, task: TaskInput) -> RunResult:
        self._state = replace(
            self._state,
            run_id=task.run_id,
            trace_id=task.trace_id,
            policy_label=task.policy.name,
            task=task,
        )
        heartbeat = timedelta(seconds=task.heartbeat_timeout_s)
        when = workflow.now().replace(microsecond=0).isoformat()

        prepared: Prepared = await self._step(
            "prepare", PREPARE, PrepareInput(task.run_id, task.repo, task.base_ref,
                                             task.test_command, when, task.start_snapshot),
            Prepared, limit=timedelta(minutes=15), heartbeat=None,
        )  # fmt: skip
        run = prepared.run
        self._record_snapshot("base", run.base_sha)

        def tests(snapshot: str, label: str, round_: int | None) -> Awaitable[TestReport]:
            arg = TestInput(
                run, snapshot, prepared.test_command, task.test_timeout_s, label,
                grade_with_base_tests=label != "baseline",
            )  # fmt: skip
            limit = timedelta(seconds=task.test_timeout_s + 120)
            return self._step(label, RUN_TESTS, arg, TestReport, limit=limit,
                              heartbeat=heartbeat, round_=round_)  # fmt: skip

        def lint(snapshot: str, label: str, round_: int | None) -> Awaitable[LintReport]:
            return self._step(
                label, LINT, LintInput(run, snapshot), LintReport,
                limit=timedelta(minutes=10), heartbeat=None, round_=round_,
            )  # fmt: skip

        async def performance(snapshot: str, round_: int | None) -> PerfReport | None:
            if not prepared.benchmark:
                return None
            return await self._step(
                "performance", PERFORMANCE, PerfInput(run, snapshot, task.test_timeout_s),
                PerfReport, limit=timedelta(seconds=task.test_timeout_s * 4 + 300),
                heartbeat=None, round_=round_,
            )  # fmt: skip

        baseline = await tests(run.base_sha, "baseline", None)
        baseline_lint = await lint(run.base_sha, "baseline lint", None)
        plan: PlanOutput = await self._step(
            "plan", PLAN, PlanInput(run, task.goal, task.policy), PlanOutput,
            limit=POLICY_CALL, heartbeat=heartbeat,
        )  # fmt: skip
        self._state = replace(self._state, policy_label=plan.policy_label)

        # Each round patches the previous attempt, so feedback is about what is in front of it.
        current = task.start_snapshot or run.base_sha
        snapshot, feedback_ref = current, None
        verified: VerifyOutput | None = None
        last_gates: VerifyOutput | None = None
        isolation = baseline.isolation
        rounds = task.max_repair_rounds + 1
        for round_ in range(1, rounds + 1):
            patch: PatchOutput = await self._step(
                "patch", PATCH,
                PatchInput(run, current, "patch", round_, task.goal, plan.plan_ref,
                           feedback_ref, task.policy),
                PatchOutput, limit=POLICY_CALL, heartbeat=heartbeat, round_=round_,
            )  # fmt: skip
            if not patch.applied:
                feedback_ref = patch.patch_ref
                continue
            current = patch.snapshot
            self._record_snapshot(f"patch-{round_}", current)
            report = await tests(patch.snapshot, "test", round_)
            linted = await lint(patch.snapshot, "lint", round_)
            perf = await performance(patch.snapshot, round_)
            verify: VerifyOutput = await self._step(
                "verify", VERIFY,
                VerifyInput(run, patch.snapshot, report, baseline, linted, baseline_lint, perf),
                VerifyOutput, limit=QUICK, heartbeat=None, round_=round_,
            )  # fmt: skip
            last_gates = verify
            if verify.passed:
                snapshot, verified, isolation = patch.snapshot, verify, report.isolation
                break
            feedback_ref = verify.feedback_ref
        if verified is None:
            self._state = replace(
                self._state,
                result=RunResult(gates=last_gates.gates if last_gates else [], patch_ref=None,
                                 branch=None, plan_ref=plan.plan_ref, isolation=isolation),
            )  # fmt: skip
            raise self._fail(
                "VerificationFailed",
                f"no patch passed verification in {rounds} rounds; see the last gates",
            )

        # Refactor, and keep it only if it verifies too: quality only moves one way.
        refactor: PatchOutput = await self._step(
            "refactor", PATCH,
            PatchInput(run, snapshot, "refactor", 1, task.goal, plan.plan_ref, None, task.policy),
            PatchOutput, limit=POLICY_CALL, heartbeat=heartbeat,
        )  # fmt: skip
        refactor_kept = False
        if refactor.applied and refactor.changed:
            self._record_snapshot("refactor-1", refactor.snapshot)
            report = await tests(refactor.snapshot, "test", None)
            linted = await lint(refactor.snapshot, "lint", None)
            perf = await performance(refactor.snapshot, None)
            verify = await self._step(
                "verify", VERIFY, VerifyInput(run, refactor.snapshot, report, baseline, linted,
                                      baseline_lint, perf),
                VerifyOutput, limit=QUICK, heartbeat=None,
            )  # fmt: skip
            if verify.passed:
                snapshot, verified, refactor_kept = refactor.snapshot, verify, True
                isolation = report.isolation

        delivery: Delivery = await self._step(
            "deliver", DELIVER, DeliverInput(run, snapshot, task.goal), Delivery,
            limit=QUICK, heartbeat=None,
        )  # fmt: skip
        result = RunResult(
            gates=verified.gates,
            patch_ref=delivery.patch_ref,
            branch=delivery.branch,
            commit=delivery.commit,
            plan_ref=plan.plan_ref,
            refactor_kept=refactor_kept,
            isolation=isolation,
        )
        self._state = replace(self._state, result=result)
        return result

    async def _step(
        self,
        name: str,
        activity: str,
        arg: Any,
        result_type: type[T],
        *,
        limit: timedelta,
        heartbeat: timedelta | None,
        round_: int | None = None,
    ) -> T:
        """Run one activity and keep the step list that GET /runs/{id} shows."""
        index = len(self._state.steps)
        started = workflow.now().isoformat()
        self._set_step(index, StepRecord(name, "running", 1, started, round=round_))
        try:
            result: T = await workflow.execute_activity(
                activity,
                arg,
                result_type=result_type,
                start_to_close_timeout=limit,
                heartbeat_timeout=heartbeat,
                retry_policy=RETRY,
                summary=f"{name}" + (f" (round {round_})" if round_ else ""),
            )
        except ActivityError as err:
            attempts = (
                RETRY.maximum_attempts
                if err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
                else 1
            )
            cause = err.cause
            message = str(cause) if cause else str(err)
            kind = (
                cause.type if isinstance(cause, ApplicationError) and cause.type else "StepFailed"
            )
            self._set_step(
                index,
                StepRecord(name, "failed", attempts, started, workflow.now().isoformat(),
                           round_, message[:500]),
            )  # fmt: skip
            raise self._fail(kind, f"step {name} failed: {message}") from err
        attempts = int(getattr(result, "attempt", 1))
        self._set_step(
            index,
            StepRecord(name, "completed", attempts, started, workflow.now().isoformat(), round_,
                       _detail(result)),
        )  # fmt: skip
        return result

    def _record_snapshot(self, step: str, sha: str) -> None:
        self._state = replace(self._state, snapshots={**self._state.snapshots, step: sha})

    def _set_step(self, index: int, record: StepRecord) -> None:
        steps = list(self._state.steps)
        if index < len(steps):
            steps[index] = record
        else:
            steps.append(record)
        self._state = replace(self._state, steps=steps)

    def _fail(self, kind: str, message: str) -> ApplicationError:
        self._state = replace(self._state, error={"type": kind, "message": message})
        return ApplicationError(message, type=kind, non_retryable=True)


def _test_detail(r: TestReport) -> str:
    verdict = "passed" if r.passed else f"failed (exit {r.exit_code})"
    if r.passed_count or r.failed_count:
        verdict += f": {r.passed_count} passed, {r.failed_count} failed"
    if r.flaky:
        verdict += f", {len(r.flaky)} flaky"
    if r.killed_by:
        verdict += f", killed by {', '.join(r.killed_by)}"
    if r.restored_tests:
        verdict += f"; graded with the original {', '.join(r.restored_tests)}"
    sandbox = r.isolation.split(":", 1)[0]
    return f"{verdict} in {r.duration_s:.1f}s [sandbox: {sandbox}]"


def _detail(result: object) -> str:
    describe: Callable[[Any], str] | None = _DETAILS.get(type(result))
    return describe(result) if describe else ""


_DETAILS: dict[type, Callable[[Any], str]] = {
    TestReport: lambda r: _test_detail(r),
    VerifyOutput: lambda r: ", ".join(
        f"{g.name} {'ok' if g.passed else 'FAILED'}" for g in r.gates
    ),
    PatchOutput: lambda r: r.message,
    PlanOutput: lambda r: f"by {r.policy_label}",
    PerfReport: lambda r: r.detail[:200],
    LintReport: lambda r: (
        f"{r.count} findings ({r.command.split()[0]})"
        if r.configured and r.ok
        else r.detail[:200]
        if r.configured
        else "no lint command"
    ),
    Delivery: lambda r: f"branch {r.branch}, {r.files_changed} files",
}
