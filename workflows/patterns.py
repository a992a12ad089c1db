"""Multi-agent patterns run by the controller: many perspectives in planning, and a red team
whose tests, judged valid, send a patch back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import replace
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.budget import Budget, Usage
    from contracts.roles import (
        ADD_TESTS,
        ADVERSARIAL_RUN,
        DEFAULT_LENSES,
        MEMORY_READ,
        MEMORY_RECORD,
        ROLE_CALL,
        AddTestsInput,
        AddTestsOutput,
        AdversarialInput,
        AdversarialOutput,
        MemoryRead,
        MemoryReadInput,
        MemoryRecorded,
        MemoryRecordInput,
        RoleInput,
        RoleOutput,
    )  # fmt: skip
    from contracts.runs import Gate, PlanOutput, RunRef, TaskInput
    from workflows.steps import StepRunner

ROLE_LIMIT = timedelta(minutes=10)


class ShareSpent(Exception):
    """A pattern used up its share of the task's budget: it stops, the run goes on."""


PATTERNS = {
    "perspective": "perspectives", "synthesis": "perspectives", "adversary": "red team",
    "judge": "red team", "invariants": "invariants", "memory": "memory", "claims": "drift",
}  # fmt: skip


def _pattern(role: str) -> str:
    return PATTERNS.get(role, role)


