"""The overhead benchmark's workflow: N steps in sequence and nothing else.

Each step goes through Ratchet's own step machinery (`workflows.steps.StepRunner._step`: the
step list, the UI details, the retry policy, a heartbeat timeout), so what the benchmark
measures is what a step of ForwardPlanningWorkflow pays, minus the work of the step itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.runs import RunState
    from workflows.steps import StepRunner

STEP = "bench.step"
STEPS_WORKFLOW = "BenchStepsWorkflow"


@dataclass(frozen=True)
class StepInput:
    command: str
    """Run with the gym's runner in `workspace`; "" returns at once (the harness alone)."""
    workspace: str


@dataclass(frozen=True)
class StepOutput:
    exit_code: int


@dataclass(frozen=True)
class StepsInput:
    run_id: str
    steps: int
    step: StepInput


@workflow.defn(name=STEPS_WORKFLOW)
class StepsWorkflow(StepRunner):
    def __init__(self) -> None:
        self._state = RunState(run_id="", kind="bench", trace_id="", policy_label="none")

    @workflow.run
    async def run(self, arg: StepsInput) -> int:
        for i in range(arg.steps):
            out = await self._step(
                f"step {i + 1}", STEP, arg.step, StepOutput,
                limit=timedelta(minutes=2), heartbeat=timedelta(seconds=30),
            )  # fmt: skip
            if out.exit_code != 0:
                raise ApplicationError(f"step {i + 1} exited {out.exit_code}", non_retryable=True)
        return arg.steps
