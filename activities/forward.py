"""The forward-planning steps as activities. Each method adapts one gym or agent call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity

from activities.common import heartbeats, tag_span, with_goal
from activities.delivery import GitHubConfig, open_pull_request
from activities.errors import permanent_errors
from activities.models import Models
from activities.paid import CallLedger, charge, paid
from agents.asking import ask
from agents.ledger import DEFAULT_PRICES, Price
from agents.model import PolicyError
from agents.planning import plan_call
from contracts.runs import Gate, RunRef
from contracts.steps import (
    DELIVER,
    PLAN,
    PREPARE,
    SNAPSHOT_DIFF,
    VERIFY,
    DeliverInput,
    Delivery,
    DiffInput,
    DiffOutput,
    LintReport,
    PlanInput,
    PlanOutput,
    Prepared,
    PrepareInput,
    TestReport,
    VerifyInput,
    VerifyOutput,
)
from gym import gates, workspace
from gym.config import detect_test_command, load_config
from gym.diagnose import HOW_TO_FIX
from gym.lint import LintRun, lint_gate
from gym.snapshots import Snapshots
from ratchet.artifacts import ArtifactStore
from ratchet.metrics import GATE_OUTCOMES

SUMMARY_CHARS = 1500


def _suite_gate(gate: gates.GateResult, now: str, before: str) -> gates.GateResult:
    """A suite that cannot run verifies nothing (whatever its exit code compares to): the tests
    gate says so, and when it could not run at the base either, says how to fix that instead of
    blaming the patch."""
    if gate.name != "tests" or not (now or (before and not gate.passed)):
        return gate
    if not now:
        return gates.GateResult("tests", False, f"the suite cannot run at the base commit "
                                f"({before}), so it cannot verify a change: {HOW_TO_FIX}. "
                                f"{gate.detail}")  # fmt: skip
    either = f"; nor at the base commit: {HOW_TO_FIX}" if before else ""
    return gates.GateResult("tests", False, f"the suite cannot run on this change ({now}){either}")


def _attempt() -> int:
    return activity.info().attempt


class ForwardActivities:
    def __init__(
        self,
        *,
        home: Path,
        store: ArtifactStore,
        models: Models,
        prices: dict[str, Price] | None = None,
        github: GitHubConfig | None = None,
    ) -> None:
        self.prices = prices or DEFAULT_PRICES
        self.github = github
        self.models = models
        self.home = home
        self.store = store
        self.snapshots = Snapshots(home, store)
        self.mirrors = self.snapshots.mirrors
        self.ledger = CallLedger(store)

    def _workspace(self, run: RunRef, snapshot: str, purpose: str) -> Path:
        return self.snapshots.materialize(run, snapshot, purpose)

    @activity.defn(name=PREPARE)
    @permanent_errors
    async def prepare(self, arg: PrepareInput) -> Prepared:
        tag_span(arg.run_id)
        mirror, base = await asyncio.to_thread(self.mirrors.sync, arg.repo, arg.base_ref)
        goal_ref = self.store.put_text(arg.goal) if arg.goal else None
        run = RunRef(arg.run_id, arg.repo, str(mirror), base, arg.when, arg.environment,
                     goal_ref=goal_ref)  # fmt: skip
        if arg.start_snapshot:  # a fork: its snapshot may have been made by another worker
            await asyncio.to_thread(self.snapshots.mirror, run, arg.start_snapshot)
        ws = await asyncio.to_thread(self._workspace, run, base, "base")
        command, source = arg.test_command, "task"
        if not command:
            command, source = detect_test_command(ws, load_config(ws))
        config = load_config(ws)
        return Prepared(
            run, command, source, attempt=_attempt(), benchmark=bool(config.benchmark_command)
        )

    @activity.defn(name=PLAN)
    @paid
    @permanent_errors
    @heartbeats
    async def plan(self, arg: PlanInput) -> PlanOutput:
        tag_span(arg.run.run_id)
        arg = with_goal(self.store, arg)
        model = self.models.choose(arg.policy)
        ws = await asyncio.to_thread(self._workspace, arg.run, arg.run.base_sha, "policy")
        memory = self.store.get_text(arg.memory_ref) if arg.memory_ref else ""
        turn = await ask(model, plan_call(arg.goal, ws, memory), charge)
        if not turn.text.strip():
            raise PolicyError(f"the model returned no plan (stop_reason={turn.stop_reason})")
        return PlanOutput(self.store.put_text(turn.text), model.label, _attempt())

    @activity.defn(name=VERIFY)
    @permanent_errors
    async def verify(self, arg: VerifyInput) -> VerifyOutput:
        tag_span(arg.run.run_id)
        base = await asyncio.to_thread(self._workspace, arg.run, arg.run.base_sha, "base")
        config = load_config(base)
        changed = await asyncio.to_thread(self.snapshots.changed_files, arg.run, arg.snapshot)
        results = gates.evaluate(
            changed=changed,
            config=config,
            patched=_outcome(arg.tests, self.store),
            baseline=_outcome(arg.baseline, self.store),
        )
        results.append(
            lint_gate(_lint_run(arg.baseline_lint, self.store), _lint_run(arg.lint, self.store))
        )
        emitted = None
        if arg.tests.spans_ref:
            emitted = [s.get("name") for s in json.loads(self.store.get_text(arg.tests.spans_ref))]
        results.append(gates.observability_gate(config.required_spans, emitted))
        if arg.performance is not None:
            results.append(
                gates.GateResult("performance", arg.performance.passed, arg.performance.detail)
            )
        results = [_suite_gate(g, arg.tests.cannot_run, arg.baseline.cannot_run) for g in results]
        passed = all(g.passed for g in results)
        feedback_ref = None
        if not passed:
            lines = ["Verification failed. Gates:"]
            lines += [
                f"- {g.name}: {'passed' if g.passed else 'FAILED'}: {g.detail}" for g in results
            ]
            lines += ["", "Test output (tail):", arg.tests.summary]
            feedback_ref = self.store.put_text("\n".join(lines))
        for g in results:
            GATE_OUTCOMES.add(1, {"gate": g.name, "outcome": "passed" if g.passed else "failed"})
        return VerifyOutput(
            passed=passed,
            gates=[Gate(g.name, g.passed, g.detail) for g in results],
            feedback_ref=feedback_ref,
            attempt=_attempt(),
        )

    @activity.defn(name=SNAPSHOT_DIFF)
    @permanent_errors
    async def snapshot_diff(self, arg: DiffInput) -> DiffOutput:
        """Keep a snapshot's change as a patch artifact (a paused run's partial patch)."""
        tag_span(arg.run.run_id)
        patch = await asyncio.to_thread(self.snapshots.diff, arg.run, arg.snapshot)
        files = await asyncio.to_thread(self.snapshots.changed_files, arg.run, arg.snapshot)
        return DiffOutput(self.store.put(patch), len(files), attempt=_attempt())

    @activity.defn(name=DELIVER)
    @permanent_errors
    async def deliver(self, arg: DeliverInput) -> Delivery:
        tag_span(arg.run.run_id)
        arg = with_goal(self.store, arg)
        mirror = await asyncio.to_thread(self.snapshots.mirror, arg.run, arg.snapshot)
        patch = await asyncio.to_thread(workspace.diff, mirror, arg.run.base_sha, arg.snapshot)
        patch_ref = self.store.put(patch)
        first_line = arg.goal.strip().splitlines()[0][:72] if arg.goal.strip() else "change"
        message = f"{first_line}\n\nDelivered by Ratchet run {arg.run.run_id}.\n"
        commit, branch = await asyncio.to_thread(
            workspace.deliver,
            mirror,
            arg.run.repo,
            arg.run.run_id,
            arg.run.base_sha,
            arg.snapshot,
            message,
            arg.run.when,
        )
        files = await asyncio.to_thread(workspace.changed_files, mirror, arg.run.base_sha, commit)
        pull = None
        if self.github is not None:
            pull = await open_pull_request(self.github, self.store, arg, branch, commit, mirror)
        return Delivery(branch, commit, patch_ref, len(files), attempt=_attempt(),
                        pull_request_url=pull)  # fmt: skip

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.prepare, self.plan, self.verify, self.snapshot_diff, self.deliver,
        ]  # fmt: skip


def _lint_run(report: LintReport | None, store: ArtifactStore) -> LintRun | None:
    if report is None or not report.configured:
        return None
    findings = json.loads(store.get_text(report.findings_ref)) if report.findings_ref else []
    return LintRun(report.command, report.ok, findings, report.detail)


def _outcome(report: TestReport, store: ArtifactStore) -> gates.TestOutcome:
    outcomes: dict[str, str] = {}
    if report.results_ref:
        tests = json.loads(store.get_text(report.results_ref)).get("tests", [])
        outcomes = {t["id"]: t["outcome"] for t in tests}
    return gates.TestOutcome(
        passed=report.passed,
        exit_code=report.exit_code,
        timed_out=report.timed_out,
        summary=report.summary,
        outcomes=outcomes,
        killed_by=tuple(report.killed_by),
    )
