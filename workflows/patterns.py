"""Multi-agent patterns run by the controller: many perspectives in planning, a red team whose
tests, judged valid, send a patch back, invariants that held before the change, and memory.
Each pattern spends at most its share of the task's budget.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts import roles
    from contracts.budget import Usage
    from contracts.runs import Gate, RunRef, TaskInput
    from contracts.steps import PlanOutput
    from workflows.steps import Steps


class ShareSpent(Exception):
    """A pattern used up its share of the task's budget: it stops, the run goes on."""


class Patterns:
    """The patterns of one task; keeps the red team's findings and the guards between rounds."""

    def __init__(self, steps: Steps, task: TaskInput) -> None:
        self._steps, self.task = steps, task
        """The task as its steps send it (its goal by reference once the run is prepared)."""
        self._role_offsets: dict[str, int] = {}
        self._red_tests: str | None = None
        self._red_judge: str | None = None
        self.red_results: str | None = None
        """The red team's last results: their passing, valid tests join the delivery."""
        self._red_team = roles.RedTeam()
        self._guards: tuple[str, str] | None = None
        """(proposal, results at base): the invariants that held before any change."""
        self._guard_note = ""
        self.memory = roles.MemoryRead(None, [])
        self._usage: dict[str, Usage] = {}
        self._share_notes: dict[str, str] = {}

    async def role(
        self, name: str, role: str, key: str, run: RunRef, *, lens: str = "",
        snapshot: str | None = None, inputs: list[str] | None = None, round_: int | None = None,
        note: str = "",
    ) -> roles.RoleOutput:  # fmt: skip
        task, pattern = self.task, roles.PATTERN_OF.get(role, role)
        used = self._usage.get(pattern, Usage())
        if spent := task.budget.share_spent(task.pattern_share, used):  # the pattern's share
            note = self._share_notes[pattern] = f"{pattern}: its budget share is spent ({spent})"
            raise ShareSpent(note)
        offset = self._role_offsets.get(key, 0)
        arg = roles.RoleInput(run, role, key, task.policy, offset, task.goal, lens, snapshot,
                              inputs or [], note, self.memory.context_ref)  # fmt: skip
        out = await self._steps.step(name, roles.ROLE_CALL, arg, roles.RoleOutput, round_=round_)
        self._role_offsets[key] = offset + out.consumed
        self._steps.charge(out.usage)
        self._usage[pattern] = self._usage.get(pattern, Usage()) + out.usage
        return out

    async def plan_with_perspectives(self, run: RunRef) -> PlanOutput | None:
        """The merged plan, or None when the pattern's budget share ran out (plan as usual)."""
        task = self.task
        lenses = (task.lenses or roles.DEFAULT_LENSES)[: task.perspectives]

        def draft(lens: str) -> Awaitable[roles.RoleOutput]:
            return self.role(f"perspective ({lens})", "perspective", f"perspective.{lens}", run,
                             lens=lens)  # fmt: skip

        try:
            first: list[roles.RoleOutput] = []
            if len(lenses) > 1 and workflow.patched("perspectives-share-cache"):
                # Every perspective opens with the same repository block: the first one writes
                # it to the model's prompt cache, the others then read it at a tenth of the
                # price instead of all paying full price in parallel.
                first = [await draft(lenses[0])]
            drafts = first + list(await asyncio.gather(*(draft(x) for x in lenses[len(first) :])))
            merged = await self.role("synthesis", "synthesis", "synthesis", run,
                                     inputs=[d.answer_ref for d in drafts])  # fmt: skip
        except ShareSpent:
            return None
        return PlanOutput(merged.text_ref, f"{task.policy.name}, {len(lenses)} perspectives")

    async def red_team(self, run: RunRef, snapshot: str, round_: int) -> tuple[Gate, str | None]:
        """The adversarial gate for a candidate, and feedback for the coder when it fails."""
        if "red team" in self._share_notes:
            return Gate("adversarial", True, self._share_notes["red team"]), None
        try:
            if self._red_tests is None:
                return await self._attack(run, snapshot, round_)
            again = await self._adversarial("adversarial tests", run, snapshot, [self._red_tests],
                                            round_, only_valid_from=self._red_judge)  # fmt: skip
        except ShareSpent as spent:
            return Gate("adversarial", True, f"{spent}; the red team stopped"), None
        self.red_results = again.results_ref
        return self._red_team.gate(again.failing), again.feedback_ref

    async def _attack(self, run: RunRef, snapshot: str, round_: int) -> tuple[Gate, str | None]:
        """The red team's first round: write tests against the patch, run them, judge those
        that fail (a failing test may be wrong rather than the patch)."""
        attack = await self.role("red team", "adversary", "adversary", run, snapshot=snapshot,
                                 round_=round_)  # fmt: skip
        self._red_tests = attack.answer_ref
        tried = await self._adversarial("adversarial tests", run, snapshot, [attack.answer_ref],
                                        round_)  # fmt: skip
        self.red_results = tried.results_ref
        self._red_team = roles.RedTeam(tried.tried, tried.failing)
        if tried.failing:
            judged = await self.role("judge", "judge", "judge", run, inputs=[tried.results_ref],
                                     round_=round_)  # fmt: skip
            self._red_judge = judged.answer_ref
            self._red_team = replace(self._red_team, invalid=judged.invalid)
            if judged.valid:
                return self._red_team.gate(judged.valid), judged.text_ref
        return self._red_team.gate(0), None

    def _adversarial(
        self, name: str, run: RunRef, snapshot: str, tests: list[str], round_: int | None,
        **options: Any,
    ) -> Awaitable[roles.AdversarialOutput]:  # fmt: skip
        """Run adversarial or invariant tests (`options` pick which: see AdversarialInput)."""
        arg = roles.AdversarialInput(run, snapshot, tests, self.task.test_timeout_s, **options)
        return self._steps.step(name, roles.ADVERSARIAL_RUN, arg, roles.AdversarialOutput,
                                round_=round_)  # fmt: skip

    async def with_red_tests(self, run: RunRef, snapshot: str) -> str:
        """The verified snapshot with the red team's passing, valid tests added."""
        if self.red_results is None:
            return snapshot
        arg = roles.AddTestsInput(run, snapshot, self.red_results)
        added = await self._steps.step("add adversarial tests", roles.ADD_TESTS, arg,
                                       roles.AddTestsOutput)  # fmt: skip
        return added.snapshot

    async def extract_invariants(self, run: RunRef) -> None:
        """Propose properties, keep those that hold at base as guards; report the others."""
        try:
            proposal = await self.role("propose invariants", "invariants", "invariants", run,
                                       snapshot=run.base_sha)  # fmt: skip
        except ShareSpent as spent:
            self._guard_note = f"{spent}; no invariants were extracted"
            return
        tests = [proposal.answer_ref]
        at_base = await self._adversarial("invariants at base", run, run.base_sha, tests, None,
                                          label="Invariants")  # fmt: skip
        self._guard_note = at_base.guard_note()
        if at_base.tried > at_base.failing:
            self._guards = (proposal.answer_ref, at_base.results_ref)

    async def check_invariants(
        self, run: RunRef, snapshot: str, round_: int | None
    ) -> tuple[Gate, str | None]:
        if self._guards is None:
            return Gate("invariants", True, self._guard_note or "no invariants hold at base"), None
        proposal, at_base = self._guards
        checked = await self._adversarial(
            "invariants", run, snapshot, [proposal], round_, only_passing_from=at_base,
            label="Invariants that held before the change",
        )  # fmt: skip
        if checked.failing:
            detail = f"{checked.failing} invariants broken by the change; {self._guard_note}"
            return Gate("invariants", False, detail), checked.feedback_ref
        return Gate("invariants", True, self._guard_note), None

    async def read_memory(self, run: RunRef) -> roles.MemoryRead:
        """What earlier runs learned about this repository, most relevant to the goal first."""
        task = self.task
        arg = roles.MemoryReadInput(task.repo, task.goal, task.run_id, goal_ref=run.goal_ref)
        self.memory = await self._steps.step("memory", roles.MEMORY_READ, arg, roles.MemoryRead)
        return self.memory

    async def learn(self, run: RunRef | None, outcome: str) -> None:
        """Record what this run learned (with memory on, once prepared); never changes the
        run's own outcome."""
        if not self.task.memory or run is None:
            return
        kept_error = self._steps.state.error
        steps = self._steps.state.step_lines(4000)
        # A failed step shows as failed; the run keeps its own result.
        with contextlib.suppress(ShareSpent, ApplicationError):
            learned = await self.role("learn", "memory", "memory", run,
                                      note=f"outcome: {outcome}\n{steps}")  # fmt: skip
            arg = roles.MemoryRecordInput(run.run_id, self.task.repo, learned.answer_ref)
            await self._steps.step("record memory", roles.MEMORY_RECORD, arg, roles.MemoryRecorded)
        self._steps.update(error=kept_error)
