"""Structured roles and the red team's test runs as activities."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from temporalio import activity

from activities.common import heartbeats, tag_span, with_goal
from activities.envs import sandbox_for
from activities.errors import permanent_errors
from activities.models import Models
from activities.paid import CallLedger, charge, paid
from activities.runner import RunnerConfig
from agents.asking import ask
from agents.ledger import Price
from agents.model import ModelCall, PolicyError
from agents.planning import repository_block
from agents.prompts import goal_block
from agents.roles import ask as ask_role
from agents.roles import load_role
from contracts.budget import Usage
from contracts.roles import (
    ADD_TESTS,
    ADVERSARIAL_RUN,
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
)
from gym.config import load_config
from gym.errors import PatchRefused
from gym.memory import Memory, as_context
from gym.paths import safe_path, write_safely
from gym.snapshots import Snapshots
from gym.test_files import convention_for
from gym.testing import run_tests
from ratchet.artifacts import ArtifactStore

FAILURE_CHARS = 1500
KIND = {"adversary": "adversarial", "invariants": "invariant"}
"""The kind in the name of each test-writing role's files."""


Blocks = list[dict[str, Any]]


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


class RoleActivities:
    def __init__(
        self,
        *,
        home: Path,
        store: ArtifactStore,
        runner: RunnerConfig,
        models: Models,
        prices: dict[str, Price],
    ) -> None:
        self.home, self.store, self.runner = home, store, runner
        self.snapshots = Snapshots(home, store)
        self.models, self.prices = models, prices
        self.ledger = CallLedger(store)

    def _json(self, ref: str) -> Any:
        return json.loads(self.store.get_text(ref))

    async def _workspace(self, arg: RoleInput, snapshot: str) -> Path:
        # Roles run in parallel: each reads the snapshot from a workspace of its own.
        return await asyncio.to_thread(
            self.snapshots.materialize, arg.run, snapshot, f"role-{arg.key}"
        )

    async def _repository(self, arg: RoleInput, snapshot: str) -> dict[str, Any]:
        return repository_block(await self._workspace(arg, snapshot))

    async def _content(self, arg: RoleInput) -> Blocks:
        """The user message: what calls on the same snapshot share (the repository) comes first
        and is cached, so N perspectives on one repository pay for it once."""
        memory = self.store.get_text(arg.memory_ref) if arg.memory_ref else ""
        goal = goal_block(with_goal(self.store, arg).goal, memory) + "\n"
        if arg.role == "perspective":
            repository = await self._repository(arg, arg.run.base_sha)
            return [repository, _text(goal + f"<lens>{escape(arg.lens)}</lens>")]
        if arg.role == "synthesis":
            drafts = [self._json(ref) for ref in arg.inputs]
            return [_text(goal + "\n".join(
                f'<draft lens="{escape(str(d.get("lens")))}">{escape(json.dumps(d))}</draft>'
                for d in drafts
            ))]  # fmt: skip
        if arg.role in ("adversary", "invariants"):
            snapshot = arg.snapshot or arg.run.base_sha
            diff = await asyncio.to_thread(self.snapshots.diff, arg.run, snapshot)
            ws = await self._workspace(arg, snapshot)
            change = f"<diff>{escape(diff.decode(errors='replace'))}</diff>"
            tests = convention_for(ws, load_config(ws)).guidance(KIND[arg.role])
            return [repository_block(ws), _text(goal + change + "\n" + tests)]
        if arg.role == "memory":
            return [_text(goal + f"<run>\n{escape(arg.note)}\n</run>")]
        if arg.role == "claims":
            text = self.store.get_text(arg.inputs[0]) if arg.inputs else ""
            if not text.strip():  # the API refuses empty content; the workflow skips this
                raise PolicyError("there is no spec text to extract claims from")
            ws = await self._workspace(arg, arg.run.base_sha)
            return [_text(text), _text(convention_for(ws, load_config(ws)).guidance("claim"))]
        if arg.role == "judge":
            failing = [t for ref in arg.inputs for t in self._json(ref) if not t["passed"]]
            return [_text(goal + "\n".join(
                f'<test path="{escape(t["path"])}">{escape(t["content"])}</test>\n'
                f"<failure>{escape(t['failure'])}</failure>"
                for t in failing
            ))]  # fmt: skip
        raise PolicyError(f"unknown role {arg.role!r}")

    @activity.defn(name=ROLE_CALL)
    @paid
    @permanent_errors
    @heartbeats
    async def role_call(self, arg: RoleInput) -> RoleOutput:
        tag_span(arg.run.run_id)
        role = load_role(arg.role)
        content = await self._content(arg)
        model = self.models.choose(arg.policy)
        answered = 0

        async def call(system: str, blocks: Blocks) -> str:
            nonlocal answered
            answered += 1
            request = ModelCall(
                arg.role, system, [{"role": "user", "content": blocks}],
                script_key=arg.key, index=arg.offset + answered - 1,
            )  # fmt: skip
            return (await ask(model, request, charge)).text

        answer, consumed = await ask_role(role, content, call)
        text, summary = render(arg, answer, self)
        verdicts = answer.get("verdicts", []) if arg.role == "judge" else []
        return RoleOutput(
            answer_ref=self.store.put_text(json.dumps(answer)),
            text_ref=self.store.put_text(text),
            summary=summary,
            consumed=consumed,
            usage=Usage(),  # @paid puts the ledger's total here
            attempt=activity.info().attempt,
            valid=sum(1 for v in verdicts if v["valid"]),
            invalid=sum(1 for v in verdicts if not v["valid"]),
        )

    @activity.defn(name=ADVERSARIAL_RUN)
    @permanent_errors
    async def adversarial_tests(self, arg: AdversarialInput) -> AdversarialOutput:
        """Run the red team's tests against a candidate, in their own workspace (the coder's
        workspace never sees them)."""
        tag_span(arg.run.run_id)
        tests = [t for ref in arg.tests for t in self._json(ref)["tests"]]
        if arg.only_valid_from:
            valid = {v["path"] for v in self._json(arg.only_valid_from)["verdicts"] if v["valid"]}
            tests = [t for t in tests if t["path"] in valid]
        if arg.only_passing_from:
            held = {r["path"] for r in self._json(arg.only_passing_from) if r["passed"]}
            tests = [t for t in tests if t["path"] in held]
        ws = await asyncio.to_thread(self.snapshots.materialize, arg.run, arg.snapshot, "adversary")
        base = await asyncio.to_thread(
            self.snapshots.materialize, arg.run, arg.run.base_sha, "base"
        )
        sandbox = await sandbox_for(self.snapshots, self.runner, arg.run, base)
        tests_are = convention_for(base, load_config(base))
        results = []
        for test in tests:
            try:
                target = safe_path(ws, test["path"], ("ratchet.toml",))
                if not any(tests_are.allows(kind, test["path"]) for kind in KIND.values()):
                    raise PatchRefused(f"{tests_are.runner} does not run a test at that path")
            except PatchRefused as err:
                results.append({**test, "passed": False, "failure": f"refused: {err}"})
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(test["content"])
            run = await run_tests(
                tests_are.command(test["path"], test["content"]), ws,
                limits=replace(self.runner.limits, timeout_s=arg.timeout_s),
                sandbox=sandbox, reruns=1, tick=activity.heartbeat,
            )  # fmt: skip
            failure = (
                "" if run.passed else run.result.output[-FAILURE_CHARS:].decode(errors="replace")
            )
            results.append({**test, "passed": run.passed, "failure": failure})
        failing = [r for r in results if not r["passed"]]
        feedback = [f"{arg.label} fail:"]
        for r in failing:
            feedback += [f"- {Path(r['path']).stem}: {r['rationale']}", r["failure"][-800:]]
        return AdversarialOutput(
            self.store.put_text(json.dumps(results)), len(results), len(failing),
            activity.info().attempt,
            self.store.put_text("\n".join(feedback)) if failing else None,
        )  # fmt: skip

    @activity.defn(name=ADD_TESTS)
    @permanent_errors
    async def add_tests(self, arg: AddTestsInput) -> AddTestsOutput:
        """Deliver the valid adversarial tests (those that pass now) with the patch."""
        tag_span(arg.run.run_id)
        results = [r for r in self._json(arg.results_ref) if r["passed"]]
        ws = await asyncio.to_thread(self.snapshots.materialize, arg.run, arg.snapshot, "patch")
        added = []
        for test in results:
            write_safely(ws, test["path"], test["content"], ("ratchet.toml",))
            added.append(test["path"])
        sha = await asyncio.to_thread(
            self.snapshots.snapshot, arg.run, ws, "adversarial-tests", "Add the red team's tests"
        )
        return AddTestsOutput(sha, added, activity.info().attempt)

    @activity.defn(name=MEMORY_READ)
    @permanent_errors
    async def memory_read(self, arg: MemoryReadInput) -> MemoryRead:
        tag_span(arg.run_id)
        goal = arg.goal or (self.store.get_text(arg.goal_ref) if arg.goal_ref else "")
        entries = Memory(self.home, self.store).relevant(arg.repo, goal)
        if not entries:
            return MemoryRead(None, [], activity.info().attempt)
        ref = self.store.put_text(as_context(entries))
        return MemoryRead(ref, [e["id"] for e in entries], activity.info().attempt)

    @activity.defn(name=MEMORY_RECORD)
    @permanent_errors
    async def memory_record(self, arg: MemoryRecordInput) -> MemoryRecorded:
        tag_span(arg.run_id)
        answer = self._json(arg.answer_ref)
        version = await asyncio.to_thread(
            Memory(self.home, self.store).record, arg.repo, arg.run_id, answer["entries"],
            answer["contradicts"],
        )  # fmt: skip
        return MemoryRecorded(version, len(answer["entries"]), len(answer["contradicts"]),
                              activity.info().attempt)  # fmt: skip

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.role_call, self.adversarial_tests, self.add_tests, self.memory_read,
            self.memory_record,
        ]  # fmt: skip


