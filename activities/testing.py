"""The test step: the gym's sandboxed runner as an activity."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

from temporalio import activity

from activities.common import tag_span
from activities.envs import sandbox_for
from activities.errors import permanent_errors
from activities.runner import RunnerConfig
from contracts.runs import RunRef
from contracts.steps import (
    LINT,
    PERFORMANCE,
    RUN_TESTS,
    LintInput,
    LintReport,
    PerfInput,
    PerfReport,
    TestInput,
    TestReport,
)
from gym import perf, workspace
from gym.config import RepoConfig, detect_lint_command, load_config
from gym.diagnose import diagnose
from gym.lint import run_lint
from gym.paths import matches_any
from gym.snapshots import Snapshots
from gym.testing import TestRun, run_tests
from ratchet.artifacts import ArtifactStore

SUMMARY_CHARS = 1500


def _kept(store: ArtifactStore, data: bytes) -> tuple[str, bytes]:
    """`data` kept as an artifact: its reference, and the data as the store keeps it, with the
    worker's secrets redacted. Text a report carries out of the worker is built from this, so
    it holds no more than the stored artifacts do."""
    return store.put(data), store.redact(data.decode(errors="replace")).encode()


class TestActivities:
    __test__ = False  # not a pytest class

    def __init__(self, *, home: Path, store: ArtifactStore, runner: RunnerConfig) -> None:
        self.home = home
        self.store = store
        self.snapshots = Snapshots(home, store)
        self.runner = runner

    def _restore_original_tests(
        self, run: RunRef, snapshot: str, ws: Path, config: RepoConfig
    ) -> list[str]:
        """Existing tests the patch changed are put back: grading uses the original tests."""
        if config.allow_test_changes or snapshot == run.base_sha:
            return []
        changed = self.snapshots.changed_files(run, snapshot)
        paths = [
            f.path for f in changed if f.status != "A" and matches_any(f.path, config.test_globs)
        ]
        workspace.restore_paths(ws, run.base_sha, paths)
        return paths

    @activity.defn(name=RUN_TESTS)
    @permanent_errors
    async def run_tests(self, arg: TestInput) -> TestReport:
        tag_span(arg.run.run_id)
        ws = await asyncio.to_thread(self.snapshots.materialize, arg.run, arg.snapshot, "tests")
        base = await asyncio.to_thread(
            self.snapshots.materialize, arg.run, arg.run.base_sha, "base"
        )
        config = load_config(base)
        restored: list[str] = []
        if arg.grade_with_base_tests:
            restored = await asyncio.to_thread(
                self._restore_original_tests, arg.run, arg.snapshot, ws, config
            )
        sandbox = await sandbox_for(self.snapshots, self.runner, arg.run, base)
        run = await run_tests(
            arg.test_command,
            ws,
            limits=replace(self.runner.limits, timeout_s=arg.timeout_s),
            sandbox=sandbox,
            reruns=self.runner.reruns,
            tick=activity.heartbeat,
            collect_spans=True,  # the tests' own spans join the run's trace
            runner=config.test_runner,
        )
        return self._report(arg, run, restored)

    def _report(self, arg: TestInput, run: TestRun, restored: list[str]) -> TestReport:
        """The report of `run`. Its text (the summary, why the suite could not run, the flaky
        tests' ids) leaves for the workflow's history, a gate's detail, GET /runs and a pull
        request's body: it is built from the log and results as stored, the worker's secrets
        redacted, never from the command's raw output."""
        log_ref, log = _kept(self.store, run.result.output)
        result = replace(run.result, output=log)
        results_ref, results = _kept(self.store, json.dumps(run.as_json()).encode())
        why, fatal = diagnose(arg.test_command, result, [t.outcome for t in run.tests])
        return TestReport(
            passed=run.passed,
            exit_code=result.exit_code,
            timed_out=result.timed_out,
            duration_s=result.duration_s,
            log_ref=log_ref,
            summary=log[-SUMMARY_CHARS:].decode(errors="replace"),
            isolation=result.isolation,
            attempt=activity.info().attempt,
            results_ref=results_ref,
            passed_count=run.count("passed"),
            failed_count=run.count("failed") + run.count("error"),
            flaky=json.loads(results)["flaky"],
            killed_by=result.killed_by,
            restored_tests=restored,
            spans_ref=None if run.spans is None else self.store.put_text(json.dumps(run.spans)),
            cannot_run=why,
            cannot_run_fatal=fatal,
        )

    @activity.defn(name=LINT)
    @permanent_errors
    async def lint(self, arg: LintInput) -> LintReport:
        tag_span(arg.run.run_id)
        # The lint command comes from the base snapshot, like every other rule.
        base = await asyncio.to_thread(
            self.snapshots.materialize, arg.run, arg.run.base_sha, "base"
        )
        chosen = detect_lint_command(base, load_config(base))
        if chosen is None:
            return LintReport(configured=False, attempt=activity.info().attempt)
        command, fmt = chosen
        ws = await asyncio.to_thread(self.snapshots.materialize, arg.run, arg.snapshot, "lint")
        run = await run_lint(
            command, fmt, ws,
            limits=replace(self.runner.limits, timeout_s=arg.timeout_s),
            sandbox=await sandbox_for(self.snapshots, self.runner, arg.run, base),
        )  # fmt: skip
        return LintReport(
            configured=True,
            ok=run.ok,
            findings_ref=self.store.put_text(json.dumps(run.findings)),
            count=len(run.findings),
            command=command,
            detail=self.store.redact(run.detail),  # it may quote the lint's output
            attempt=activity.info().attempt,
        )

    @activity.defn(name=PERFORMANCE)
    @permanent_errors
    async def performance(self, arg: PerfInput) -> PerfReport:
        tag_span(arg.run.run_id)
        base = await asyncio.to_thread(
            self.snapshots.materialize, arg.run, arg.run.base_sha, "base"
        )
        config = load_config(base)
        if not config.benchmark_command:
            return PerfReport(True, "no benchmark declared", attempt=activity.info().attempt)
        perf_base = await asyncio.to_thread(
            self.snapshots.materialize, arg.run, arg.run.base_sha, "perf-base"
        )
        perf_new = await asyncio.to_thread(
            self.snapshots.materialize, arg.run, arg.snapshot, "perf"
        )
        samples = await perf.sample(
            config.benchmark_command, perf_base, perf_new, runs=config.benchmark_runs,
            limits=replace(self.runner.limits, timeout_s=arg.timeout_s),
            sandbox=await sandbox_for(self.snapshots, self.runner, arg.run, base),
        )  # fmt: skip
        if samples.failures or len(samples.base) < 2 or len(samples.patched) < 2:
            why = ", ".join(samples.failures) or "too few runs"
            return PerfReport(
                False, f"the benchmark did not run cleanly: {why}", samples.base,
                samples.patched, attempt=activity.info().attempt,
            )  # fmt: skip
        verdict = perf.compare(samples.base, samples.patched, max_slowdown=config.max_slowdown)
        return PerfReport(
            passed=not verdict.slower,
            detail=f"{verdict.detail} ({samples.unit})",
            base=samples.base,
            patched=samples.patched,
            ratio=verdict.ratio,
            p_value=verdict.p_value,
            unit=samples.unit,
            attempt=activity.info().attempt,
        )
