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
    from contracts.agent import AGENT_WORKFLOW, AgentInput, AgentOutput
    from contracts.budget import Budget
    from contracts.investigation import (
        CHECK_REPRODUCTION,
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
        ReproductionCheck,
        ReproductionInput,
        RevertInput,
        SentryEvent,
    )  # fmt: skip
    from contracts.runs import (
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
    from contracts.runs import SUITE_HOW_TO_FIX as HOW_TO_FIX
    from workflows import search
    from workflows.bisect import Multisection
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
        self._files: dict[str, str] = {}
        """Files written into every probe's workspace (a drift claim's test, a written
        reproduction)."""
        self._written: ReproductionCheck | None = None
        self._written_snapshot: str | None = None
        """The bad commit plus the reproducer's test: a policy's fix starts from it."""

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
                       files=self._files or inp.reproduction_files),
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
                            inp.kind, when, inp.good_ref, inp.environment, inp.suite_command,
                            event),
            InvPrepared, limit=timedelta(minutes=15), heartbeat=None,
        )  # fmt: skip
        prep = replace(prep, run=await self._prepare_environment(prep.run, inp.heartbeat_timeout_s))
        bad = prep.run.base_sha
        if inp.kind == "performance":
            if prep.good_sha is None:
                raise self._fail("BadInput", "a performance investigation needs good_ref")
            self._reference = prep.good_sha
        explicit = bool(inp.test_command or inp.test_id)
        can_write = (
            inp.event is not None and inp.kind == "regression" and not explicit
            and prep.target is not None
        )  # fmt: skip
        if can_write and inp.write_reproduction and workflow.patched("reproducer"):
            prep = await self._write_reproduction(inp, prep)
        seen = await self._confirm(inp, prep)
        if (seen is not None and can_write and self._written is None
                and inp.policy is not None and workflow.patched("reproducer")):  # fmt: skip
            # No existing test fails the way the event did: the policy writes one.
            prep = await self._write_reproduction(inp, prep)
            seen = await self._confirm(inp, prep)
        if seen is not None:
            hint = f"; if the suite cannot run here, {HOW_TO_FIX}" if seen.outcome == "skip" else ""
            if can_write and inp.policy is None:
                hint += ("; no existing test reproduces the event, and a policy (or "
                         "reproduce.test_command) would let Ratchet write one")  # fmt: skip
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
        rounds = await self._find_good(inp, prep, search, latent_ok=self._written is not None)
        if rounds < 0:  # the written reproduction fails at every commit: nothing to bisect
            return await self._latent(inp, prep, event)
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
                        delivery.branch if delivery else None, self._written),
            ReportOutput, limit=QUICK, heartbeat=None,
        )  # fmt: skip
        result = RunResult(
            gates=gates, patch_ref=delivery.patch_ref if delivery else None,
            branch=delivery.branch if delivery else None,
            commit=delivery.commit if delivery else None,
            culprit=Culprit(culprit, where.author, where.message[:2000], confidence),
            rounds=rounds, probes=len(self._probes), report_ref=report.report_ref,
            pull_request_url=delivery.pull_request_url if delivery else None,
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
                         search: Multisection, *, latent_ok: bool = False) -> int:  # fmt: skip
        """Without a good_ref, probe k ancestors a round at doubling distances until one passes.
        -1 when `latent_ok` and the problem shows at every commit probed back to the first (or
        at the good_ref): a latent bug."""
        commits = search.commits
        if prep.good_sha is not None and self._reference is not None:
            search.record(commits[0], "good")  # the reference itself
            return 0
        if prep.good_sha is not None:
            first = await self._probe(inp, prep, commits[0], 0, 0)
            if first.outcome == "bad" and latent_ok:
                return -1
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
                if latent_ok and all(search.results.get(c) == "bad" for c in commits[:1]):
                    return -1
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
        result = await self._policy_fix(inp, prep, goal + self._test_goal(),
                                        goal.splitlines()[0][:160])  # fmt: skip
        delivery = Delivery(result.branch or "", result.commit or "", result.patch_ref or "", 0,
                            pull_request_url=result.pull_request_url)  # fmt: skip
        return (
            f"fixed by the {inp.policy.name} policy (run {inp.run_id}-fix)",
            result.gates,
            delivery,
        )

    async def _policy_fix(
        self, inp: InvestigationInput, prep: InvPrepared, goal: str, summary: str
    ) -> RunResult:
        """The policy's fix: a forward run (a child run, its usage counted here) on the bad
        commit — from the written reproduction when there is one, so the new test ships."""
        if inp.policy is None:
            raise self._fail("BadInput", "a policy fix needs a policy")
        task = TaskInput(
            run_id=f"{inp.run_id}-fix", repo=inp.repo, goal=goal, policy=inp.policy,
            base_ref=prep.run.base_sha, test_command=prep.test_command, trace_id=inp.trace_id,
            test_timeout_s=inp.test_timeout_s, heartbeat_timeout_s=inp.heartbeat_timeout_s,
            queues=inp.queues, environment=inp.environment, start_snapshot=self._written_snapshot,
        )  # fmt: skip
        result: RunResult = await self._child(
            "fix", FORWARD_WORKFLOW, task, RunResult, child_id=task.run_id,
            search_attributes=search.for_child("task", task.repo, inp.policy.name),
            summary=f"[fix of {inp.run_id}] {summary}", child_run=True,
        )  # fmt: skip
        return result

    async def _confirm(self, inp: InvestigationInput, prep: InvPrepared) -> ProbeResult | None:
        """Confirm the problem at the bad commit, twice, so a flaky failure is not bisected:
        None when it shows, else the probe that did not show it."""
        for attempt in range(1 if inp.kind == "performance" else 2):
            seen = await self._probe(inp, prep, prep.run.base_sha, attempt, 0)
            if seen.outcome != "bad":
                return seen
        return None

    async def _write_reproduction(self, inp: InvestigationInput, prep: InvPrepared) -> InvPrepared:
        """The policy writes a test that must fail the way the event failed; Ratchet runs it
        and reads its traceback, and a mismatch goes back to the policy, a bounded number of
        times. The confirmed test is the reproduction from here on."""
        if inp.policy is None or prep.target is None or prep.evidence_ref is None:
            raise self._fail("BadInput", "writing a reproduction needs a policy and an event")
        snapshot, feedback_ref = prep.run.base_sha, None
        attempts = max(1, inp.reproducer_attempts)
        for attempt in range(1, attempts + 1):
            out: AgentOutput = await self._child(
                "reproducer", AGENT_WORKFLOW,
                AgentInput(
                    run=prep.run, role="reproduce", provider=inp.policy.name,
                    goal=f"Reproduce the production error: {prep.target.describe()}.",
                    plan_ref=prep.evidence_ref, feedback_ref=feedback_ref, snapshot=snapshot,
                    test_command=prep.test_command, test_timeout_s=inp.test_timeout_s,
                    budget=Budget(), usage=self._state.usage,
                    started_at=workflow.info().start_time.isoformat(),
                    queues=inp.queues, heartbeat_timeout_s=inp.heartbeat_timeout_s,
                    policy=inp.policy, script_key=f"reproduce.{attempt}",
                ),
                AgentOutput, child_id=f"{inp.run_id}-reproduce-{attempt}", round_=attempt,
            )  # fmt: skip
            self._state = replace(self._state, usage=out.usage)
            if out.stop in ("failed", "loop", "cancelled"):
                raise self._fail(out.error_type or "ReproducerFailed",
                                 f"the reproducer stopped ({out.stop}): {out.reason}")  # fmt: skip
            snapshot = out.snapshot
            check: ReproductionCheck = await self._step(
                "check reproduction", CHECK_REPRODUCTION,
                ReproductionInput(prep.run, snapshot, prep.target, inp.test_timeout_s),
                ReproductionCheck, limit=timedelta(seconds=inp.test_timeout_s + 120),
                heartbeat=timedelta(seconds=inp.heartbeat_timeout_s), round_=attempt,
            )  # fmt: skip
            if check.matched:
                self._written, self._written_snapshot, self._files = check, snapshot, check.files
                self._record_snapshot("reproduction", snapshot)
                return replace(prep, reproduce=check.command)
            feedback_ref = check.feedback_ref
        raise self._fail(
            "NotReproduced",
            f"the reproducer's test did not fail the way the event did in {attempts} attempts: "
            f"{check.detail}",
        )

    def _test_goal(self) -> str:
        written = self._written
        if written is None:
            return ""
        paths = ", ".join(written.files)
        return (f" The new test {paths} reproduces the production error ({written.detail}); "
                "make it pass without weakening it, and keep it.")  # fmt: skip

    async def _latent(
        self, inp: InvestigationInput, prep: InvPrepared, event: SentryEvent | None
    ) -> RunResult:
        """A written reproduction that fails at every commit: a latent bug, not a regression.
        No bisection: the policy fixes it as a forward task whose target is the new test."""
        if inp.policy is None:
            raise self._fail("BadInput", "a latent bug needs a policy to fix it")
        goal = ("Fix the production error the new test reproduces; it fails at every commit of "
                "the history, so no commit introduced it." + self._test_goal())  # fmt: skip
        result = await self._policy_fix(inp, prep, goal, "latent bug")
        fix = f"fixed by the {inp.policy.name} policy (run {inp.run_id}-fix); no culprit: latent"
        report: ReportOutput = await self._step(
            "report", REPORT,
            ReportInput(inp.run_id, inp.kind, event, prep.reproduce, prep.frame_files,
                        prep.refused_frames, None, "", "", "latent", [], list(self._probes), fix,
                        result.gates, None, result.patch_ref, result.branch, self._written,
                        latent=True),
            ReportOutput, limit=QUICK, heartbeat=None,
        )  # fmt: skip
        return RunResult(
            gates=result.gates, patch_ref=result.patch_ref, branch=result.branch,
            commit=result.commit, probes=len(self._probes), report_ref=report.report_ref,
            pull_request_url=result.pull_request_url,
        )  # fmt: skip