def render(arg: RoleInput, answer: dict[str, Any], roles: RoleActivities) -> tuple[str, str]:
    """(text for people and the coder, one-line summary)."""
    if arg.role == "perspective":
        steps = "\n".join(f"{i}. {s}" for i, s in enumerate(answer["plan"], 1))
        return f"## {answer['lens']}\n{steps}", f"{arg.lens}: {len(answer['plan'])} steps"
    if arg.role == "synthesis":
        lines = ["# Plan", ""] + [f"{i}. {s}" for i, s in enumerate(answer["plan"], 1)]
        lines += ["", "## Contributions"]
        lines += [f"- {c['lens']}: {c['contribution']}" for c in answer["contributions"]]
        lines += ["", "## Objections overruled"]
        lines += [f"- {o['lens']}: {o['objection']} — {o['reason']}" for o in answer["overruled"]]
        lenses = sorted({c["lens"] for c in answer["contributions"]})
        return "\n".join(lines) + "\n", f"merged {len(lenses)} perspectives: {', '.join(lenses)}"
    if arg.role in ("adversary", "invariants"):
        return "\n".join(t["path"] for t in answer["tests"]), f"{len(answer['tests'])} tests"
    if arg.role == "memory":
        lines = [f"- ({e['kind']}) {e['text']}" for e in answer["entries"]]
        summary = f"{len(answer['entries'])} entries, {len(answer['contradicts'])} contradicted"
        return "\n".join(lines), summary
    if arg.role == "claims":
        claims = answer["claims"]
        return "\n".join(f"- {c['id']}: {c['text']}" for c in claims), f"{len(claims)} claims"
    # judge: feedback for the coder — failures of the valid tests, never their source.
    failing = {t["path"]: t for ref in arg.inputs for t in roles._json(ref) if not t["passed"]}
    valid = [v for v in answer["verdicts"] if v["valid"]]
    invalid = [v for v in answer["verdicts"] if not v["valid"]]
    lines = ["Adversarial tests (written from the goal, not shown to you) broke the change:"]
    for v in valid:
        failure = failing.get(v["path"], {}).get("failure", "")
        lines += [f"- {Path(v['path']).stem}: {v['reason']}", "  failure:", failure[-800:]]
    return "\n".join(lines), f"{len(valid)} valid, {len(invalid)} invalid"
