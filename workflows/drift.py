"""DriftWorkflow: read the specification, list its checkable claims, check each against the code,
report; when a claim's test shows drift, start an investigation of when it broke."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from dataclasses import replace

    import contracts.roles  # noqa: F401 - the sandbox decodes its types by name
    from contracts.drift import (
        CHECK_CLAIMS,
        DRIFT_PREPARE,
        CheckInput,
        CheckOutput,
        DriftInput,
        DriftPrepared,
        DriftPrepareInput,
    )  # fmt: skip
    from contracts.investigation import INVESTIGATION_WORKFLOW, InvestigationInput
    from contracts.runs import Gate, RunResult, RunState, TaskInput
    from workflows import search
    from workflows.patterns import PatternSteps

QUICK = timedelta(minutes=5)


@workflow.defn(name="DriftWorkflow")
class DriftWorkflow(PatternSteps):
    def __init__(self) -> None:
        self._state = RunState(run_id="", kind="drift", trace_id="", policy_label="")
        self._init_patterns()

    @workflow.query(name="state")
    def state(self) -> RunState:
        return self._state

    @workflow.run
    async def run(self, inp: DriftInput) -> RunResult:
        # Scheduled runs get ids made by Temporal: the run id is always the workflow id.
        run_id = workflow.info().workflow_id
        self._state = replace(self._state, run_id=run_id, trace_id=inp.trace_id,
                              policy_label=inp.policy.name)  # fmt: skip
        self._queues = inp.queues
        self._started()
        try:
            result = await self._check(inp, run_id)
        except Exception:
            self._set_phase("failed")
            raise
        result = replace(result, usage=self._state.usage)
        self._set_phase("completed", result=result)
        return result

    async def _check(self, inp: DriftInput, run_id: str) -> RunResult:
        when = workflow.now().replace(microsecond=0).isoformat()
        prepared: DriftPrepared = await self._step(
            "read specs", DRIFT_PREPARE,
            DriftPrepareInput(run_id, inp.repo, inp.ref, when, inp.environment),
            DriftPrepared, limit=QUICK, heartbeat=None,
        )  # fmt: skip
        if prepared.spec_chars == 0 and workflow.patched("drift-without-specs"):
            # Nothing to ask a model about (and an empty message is refused by the API).
            nothing = ("nothing to check: the repository has no spec text ([specs] paths in "
                       "ratchet.toml; by default specs/**/*.md and README.md)")  # fmt: skip
            return RunResult(gates=[Gate("spec drift", True, nothing)], patch_ref=None, branch=None)
        prepared = replace(prepared, run=await self._prepare_environment(prepared.run, 30.0))
        task = TaskInput(run_id=run_id, repo=inp.repo, goal="list the checkable claims",
                         policy=inp.policy)  # fmt: skip
        claims = await self._role("claims", "claims", "claims", prepared.run, task,
                                  inputs=[prepared.specs_ref])  # fmt: skip
        checked: CheckOutput = await self._step(
            "check claims", CHECK_CLAIMS,
            CheckInput(prepared.run, claims.answer_ref, inp.test_timeout_s),
            CheckOutput, limit=timedelta(seconds=inp.test_timeout_s * 10 + 120), heartbeat=None,
        )  # fmt: skip
        detail = f"{checked.holds} hold, {checked.drift} drifted, {checked.unchecked} unchecked"
        investigation = None
        if checked.drift_tests and inp.investigate:
            # A git ref (the fix's branch) cannot hold the ':' of a scheduled run's id.
            investigation = f"{run_id.replace(':', '')}-investigation"
            command = "python -m pytest -q " + " ".join(sorted(checked.drift_tests))
            await workflow.start_child_workflow(
                INVESTIGATION_WORKFLOW,
                InvestigationInput(
                    run_id=investigation, kind="regression", repo=inp.repo,
                    bad_ref=prepared.run.base_sha, test_command=command,
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
        return RunResult(
            gates=[Gate("spec drift", checked.drift == 0, detail)], patch_ref=None, branch=None,
            report_ref=checked.report_ref, investigation_run_id=investigation,
        )  # fmt: skip