class PatternSteps(StepRunner):
    """Mixed into a master workflow; keeps the red team's findings between rounds."""

    def _init_patterns(self) -> None:
        self._role_offsets: dict[str, int] = {}
        self._red_tests: str | None = None
        self._red_judge: str | None = None
        self._red_results: str | None = None
        self._red_stats = {"tried": 0, "broke": 0, "invalid": 0}
        self._guards: tuple[str, str] | None = None
        """(proposal, results at base): the invariants that held before any change."""
        self._guard_note = ""
        self._memory: MemoryRead = MemoryRead(None, [])
        self._pattern_usage: dict[str, Usage] = {}
        self._share_notes: dict[str, str] = {}

    async def _role(
        self, name: str, role: str, key: str, run: RunRef, task: TaskInput, *, lens: str = "",
        snapshot: str | None = None, inputs: list[str] | None = None, round_: int | None = None,
        note: str = "",
    ) -> RoleOutput:  # fmt: skip
        pattern = _pattern(role)
        spent = self._share_left(task, pattern)
        if spent:
            self._share_notes[pattern] = spent
            raise ShareSpent(spent)
        offset = self._role_offsets.get(key, 0)
        arg = RoleInput(run, role, key, task.policy, offset, task.goal, lens, snapshot,
                        inputs or [], note, self._memory.context_ref)  # fmt: skip
        out: RoleOutput = await self._step(
            name, ROLE_CALL, arg, RoleOutput, limit=ROLE_LIMIT,
            heartbeat=timedelta(seconds=task.heartbeat_timeout_s), round_=round_,
        )  # fmt: skip
        self._role_offsets[key] = offset + out.consumed
        self._state = replace(self._state, usage=self._state.usage + out.usage)
        self._pattern_usage[pattern] = self._pattern_usage.get(pattern, Usage()) + out.usage
        return out

    def _share_left(self, task: TaskInput, pattern: str) -> str | None:
        """Why the pattern may not spend more (its share of each budget limit), or None."""
        b, share = task.budget, task.pattern_share
        limits = Budget(
            max_cost_usd=None if b.max_cost_usd is None else b.max_cost_usd * share,
            max_tokens=None if b.max_tokens is None else max(1, int(b.max_tokens * share)),
            max_turns=None if b.max_turns is None else max(1, int(b.max_turns * share)),
        )
        spent = limits.exhausted(self._pattern_usage.get(pattern, Usage()), 0.0)
        return f"{pattern}: its budget share is spent ({spent})" if spent else None

    async def _plan_with_perspectives(self, task: TaskInput, run: RunRef) -> PlanOutput | None:
        """The merged plan, or None when the pattern's budget share ran out (plan as usual)."""
        lenses = (task.lenses or DEFAULT_LENSES)[: task.perspectives]

        def draft(lens: str) -> Awaitable[RoleOutput]:
            return self._role(f"perspective ({lens})", "perspective", f"perspective.{lens}",
                              run, task, lens=lens)  # fmt: skip

        try:
            first: list[RoleOutput] = []
            if len(lenses) > 1 and workflow.patched("perspectives-share-cache"):
                # Every perspective opens with the same repository block: the first one writes
                # it to the model's prompt cache, the others then read it at a tenth of the
                # price instead of all paying full price in parallel.
                first = [await draft(lenses[0])]
            drafts = first + list(await asyncio.gather(*(draft(x) for x in lenses[len(first) :])))
            merged = await self._role("synthesis", "synthesis", "synthesis", run, task,
                                      inputs=[d.answer_ref for d in drafts])  # fmt: skip
        except ShareSpent:
            return None
        return PlanOutput(merged.text_ref, f"{task.policy.name}, {len(lenses)} perspectives")

    async def _red_team(
        self, task: TaskInput, run: RunRef, snapshot: str, round_: int
    ) -> tuple[Gate, str | None]:
        """The adversarial gate for a candidate, and feedback for the coder when it fails."""
        if "red team" in self._share_notes:
            return Gate("adversarial", True, self._share_notes["red team"]), None
        try:
            return await self._red_team_round(task, run, snapshot, round_)
        except ShareSpent as spent:
            return Gate("adversarial", True, f"{spent}; the red team stopped"), None

    async def _red_team_round(
        self, task: TaskInput, run: RunRef, snapshot: str, round_: int
    ) -> tuple[Gate, str | None]:
        limit = timedelta(seconds=task.test_timeout_s * 5 + 120)
        if self._red_tests is None:
            attack = await self._role("red team", "adversary", "adversary", run, task,
                                      snapshot=snapshot, round_=round_)  # fmt: skip
            self._red_tests = attack.answer_ref
            tried: AdversarialOutput = await self._step(
                "adversarial tests", ADVERSARIAL_RUN,
                AdversarialInput(run, snapshot, [attack.answer_ref], task.test_timeout_s),
                AdversarialOutput, limit=limit, heartbeat=None, round_=round_,
            )  # fmt: skip
            self._red_results = tried.results_ref
            self._red_stats["tried"] = tried.tried
            self._red_stats["broke"] = tried.failing
            if tried.failing:
                judged = await self._role("judge", "judge", "judge", run, task,
                                          inputs=[tried.results_ref], round_=round_)  # fmt: skip
                self._red_judge = judged.answer_ref
                self._red_stats["invalid"] = judged.invalid
                if judged.valid:
                    return self._red_gate(judged.valid), judged.text_ref
            return self._red_gate(0), None
        again: AdversarialOutput = await self._step(
            "adversarial tests", ADVERSARIAL_RUN,
            AdversarialInput(run, snapshot, [self._red_tests], task.test_timeout_s,
                             only_valid_from=self._red_judge),
            AdversarialOutput, limit=limit, heartbeat=None, round_=round_,
        )  # fmt: skip
        self._red_results = again.results_ref
        return self._red_gate(again.failing), again.feedback_ref

    def _red_gate(self, still_failing: int) -> Gate:
        s = self._red_stats
        detail = f"tried {s['tried']}, broke the patch {s['broke']}, judged invalid {s['invalid']}"
        if still_failing:
            return Gate("adversarial", False, f"{detail}; {still_failing} valid tests fail")
        return Gate("adversarial", True, f"{detail}; every valid test passes")

    async def _with_red_tests(self, run: RunRef, snapshot: str) -> str:
        """The verified snapshot with the red team's passing, valid tests added."""
        if self._red_results is None:
            return snapshot
        added: AddTestsOutput = await self._step(
            "add adversarial tests", ADD_TESTS,
            AddTestsInput(run, snapshot, self._red_results), AddTestsOutput,
            limit=timedelta(minutes=5), heartbeat=None,
        )  # fmt: skip
        return added.snapshot

    async def _extract_invariants(self, task: TaskInput, run: RunRef) -> None:
        """Propose properties, keep those that hold at base as guards; report the others."""
        try:
            proposal = await self._role("propose invariants", "invariants", "invariants", run,
                                        task, snapshot=run.base_sha)  # fmt: skip
        except ShareSpent as spent:
            self._guard_note = f"{spent}; no invariants were extracted"
            return
        at_base: AdversarialOutput = await self._step(
            "invariants at base", ADVERSARIAL_RUN,
            AdversarialInput(run, run.base_sha, [proposal.answer_ref], task.test_timeout_s,
                             label="Invariants"),
            AdversarialOutput, limit=timedelta(seconds=task.test_timeout_s * 5 + 120),
            heartbeat=None,
        )  # fmt: skip
        held = at_base.tried - at_base.failing
        self._guard_note = (
            f"{held} of {at_base.tried} proposed invariants hold at base and guard the change"
            + (f"; {at_base.failing} fail at base (reported, not used)" if at_base.failing else "")
        )
        if held:
            self._guards = (proposal.answer_ref, at_base.results_ref)

    async def _check_invariants(
        self, task: TaskInput, run: RunRef, snapshot: str, round_: int | None
    ) -> tuple[Gate, str | None]:
        if self._guards is None:
            return Gate("invariants", True, self._guard_note or "no invariants hold at base"), None
        proposal, at_base = self._guards
        checked: AdversarialOutput = await self._step(
            "invariants", ADVERSARIAL_RUN,
            AdversarialInput(run, snapshot, [proposal], task.test_timeout_s,
                             only_passing_from=at_base,
                             label="Invariants that held before the change"),
            AdversarialOutput, limit=timedelta(seconds=task.test_timeout_s * 5 + 120),
            heartbeat=None, round_=round_,
        )  # fmt: skip
        if checked.failing:
            detail = f"{checked.failing} invariants broken by the change; {self._guard_note}"
            return Gate("invariants", False, detail), checked.feedback_ref
        return Gate("invariants", True, self._guard_note), None

    async def _read_memory(self, task: TaskInput) -> MemoryRead:
        """What earlier runs learned about this repository, most relevant to the goal first."""
        self._memory = await self._step(
            "memory", MEMORY_READ, MemoryReadInput(task.repo, task.goal, task.run_id), MemoryRead,
            limit=timedelta(minutes=2), heartbeat=None,
        )  # fmt: skip
        return self._memory

    async def _learn(self, task: TaskInput, run: RunRef, outcome: str) -> None:
        """Record what this run learned; never changes the run's own outcome."""
        kept_error = self._state.error
        steps = "\n".join(
            f"{s.name}{f' #{s.round}' if s.round else ''}: {s.status} {s.detail}"
            for s in self._state.steps
        )[-4000:]
        try:
            learned = await self._role("learn", "memory", "memory", run, task,
                                       note=f"outcome: {outcome}\n{steps}")  # fmt: skip
        except ShareSpent:
            return
        except ApplicationError:
            self._state = replace(self._state, error=kept_error)
            return
        # A failed step shows as failed; the run keeps its own result.
        with contextlib.suppress(ApplicationError):
            await self._step(
                "record memory", MEMORY_RECORD,
                MemoryRecordInput(run.run_id, task.repo, learned.answer_ref), MemoryRecorded,
                limit=timedelta(minutes=2), heartbeat=None,
            )  # fmt: skip
        self._state = replace(self._state, error=kept_error)
