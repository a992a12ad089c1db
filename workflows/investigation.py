"""InvestigationWorkflow: reproduce → bisect (k parallel probes a round) → localize → fix (the
revert of the guilty hunks without a model; a forward run with one) → test → verify → deliver a
root-cause report. Writing a reproduction for an event no test covers is in reproducer.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import Any

from temporalio import workflow

import workflows.sandboxed  # noqa: F401 - the contracts' types decode in the sandbox

with workflow.unsafe.imports_passed_through():
    from contracts import investigation as inv
    from contracts import runs
    from contracts import steps as io
    from contracts.bisect import Multisection
    from contracts.investigation import InvestigationInput, InvPrepared
    from contracts.results import Culprit, InvestigationResult, InvestigationState, TaskResult
    from contracts.runs import Gate, RunState
    from contracts.sentry import EventSignal
    from workflows import search
    from workflows.probing import Prober
    from workflows.reproducer import Reproducer
    from workflows.steps import Steps
    from workflows.verify import Verifier

MAX_EVENTS = 50
Fix = tuple[str, list[Gate], io.Delivery | None]
"""What the fix step says it did, the gates it passed or failed, and its delivery if it passed."""


@workflow.defn(name="InvestigationWorkflow")
class InvestigationWorkflow:
    def __init__(self) -> None:
        self.steps = Steps("investigation", InvestigationState)
        self._suite_problem = ""
        """Why the suite cannot run at the bad commit ("" when it runs)."""
        self._reproducer = Reproducer(self.steps)
        self._prober = Prober(self.steps, self._reproducer)
        self._confirmations = 0
        """Confirmations of the bad commit the planned search still runs beside its probes."""

    @workflow.query(name="state")
    def state(self) -> RunState:
        return self.steps.state

    @workflow.signal(name="event")
    def event(self, signal: EventSignal) -> None:
        """A repeat of the issue joins the running investigation (redeliveries count once)."""
        self.steps.update(events=self.steps.state.with_event(signal.id(), MAX_EVENTS).events)

    @workflow.run
    async def run(self, inp: InvestigationInput) -> InvestigationResult:
        label = inp.policy.name if inp.policy else "none (revert the culprit)"
        events = [inp.event.event_id] if inp.event and inp.event.event_id else []
        self.steps.start(inp.queues, inp.test_timeout_s, inp.heartbeat_timeout_s,
                         run_id=inp.run_id, trace_id=inp.trace_id, policy_label=label,
                         events=events)  # fmt: skip
        return await self.steps.run(self._investigate(inp))

    async def _investigate(self, inp: InvestigationInput) -> InvestigationResult:
        prep = await self._prepare(inp)
        planned = workflow.patched("probe-planner")
        prep = await self._reproduce(inp, prep, planned)
        arg = inv.HistoryInput(prep.run, prep.good_sha, inp.max_history)
        if planned:  # the planner starts probes as cores free up
            history, cores = await self._prober.history_and_cores(inp, arg)
        else:
            history = await self.steps.step("history", inv.HISTORY, arg, inv.History)
            cores = inp.parallel_probes
        # Benchmarks running side by side would slow each other down: one probe at a time.
        k = 1 if inp.kind == "performance" else max(1, min(inp.parallel_probes, cores))
        bisection = Multisection(history.commits, k=k)
        bisection.record(prep.run.base_sha, "bad")
        written = self._reproducer.written
        if planned:
            rounds = await self._prober.planned(
                inp, prep, bisection, self._confirmations, latent_ok=written is not None
            )  # fmt: skip
        else:
            rounds = await self._prober.find_good(
                inp, prep, bisection, latent_ok=written is not None
            )  # fmt: skip
            if rounds >= 0:
                rounds = await self._prober.bisect(inp, prep, bisection, rounds)
        if rounds < 0:  # the written reproduction fails at every commit: nothing to bisect
            return await self._latent(inp, prep)
        culprit, confidence, suspects = bisection.verdict()
        guilty = inv.LocalizeInput(prep.run, culprit, prep.frame_files, prep.reproduce, written)
        where = await self.steps.step("localize", inv.LOCALIZE, guilty, inv.Localized)
        fix, gates, delivery = await self._fix(inp, prep, culprit, where)
        report = await self._report(
            inp, prep, fix, gates, delivery, culprit, where, confidence, suspects
        )  # fmt: skip
        found = Culprit(culprit, where.author, where.message[:2000], confidence)
        result = self._result(gates, delivery, report, culprit=found, rounds=rounds)
        if delivery is None:
            raise self._unverified(result, fix)
        return result

    async def _prepare(self, inp: InvestigationInput) -> InvPrepared:
        when = workflow.now().replace(microsecond=0).isoformat()
        arg = inv.InvPrepareInput(
            # The event's release and frames travel in the event itself (once).
            inp.run_id, inp.repo, inp.bad_ref, "", [], inp.test_command, inp.test_id, inp.kind,
            when, inp.good_ref, inp.environment, inp.suite_command, inp.event,
        )  # fmt: skip
        prep = await self.steps.step("reproduce", inv.INV_PREPARE, arg, InvPrepared)
        prep = replace(prep, run=await self.steps.prepare_environment(prep.run))
        if inp.kind == "performance":
            if prep.good_sha is None:
                raise self.steps.fail("BadInput", "a performance investigation needs good_ref")
            self._prober.reference = prep.good_sha
        return prep

    async def _reproduce(self, inp: InvestigationInput, prep: InvPrepared,
                         planned: bool) -> InvPrepared:  # fmt: skip
        """Show the problem at the bad commit, with a test the policy writes when no existing
        one fails the way the event did. Planned, the search confirms it once more beside its
        probes (both times when nothing hangs on the first: a given reproduction and good ref)."""
        explicit = bool(inp.test_command or inp.test_id)
        can_write = (inp.event is not None and inp.kind == "regression" and not explicit
                     and prep.target is not None)  # fmt: skip
        if can_write and inp.write_reproduction and workflow.patched("reproducer"):
            prep = await self._reproducer.write(inp, prep)
        times = 1 if planned else 2
        self._confirmations = 0 if inp.kind == "performance" or not planned else 1
        if planned and not can_write and prep.good_sha is not None and self._confirmations:
            self._confirmations = 2
            return prep
        seen = await self._prober.confirm(inp, prep, times, 0 if planned else 1)
        if (seen is not None and can_write and self._reproducer.written is None
                and inp.policy is not None and workflow.patched("reproducer")):  # fmt: skip
            # No existing test fails the way the event did: the policy writes one.
            prep = await self._reproducer.write(inp, prep)
            seen = await self._prober.confirm(inp, prep, times, 0 if planned else 1)
        if seen is None:
            return prep
        why = seen.not_reproduced(policy_could_write=can_write and inp.policy is None)
        raise self.steps.fail("NotReproduced", why)

    async def _fix(self, inp: InvestigationInput, prep: InvPrepared, culprit: str,
                   where: inv.Localized) -> Fix:  # fmt: skip
        if inp.policy is not None:  # a forward run on the bad commit, told what was found
            gates, delivery = await self._policy_fix(inp, prep, where.fix_goal)
            return f"fixed by the {inp.policy.name} policy (run {inp.run_id}-fix)", gates, delivery
        run = prep.run
        arg = inv.RevertInput(run, culprit, where.files)
        revert = await self.steps.step("fix", inv.REVERT, arg, io.PatchOutput)
        self.steps.record_snapshot("revert-1", revert.snapshot)
        verifier = Verifier(self.steps, run, prep.test_command)
        self._suite_problem = (await verifier.measure_base()).cannot_run
        verdict, _ = await verifier.check(revert.snapshot, None)
        again = await self._prober.probe(inp, prep, revert.snapshot, 0, 0)
        detail = f"the reproduction on the fix: {again.outcome} ({again.detail})"
        gates = [*verdict.gates, Gate("reproduction", again.outcome == "good", detail)]
        if not all(g.passed for g in gates):
            return revert.message, gates, None
        handover = io.DeliverInput(run, revert.snapshot,
                                     f"Revert the regression from {culprit[:12]}")  # fmt: skip
        delivery = await self.steps.step("deliver", io.DELIVER, handover, io.Delivery)
        return revert.message, gates, delivery

    async def _policy_fix(self, inp: InvestigationInput, prep: InvPrepared, goal: str,
                          summary: str = "") -> tuple[list[Gate], io.Delivery]:  # fmt: skip
        """The policy's fix: a forward run (a child run, its usage counted here) on the bad
        commit — from the written reproduction when there is one, so the new test ships."""
        if inp.policy is None:
            raise self.steps.fail("BadInput", "a policy fix needs a policy")
        start = self._reproducer.snapshot
        task = runs.TaskInput(
            run_id=f"{inp.run_id}-fix", repo=inp.repo, goal=goal, policy=inp.policy,
            base_ref=prep.run.base_sha, test_command=prep.test_command, trace_id=inp.trace_id,
            test_timeout_s=inp.test_timeout_s, heartbeat_timeout_s=inp.heartbeat_timeout_s,
            queues=inp.queues, environment=inp.environment, start_snapshot=start,
        )  # fmt: skip
        result = await self.steps.child(
            "fix", runs.FORWARD_WORKFLOW, task, TaskResult, child_id=task.run_id,
            search_attributes=search.for_child("task", task.repo, inp.policy.name),
            summary=f"[fix of {inp.run_id}] {summary or goal[:160]}", child_run=True,
        )  # fmt: skip
        return result.gates, io.Delivery(
            result.branch or "", result.commit or "", result.patch_ref or "", 0,
            pull_request_url=result.pull_request_url,
        )  # fmt: skip

    async def _latent(self, inp: InvestigationInput, prep: InvPrepared) -> InvestigationResult:
        """A written reproduction that fails at every commit: a latent bug, not a regression.
        No bisection: the policy fixes it as a forward task whose target is the new test."""
        written = self._reproducer.written
        if inp.policy is None or written is None:
            raise self.steps.fail("BadInput", "a latent bug needs a policy to fix it")
        gates, delivery = await self._policy_fix(inp, prep, written.latent_goal, "latent bug")
        fix = f"fixed by the {inp.policy.name} policy (run {inp.run_id}-fix); no culprit: latent"
        report = await self._report(inp, prep, fix, gates, delivery)
        return self._result(gates, delivery, report)

    def _result(self, gates: list[Gate], delivery: io.Delivery | None, report: inv.ReportOutput,
                **found: Any) -> InvestigationResult:  # fmt: skip
        done = delivery or io.Delivery("", "", "", 0)
        return InvestigationResult(
            gates=gates, patch_ref=done.patch_ref or None, branch=done.branch or None,
            commit=done.commit or None, pull_request_url=done.pull_request_url,
            probes=len(self._prober.records), report_ref=report.report_ref, **found,
        )  # fmt: skip

    def _report(
        self, inp: InvestigationInput, prep: InvPrepared, fix: str, gates: list[Gate],
        delivery: io.Delivery | None, culprit: str | None = None,
        where: inv.Localized | None = None, confidence: str = "latent",
        suspects: Sequence[str] = (),
    ) -> Awaitable[inv.ReportOutput]:  # fmt: skip
        """The root-cause report; with no culprit, of a latent bug. The event kept by the
        prepare step is read there."""
        found = where or inv.Localized("", "", [], "")
        arg = inv.ReportInput(
            inp.run_id, inp.kind, None if prep.event_ref else inp.event, prep.reproduce,
            prep.frame_files, prep.refused_frames, culprit, found.author, found.message,
            confidence, list(suspects), list(self._prober.records), fix, gates,
            where.hunks_ref if where else None, (delivery and delivery.patch_ref) or None,
            (delivery and delivery.branch) or None, self._reproducer.written,
            latent=culprit is None, event_ref=prep.event_ref,
        )  # fmt: skip
        return self.steps.step("report", inv.REPORT, arg, inv.ReportOutput)

    def _unverified(self, result: InvestigationResult, fix: str) -> Exception:
        """The run's failure when the fix did not verify; the report and culprit are kept."""
        self.steps.keep_result(replace(result, environment=self.steps.environment))
        if self._suite_problem:
            return self.steps.fail(
                "SuiteDoesNotRun",
                f"the fix could not be verified: the suite cannot run at the bad commit "
                f"({self._suite_problem}), with or without the fix; {runs.SUITE_HOW_TO_FIX}",
            )
        return self.steps.fail("VerificationFailed", f"the fix did not verify: {fix}")
