"""Investigation steps as activities: reproduce, read history, probe a commit, localize, revert,
write the report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.converter import value_to_type

from activities.common import tag_span
from activities.envs import sandbox_for
from activities.errors import permanent_errors
from activities.runner import RunnerConfig
from agents.context import tracked_files
from agents.prompts import fix_goal
from contracts.investigation import (
    CHECK_REPRODUCTION,
    HISTORY,
    INV_PREPARE,
    LOCALIZE,
    PROBE,
    REPORT,
    REVERT,
    History,
    HistoryInput,
    InvPrepared,
    InvPrepareInput,
    Localized,
    LocalizeInput,
    ProbeInput,
    ProbeResult,
    ReportInput,
    ReportOutput,
    ReproductionCheck,
    ReproductionInput,
    RevertInput,
    Target,
)
from contracts.runs import RunRef
from contracts.sentry import SentryEvent
from contracts.steps import PatchOutput
from gym import investigate, perf, reproduction
from gym.config import detect_test_command, load_config
from gym.errors import BadRepository
from gym.forkserver import ForkServers
from gym.paths import write_safely
from gym.report import render_report
from gym.runner import Limits
from gym.runners import detect_runner, select
from gym.snapshots import Snapshots
from gym.testing import run_tests
from gym.workspace import is_remote, resolve_local
from ratchet.artifacts import ArtifactStore


class InvestigationActivities:
    def __init__(self, *, home: Path, store: ArtifactStore, runner: RunnerConfig) -> None:
        self.home = home
        self.store = store
        self.runner = runner
        self.snapshots = Snapshots(home, store)
        self.forks = ForkServers()  # a warm interpreter per pooled probe slot
        self.mirrors = self.snapshots.mirrors

    @activity.defn(name=INV_PREPARE)
    @permanent_errors
    async def prepare(self, arg: InvPrepareInput) -> InvPrepared:
        tag_span(arg.run_id)
        if arg.event is not None:  # the event names its release and frames once, in itself
            arg = replace(arg, release=arg.event.release, frames=arg.event.frames)
        bad_ref = arg.bad_ref
        if not is_remote(arg.repo):
            # The event's release, when the repository knows it, is where the error happened.
            for candidate in investigate.release_refs(arg.release):
                try:
                    resolve_local(arg.repo, candidate)
                except BadRepository:
                    continue
                bad_ref = candidate
                break
        mirror, bad = await asyncio.to_thread(self.mirrors.sync, arg.repo, bad_ref)
        run = RunRef(arg.run_id, arg.repo, str(mirror), bad, arg.when, arg.environment)
        ws = await asyncio.to_thread(self.snapshots.materialize, run, bad, "base")
        config = load_config(ws)
        test_command = arg.suite_command or detect_test_command(ws, config)[0]
        pairs = [(f.filename, f.abs_path) for f in arg.frames if f.in_app]
        files, refused = investigate.resolve_frame_files(ws, pairs)
        if arg.test_id:  # in its runner's own form (gym/runners.py)
            runner = config.test_runner or detect_runner(test_command, ws)
            picked = select(test_command, runner, [arg.test_id], ws)
            reproduce = picked or investigate.pytest_command([arg.test_id])
        elif arg.test_command:
            reproduce = arg.test_command
        elif arg.kind == "performance" and config.benchmark_command:
            reproduce = config.benchmark_command
        elif arg.kind == "invariants":
            if not config.invariants_command:
                raise BadRepository(
                    "an invariants investigation needs reproduce.test_command or "
                    "[invariants] command in ratchet.toml"
                )
            reproduce = config.invariants_command
        else:
            tests = investigate.tests_for(ws, files, tracked_files(ws)) if files else []
            reproduce = investigate.pytest_command(tests) if tests else test_command
        good = None
        if arg.good_ref:
            good = (await asyncio.to_thread(self.mirrors.sync, arg.repo, arg.good_ref))[1]
        evidence_ref, target, event_ref = None, None, None
        if arg.event is not None:
            evidence_ref, target = self._evidence(ws, arg.event)
            event_ref = self.store.put_text(json.dumps(asdict(arg.event)))
        return InvPrepared(run, reproduce, test_command, files, refused, activity.info().attempt,
                           good, evidence_ref, target, event_ref)  # fmt: skip

    def _evidence(self, ws: Path, event: SentryEvent) -> tuple[str, Target]:
        """The event as the reproducer reads it, and how it failed (its innermost in-app frame,
        resolved to a repository file)."""
        frames, target_file, target_function = [], "", ""
        for frame in event.frames:
            found: list[str] = []
            if frame.in_app:
                found, _ = investigate.resolve_frame_files(ws, [(frame.filename, frame.abs_path)])
            if found:
                target_file, target_function = found[0], frame.function
            context = [*frame.pre_context, f"> {frame.context_line}", *frame.post_context]
            frames.append(reproduction.EventFrame(
                found[0] if found else "", frame.filename, frame.function, frame.lineno,
                frame.in_app, context if frame.context_line else [], frame.vars,
            ))  # fmt: skip
        text = reproduction.evidence(
            exception_type=event.exception_type, exception_value=event.exception_value,
            frames=frames, release=event.release, environment=event.environment,
            tags=event.tags, title=event.title,
        )  # fmt: skip
        return self.store.put_text(text), Target(event.exception_type, target_file, target_function)

    @activity.defn(name=CHECK_REPRODUCTION)
    @permanent_errors
    async def check_reproduction(self, arg: ReproductionInput) -> ReproductionCheck:
        """Run the reproducer's new tests at the bad commit; they must fail as the event did."""
        tag_span(arg.run.run_id)
        attempt = activity.info().attempt
        changed = await asyncio.to_thread(self.snapshots.changed_files, arg.run, arg.snapshot)
        tests, refused = reproduction.test_paths([(c.status, c.path) for c in changed])
        ws = await asyncio.to_thread(self.snapshots.materialize, arg.run, arg.snapshot, "reproduce")
        files = {t: (ws / t).read_text(errors="replace") for t in tests}
        if not refused and sum(len(c) for c in files.values()) > reproduction.MAX_TEST_BYTES:
            refused = f"the new tests are over {reproduction.MAX_TEST_BYTES} bytes: write one"
        if refused:
            return ReproductionCheck(False, refused, self.store.put_text(refused),
                                     attempt=attempt)  # fmt: skip
        command = reproduction.command_for(tests)
        run = await run_tests(
            command, ws, limits=replace(self.runner.limits, timeout_s=arg.timeout_s),
            sandbox=await sandbox_for(self.snapshots, self.runner, arg.run, ws, arg.run.base_sha),
            reruns=0, tick=activity.heartbeat,
        )  # fmt: skip
        target = arg.target
        verdict = reproduction.judge(
            run.result.output.decode(errors="replace"), run.result.exit_code,
            exception_type=target.exception_type, file=target.file, function=target.function,
            tests=tests,
        )  # fmt: skip
        feedback = None  # the verdict quotes the test's output: redacted where it leaves the store
        if not verdict.matched:
            feedback = self.store.put_text(
                f"The reproduction was refused: {verdict.detail}.\n\nIts run at this commit "
                f"(tail):\n{verdict.failure}"
            )
        detail, failure = self.store.redact(verdict.detail), self.store.redact(verdict.failure)
        check = ReproductionCheck(verdict.matched, detail, feedback, files, command, failure,
                                  attempt)  # fmt: skip
        return replace(check, latent_goal=fix_goal(None, [], command, check))

    @activity.defn(name=HISTORY)
    @permanent_errors
    async def history(self, arg: HistoryInput) -> History:
        tag_span(arg.run.run_id)
        mirror = await asyncio.to_thread(self.snapshots.mirror, arg.run)
        commits = await asyncio.to_thread(
            investigate.first_parent_history, mirror, arg.good, arg.run.base_sha, arg.max_commits
        )
        return History(commits, activity.info().attempt)

    @activity.defn(name=PROBE)
    @permanent_errors
    async def probe(self, arg: ProbeInput) -> ProbeResult:
        """Run the reproduction at one commit: good, bad, or skip (broken build, flaky, timeout)."""
        tag_span(arg.run.run_id)
        with self.snapshots.pooled(arg.run, "probe") as path:
            ws = await asyncio.to_thread(self.snapshots.materialize_at, arg.run, arg.sha, path)
            return await self._probe(arg, ws)

    async def _probe(self, arg: ProbeInput, ws: Path) -> ProbeResult:
        for path, content in arg.files.items():
            write_safely(ws, path, content)
        limits = replace(self.runner.limits, timeout_s=arg.timeout_s)
        if arg.kind == "performance":
            return await self._measure(arg, ws, limits)
        # A probe runs in the environment of its own commit's key files.
        sandbox = await sandbox_for(self.snapshots, self.runner, arg.run, ws, arg.sha)
        run = await run_tests(
            arg.command, ws, limits=limits, sandbox=sandbox, reruns=arg.reruns,
            tick=activity.heartbeat, forks=self.forks,
        )  # fmt: skip
        result, attempt = run.result, activity.info().attempt
        if result.timed_out or result.killed_by:
            return ProbeResult(arg.sha, "skip", f"killed: {', '.join(result.killed_by)}",
                               result.duration_s, attempt=attempt)  # fmt: skip
        failing = [t.id for t in run.tests if t.outcome in ("failed", "error")]
        if run.flaky and not failing:
            return ProbeResult(arg.sha, "skip", f"flaky: {', '.join(run.flaky[:3])}",
                               result.duration_s, attempt=attempt)  # fmt: skip
        if result.exit_code == 0:
            return ProbeResult(arg.sha, "good", "passed", result.duration_s, attempt=attempt)
        errors = len(failing) - sum(1 for t in run.tests if t.outcome == "failed")
        # A failed test is a verdict whatever the exit code (cargo's is 101); without one,
        # pytest's 2-5 (collection errors, usage, no tests), shells' 126/127 and a build that
        # fails (only errors) are none.
        if errors == len(failing) and (result.exit_code != 1 or errors):
            tail = result.output[-200:].decode(errors="replace").strip().splitlines()[-1:] or [""]
            said = self.store.redact(tail[0][:150])  # a probe's detail goes into the history
            return ProbeResult(arg.sha, "skip", f"does not build (exit {result.exit_code}): "
                               f"{said}", result.duration_s, attempt=attempt)  # fmt: skip
        shown = ", ".join(failing[:3]) or f"exit {result.exit_code}"
        return ProbeResult(arg.sha, "bad", f"failing: {shown}", result.duration_s, attempt=attempt)

    async def _measure(self, arg: ProbeInput, ws: Path, limits: Limits) -> ProbeResult:
        """Performance: the commit and the good reference, interleaved in one probe."""
        attempt = activity.info().attempt
        if arg.reference is None or arg.reference == arg.sha:
            return ProbeResult(arg.sha, "good", "the reference itself", 0.0, attempt=attempt)
        with self.snapshots.pooled(arg.run, "reference") as path:
            ref = await asyncio.to_thread(self.snapshots.materialize_at, arg.run,
                                          arg.reference, path)  # fmt: skip
            return await self._compare(arg, ws, ref, limits, attempt)

    async def _compare(self, arg: ProbeInput, ws: Path, ref: Path, limits: Limits,
                       attempt: int) -> ProbeResult:  # fmt: skip
        started = asyncio.get_running_loop().time()
        sandbox = await sandbox_for(self.snapshots, self.runner, arg.run, ws, arg.sha)
        samples = await perf.sample(arg.command, ref, ws, runs=arg.runs, limits=limits,
                                    sandbox=sandbox)  # fmt: skip
        elapsed = asyncio.get_running_loop().time() - started
        if samples.failures or len(samples.patched) < 2 or len(samples.base) < 2:
            why = ", ".join(samples.failures) or "too few runs"
            return ProbeResult(arg.sha, "skip", f"benchmark did not run: {why}", elapsed,
                               attempt=attempt)  # fmt: skip
        verdict = perf.compare(samples.base, samples.patched, max_slowdown=arg.max_slowdown)
        return ProbeResult(arg.sha, "bad" if verdict.slower else "good", verdict.detail, elapsed,
                           samples.patched, attempt)  # fmt: skip

    @activity.defn(name=LOCALIZE)
    @permanent_errors
    async def localize(self, arg: LocalizeInput) -> Localized:
        tag_span(arg.run.run_id)
        mirror = await asyncio.to_thread(self.snapshots.mirror, arg.run)
        author, message = await asyncio.to_thread(investigate.commit_info, mirror, arg.culprit)
        changed = await asyncio.to_thread(investigate.changed_by, mirror, arg.culprit)
        touched = [f for f in changed if f in arg.frame_files]
        if not touched:  # the failing frames do not name its files: take its code, not its tests
            touched = [f for f in changed if not investigate.TEST_FILE.search(f)] or changed
        diff = await asyncio.to_thread(investigate.hunks, mirror, arg.culprit, touched)
        goal = fix_goal(arg.culprit, touched, arg.reproduce, arg.written)
        return Localized(author, message, touched, self.store.put_text(diff),
                         activity.info().attempt, fix_goal=goal)  # fmt: skip

    @activity.defn(name=REVERT)
    @permanent_errors
    async def revert(self, arg: RevertInput) -> PatchOutput:
        """The fix without a model: undo the culprit's guilty hunks on top of the bad commit."""
        tag_span(arg.run.run_id)
        ws = await asyncio.to_thread(self.snapshots.materialize, arg.run, arg.run.base_sha, "patch")
        mirror = await asyncio.to_thread(self.snapshots.mirror, arg.run)
        how = await asyncio.to_thread(investigate.revert_hunks, ws, mirror, arg.culprit, arg.files)
        sha = await asyncio.to_thread(
            self.snapshots.snapshot, arg.run, ws, "revert-1", f"Revert {arg.culprit[:12]}: {how}"
        )
        return PatchOutput(sha, True, sha != arg.run.base_sha, how, attempt=activity.info().attempt)

    @activity.defn(name=REPORT)
    @permanent_errors
    async def report(self, arg: ReportInput) -> ReportOutput:
        tag_span(arg.run_id)
        hunks = self.store.get_text(arg.hunks_ref) if arg.hunks_ref else ""
        if arg.event is None and arg.event_ref:
            event = json.loads(self.store.get_text(arg.event_ref))
            arg = replace(arg, event=value_to_type(SentryEvent, event, []))
        return ReportOutput(self.store.put_text(render_report(arg, hunks)), activity.info().attempt)

    def all(self) -> list[Callable[..., Any]]:
        return [self.prepare, self.history, self.probe, self.localize,
                self.revert, self.report, self.check_reproduction]  # fmt: skip
