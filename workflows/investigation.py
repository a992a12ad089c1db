"""InvestigationWorkflow: reproduce → bisect (k parallel probes a round) → localize → fix (the
revert of the guilty hunks without a model; a forward run with one) → test → verify → deliver a
root-cause report.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from gym.diagnose import HOW_TO_FIX
    from workflows import search
    from workflows.bisect import Multisection
    from workflows.investigation_shared import (
        HISTORY,
        INV_PREPARE,
        LOCALIZE,
        PROBE,
        REPORT,
        REVERT,
        EventSignal,
        History,
        HistoryInput,
        InvestigationInput,
        InvPrepared,
        InvPrepareInput,
        Localized,
        LocalizeInput,
        ProbeInput,
        ProbeRecord,
        ProbeResult,
        ReportInput,
        ReportOutput,
        RevertInput,
    )  # fmt: skip
    from workflows.shared import (
        DELIVER,
        FORWARD_WORKFLOW,
        LINT,
        RUN_TESTS,
        VERIFY,
        Culprit,
        DeliverInput,
        Delivery,
        Gate,
        LintInput,
        LintReport,
        PatchOutput,
        RunResult,
        RunState,
        TaskInput,
        TestInput,
        TestReport,
        VerifyInput,
        VerifyOutput,
    )  # fmt: skip
    from workflows.steps import StepRunner

QUICK = timedelta(minutes=5)
MAX_EVENTS = 50


@workflow.defn(name="InvestigationWorkflow")
class InvestigationWorkflow(StepRunner):
    def __init__(self) -> None:
        self._state = RunState(run_id="", kind="investigation", trace_id="", policy_label="")
        self._probes: list[ProbeRecord] = []
        self._suite_problem = ""
        """Why the suite cannot run at the bad commit ("" when it runs)."""
        self._reference: str | None = None
        """Performance mode: the good commit every probe measures itself against."""

    @workflow.query(name="state")
    def state(self) -> RunState:
        return self._state

    @workflow.signal(name="event")
    def event(self, signal: EventSignal) -> None:
        """A repeat of the issue joins the running investigation (redeliveries count once)."""
        event_id = signal.event.event_id
        if event_id and event_id not in self._state.events:
            events = [*self._state.events, event_id][-MAX_EVENTS:]
            self._state = replace(self._state, events=events)

    @workflow.run
    async def run(self, inp: InvestigationInput) -> RunResult:
        label = inp.policy.name if inp.policy else "none (revert the culprit)"
        events = [inp.event.event_id] if inp.event and inp.event.event_id else []
        self._state = replace(self._state, run_id=inp.run_id, trace_id=inp.trace_id,
                              policy_label=label, events=events)  # fmt: skip
        self._queues = inp.queues
        self._started()
        try:
            result = await self._investigate(inp)
        except asyncio.CancelledError:
            # The issue was resolved or ignored in Sentry: stop, keeping what was found.
            self._set_phase("cancelled")
            raise
        except Exception:
            self._set_phase("failed")
            raise
        result = replace(result, usage=self._state.usage)
        self._set_phase("completed", result=result)
        return result

    async def _probe(self, inp: InvestigationInput, prep: InvPrepared, sha: str, slot: int,
                     round_: int) -> ProbeResult:  # fmt: skip
        runs = inp.benchmark_runs if inp.kind == "performance" else 1
        result: ProbeResult = await self._step(
            "probe", PROBE,
            ProbeInput(prep.run, sha, prep.reproduce, inp.kind, slot, inp.test_timeout_s, runs,
                       reference=self._reference, max_slowdown=inp.max_slowdown,
                       files=inp.reproduction_files),
            ProbeResult, limit=timedelta(seconds=(inp.test_timeout_s + 60) * runs + 60),
            heartbeat=timedelta(seconds=inp.heartbeat_timeout_s), round_=round_,
        )  # fmt: skip
        self._probes.append(ProbeRecord(round_, sha, result.outcome, result.detail))
        return result

    async def _probe_all(
        self, inp: InvestigationInput, prep: InvPrepared, shas: list[str], round_: int
    ) -> list[ProbeResult]:
        """One round: the probes run in parallel, each in its own workspace slot."""
        return list(await asyncio.gather(*(
            self._probe(inp, prep, sha, slot, round_) for slot, sha in enumerate(shas)
        )))  # fmt: skip

    async def _investigate(self, inp: InvestigationInput) -> RunResult:
        when = workflow.now().replace(microsecond=0).isoformat()
        event = inp.event
        prep: InvPrepared = await self._step(
            "reproduce", INV_PREPARE,
            InvPrepareInput(inp.run_id, inp.repo, inp.bad_ref, event.release if event else "",
                            event.frames if event else [], inp.test_command, inp.test_id,
                            inp.kind, when, inp.good_ref, inp.environment, inp.suite_command),
            InvPrepared, limit=timedelta(minutes=15), heartbeat=None,
        )  # fmt: skip
        prep = replace(prep, run=await self._prepare_environment(prep.run, inp.heartbeat_timeout_s))
        bad = prep.run.base_sha
        if inp.kind == "performance":
            if prep.good_sha is None:
                raise self._fail("BadInput", "a performance investigation needs good_ref")
            self._reference = prep.good_sha
        # Confirm the problem at the bad commit, twice, so a flaky failure is not bisected.
        for attempt in range(1 if inp.kind == "performance" else 2):
            seen = await self._probe(inp, prep, bad, attempt, 0)
            if seen.outcome != "bad":
                hint = (
                    f"; if the suite cannot run here, {HOW_TO_FIX}"
                    if seen.outcome == "skip"
                    else ""
                )
                raise self._fail(
                    "NotReproduced",
                    f"the problem does not reproduce at {bad[:12]} ({seen.outcome}: "
                    f"{seen.detail}){hint}",
                )
        history: History = await self._step(
            "history", HISTORY, HistoryInput(prep.run, prep.good_sha, inp.max_history), History,
            limit=QUICK, heartbeat=None,
        )  # fmt: skip
        # Benchmarks running side by side would slow each other down: one probe at a time.
        k = 1 if inp.kind == "performance" else max(1, inp.parallel_probes)
        search = Multisection(history.commits, k=k)
        search.record(bad, "bad")
        rounds = await self._find_good(inp, prep, search)
        while not search.done():
            rounds += 1
            batch = search.next_probes()
            results = await self._probe_all(inp, prep, batch, rounds)
            for probed in results:
                search.record(probed.sha, probed.outcome)
        culprit, confidence, suspects = search.verdict()
        where: Localized = await self._step(
            "localize", LOCALIZE, LocalizeInput(prep.run, culprit, prep.frame_files), Localized,
            limit=QUICK, heartbeat=None,
        )  # fmt: skip
        fix, gates, delivery = await self._fix(inp, prep, culprit, where)
        report: ReportOutput = await self._step(
            "report", REPORT,
            ReportInput(inp.run_id, inp.kind, event, prep.reproduce, prep.frame_files,
                        prep.refused_frames, culprit, where.author, where.message, confidence,
                        suspects, list(self._probes), fix, gates, where.hunks_ref,
                        delivery.patch_ref if delivery else None,
                        delivery.branch if delivery else None),
            ReportOutput, limit=QUICK, heartbeat=None,
        )  # fmt: skip
        result = RunResult(
            gates=gates, patch_ref=delivery.patch_ref if delivery else None,
            branch=delivery.branch if delivery else None,
            commit=delivery.commit if delivery else None,
            culprit=Culprit(culprit, where.author, where.message[:2000], confidence),
            rounds=rounds, probes=len(self._probes), report_ref=report.report_ref,
        )  # fmt: skip
        if delivery is None:
            self._state = replace(
                self._state, result=replace(result, environment=self._environment)
            )
            if self._suite_problem:
                raise self._fail(
                    "SuiteDoesNotRun",
                    f"the fix could not be verified: the suite cannot run at the bad commit "
                    f"({self._suite_problem}), with or without the fix; {HOW_TO_FIX}",
                )
            raise self._fail("VerificationFailed", f"the fix did not verify: {fix}")
        return result

    async def _find_good(self, inp: InvestigationInput, prep: InvPrepared,
                         search: Multisection) -> int:  # fmt: skip
        """Without a good_ref, probe k ancestors a round at doubling distances until one passes."""
        commits = search.commits
        if prep.good_sha is not None and self._reference is not None:
            search.record(commits[0], "good")  # the reference itself
            return 0
        if prep.good_sha is not None:
            first = await self._probe(inp, prep, commits[0], 0, 0)
            if first.outcome != "good":
                raise self._fail("GoodRefFails", f"good_ref {commits[0][:12]} is not good: "
                                 f"{first.outcome} ({first.detail})")  # fmt: skip
            search.record(commits[0], "good")
            return 0
        rounds, distance = 0, 1
        while True:
            picks = []
            for _ in range(max(1, inp.parallel_probes)):
                if distance >= len(commits):
                    break
                picks.append(commits[-1 - distance])
                distance *= 2
            if not picks and distance >= len(commits) and commits[0] not in search.results:
                picks = [commits[0]]
            if not picks:
                raise self._fail("NoGoodCommit", f"no commit in the last {len(commits)} passes")
            rounds += 1
            results = await self._probe_all(inp, prep, picks, rounds)
            for result in results:
                search.record(result.sha, result.outcome)
            goods = [commits.index(r.sha) for r in results if r.outcome == "good"]
            if goods:
                # Narrow the range to start at the nearest good ancestor.
                start = max(goods)
                search.commits = commits[start:]
                return rounds

    async def _fix(self, inp: InvestigationInput, prep: InvPrepared, culprit: str,
                   where: Localized) -> tuple[str, list[Gate], Delivery | None]:  # fmt: skip
        if inp.policy is not None:
            return await self._fix_with_policy(inp, prep, culprit, where)
        run = prep.run
        revert: PatchOutput = await self._step(
            "fix", REVERT, RevertInput(run, culprit, where.files), PatchOutput, limit=QUICK,
            heartbeat=None,
        )  # fmt: skip
        self._record_snapshot("revert-1", revert.snapshot)

        def tests(sha: str, label: str) -> TestInput:
            return TestInput(run, sha, prep.test_command, inp.test_timeout_s, label,
                             grade_with_base_tests=label != "baseline")  # fmt: skip

        limit, beat = (
            timedelta(seconds=inp.test_timeout_s + 120),
            timedelta(seconds=inp.heartbeat_timeout_s),
        )
        base_tests = tests(run.base_sha, "baseline")
        baseline: TestReport = await self._step(
            "baseline", RUN_TESTS, base_tests, TestReport, limit=limit, heartbeat=beat
        )
        self._suite_problem = baseline.cannot_run
        fixed_tests = tests(revert.snapshot, "test")
        report: TestReport = await self._step(
            "test", RUN_TESTS, fixed_tests, TestReport, limit=limit, heartbeat=beat
        )
        base_lint: LintReport = await self._step(
            "baseline lint",
            LINT,
            LintInput(run, run.base_sha),
            LintReport,
            limit=QUICK,
            heartbeat=None,
        )
        lint: LintReport = await self._step(
            "lint", LINT, LintInput(run, revert.snapshot), LintReport, limit=QUICK, heartbeat=None
        )
        verdict: VerifyOutput = await self._step(
            "verify", VERIFY, VerifyInput(run, revert.snapshot, report, baseline, lint, base_lint),
            VerifyOutput, limit=QUICK, heartbeat=None,
        )  # fmt: skip
        again = await self._probe(inp, prep, revert.snapshot, 0, 0)
        detail = f"the reproduction on the fix: {again.outcome} ({again.detail})"
        gates = [*verdict.gates, Gate("reproduction", again.outcome == "good", detail)]
        if not all(g.passed for g in gates):
            return revert.message, gates, None
        delivery: Delivery = await self._step(
            "deliver", DELIVER,
            DeliverInput(run, revert.snapshot, f"Revert the regression from {culprit[:12]}"),
            Delivery, limit=QUICK, heartbeat=None,
        )  # fmt: skip
        return revert.message, gates, delivery

    async def _fix_with_policy(
        self, inp: InvestigationInput, prep: InvPrepared, culprit: str, where: Localized
    ) -> tuple[str, list[Gate], Delivery | None]:
        """A model's fix: a forward run on the bad commit, told what the bisection found."""
        if inp.policy is None:
            raise self._fail("BadInput", "a policy fix needs a policy")
        goal = (
            f"Fix the regression introduced by commit {culprit[:12]} in "
            f"{', '.join(where.files) or 'the repository'}. The reproduction is `{prep.reproduce}`;"
            " it fails at the current commit and passed before the culprit. Keep the culprit's "
            "intent where possible."
        )
        task = TaskInput(
            run_id=f"{inp.run_id}-fix", repo=inp.repo, goal=goal, policy=inp.policy,
            base_ref=prep.run.base_sha, test_command=prep.test_command, trace_id=inp.trace_id,
            test_timeout_s=inp.test_timeout_s, heartbeat_timeout_s=inp.heartbeat_timeout_s,
            queues=inp.queues, environment=inp.environment,
        )  # fmt: skip
        result: RunResult = await self._child(
            "fix", FORWARD_WORKFLOW, task, RunResult, child_id=task.run_id,
            search_attributes=search.for_child("task", task.repo, task.policy.name),
            summary=f"[fix of {inp.run_id}] {goal.splitlines()[0][:160]}", child_run=True,
        )  # fmt: skip
        delivery = Delivery(result.branch or "", result.commit or "", result.patch_ref or "", 0)
        return f"fixed by the {inp.policy.name} policy (run {task.run_id})", result.gates, delivery
