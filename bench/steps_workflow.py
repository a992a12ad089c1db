"""The overhead benchmark's workflow: N steps in sequence and nothing else.

Each step goes through Ratchet's own step machinery (`workflows.steps.Steps.step`: the
step list, the UI details, the retry policy, a heartbeat timeout), so what the benchmark
measures is what a step of ForwardPlanningWorkflow pays, minus the work of the step itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.steps import Steps

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
    local: bool = False
    """Each step a local activity (as the registry's light bookkeeping steps are)."""


@workflow.defn(name=STEPS_WORKFLOW)
class StepsWorkflow:
    def __init__(self) -> None:
        self.steps = Steps("bench")

    @workflow.run
    async def run(self, arg: StepsInput) -> int:
        for i in range(arg.steps):
            # Not in the activity registry: the step's limit is given (no heartbeat timeout).
            out = await self.steps.step(f"step {i + 1}", STEP, arg.step, StepOutput,
                                        limit=timedelta(minutes=2), local=arg.local)  # fmt: skip
            if out.exit_code != 0:
                raise ApplicationError(f"step {i + 1} exited {out.exit_code}", non_retryable=True)
        return arg.steps
