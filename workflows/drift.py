"""DriftWorkflow: read the specification, list its checkable claims, check each against the code,
report; when a claim's test shows drift, start an investigation of when it broke."""

from __future__ import annotations

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

import workflows.sandboxed  # noqa: F401 - the contracts' types decode in the sandbox

with workflow.unsafe.imports_passed_through():
    from dataclasses import replace

    from contracts import drift
    from contracts.investigation import INVESTIGATION_WORKFLOW, InvestigationInput
    from contracts.results import DriftResult, DriftState
    from contracts.runs import Gate, RunState, TaskInput
    from workflows import search
    from workflows.patterns import Patterns
    from workflows.steps import Steps


HEARTBEAT_S = 30.0
"""A drift check's environment build heartbeats this often (a check has no setting of it)."""


@workflow.defn(name="DriftWorkflow")
class DriftWorkflow:
    def __init__(self) -> None:
        self.steps = Steps("drift", DriftState)

    @workflow.query(name="state")
    def state(self) -> RunState:
        return self.steps.state

    @workflow.run
    async def run(self, inp: drift.DriftInput) -> DriftResult:
        # Scheduled runs get ids made by Temporal: the run id is always the workflow id.
        run_id = workflow.info().workflow_id
        self.steps.start(inp.queues, inp.test_timeout_s, HEARTBEAT_S, run_id=run_id,
                         trace_id=inp.trace_id, policy_label=inp.policy.name)  # fmt: skip
        return await self.steps.run(self._check(inp, run_id))

    async def _check(self, inp: drift.DriftInput, run_id: str) -> DriftResult:
        when = workflow.now().replace(microsecond=0).isoformat()
        arg = drift.DriftPrepareInput(run_id, inp.repo, inp.ref, when, inp.environment)
        prepared = await self.steps.step(
            "read specs", drift.DRIFT_PREPARE, arg, drift.DriftPrepared
        )
        if prepared.spec_chars == 0 and workflow.patched("drift-without-specs"):
            # Nothing to ask a model about (and an empty message is refused by the API).
            nothing = ("nothing to check: the repository has no spec text ([specs] paths in "
                       "ratchet.toml; by default specs/**/*.md and README.md)")  # fmt: skip
            return DriftResult(
                gates=[Gate("spec drift", True, nothing)], patch_ref=None, branch=None
            )
        prepared = replace(prepared, run=await self.steps.prepare_environment(prepared.run))
        task = TaskInput(run_id=run_id, repo=inp.repo, goal="list the checkable claims",
                         policy=inp.policy)  # fmt: skip
        claims = await Patterns(self.steps, task).role("claims", "claims", "claims", prepared.run,
                                                       inputs=[prepared.specs_ref])  # fmt: skip
        check = drift.CheckInput(prepared.run, claims.answer_ref, inp.test_timeout_s)
        checked = await self.steps.step(
            "check claims", drift.CHECK_CLAIMS, check, drift.CheckOutput
        )
        detail = f"{checked.holds} hold, {checked.drift} drifted, {checked.unchecked} unchecked"
        investigation = None
        if checked.drift_tests and inp.investigate:
            # A git ref (the fix's branch) cannot hold the ':' of a scheduled run's id.
            investigation = f"{run_id.replace(':', '')}-investigation"
            await workflow.start_child_workflow(
                INVESTIGATION_WORKFLOW,
                InvestigationInput(
                    run_id=investigation, kind="regression", repo=inp.repo,
                    bad_ref=prepared.run.base_sha, test_command=checked.reproduce,
                    reproduction_files=checked.drift_tests, trace_id=inp.trace_id,
                    test_timeout_s=inp.test_timeout_s, queues=inp.queues,
                    environment=inp.environment,
                ),
                id=investigation,
                # The investigation outlives the check that started it.
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=f"[drift] {checked.drift} spec claims no longer hold in {inp.repo}",
                search_attributes=search.for_child("investigation", inp.repo, "none"),
            )  # fmt: skip
        return DriftResult(
            gates=[Gate("spec drift", checked.drift == 0, detail)], patch_ref=None, branch=None,
            report_ref=checked.report_ref, investigation_run_id=investigation,
        )  # fmt: skip
