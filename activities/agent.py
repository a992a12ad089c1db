"""The agent loop's steps as activities: one model turn, one tool call."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from opentelemetry import trace
from temporalio import activity

from activities.common import heartbeats, tag_span, with_goal
from activities.envs import sandbox_for
from activities.errors import permanent_errors
from activities.models import Models
from activities.paid import CallLedger, charge, paid
from activities.runner import RunnerConfig
from agents import transcript
from agents.asking import ask
from agents.claude_tools import TEXT_EDITOR, editor_call
from agents.ledger import Price
from agents.model import ModelCall
from agents.prompts import load_prompt
from agents.tools import (
    APPLY_PATCH,
    BASH,
    EDITING,
    RUN_TESTS,
    TOOL_NAMES,
    ToolAnswer,
    edit_tool,
    parse_input,
    read_tool,
)
from contracts.agent import (
    MODEL_TURN,
    RUN_TOOL,
    ToolCall,
    ToolInput,
    ToolOutput,
    ToolResult,
    TurnInput,
    TurnOutput,
)
from contracts.budget import Usage
from contracts.runs import PolicyChoice
from gym import runners
from gym.config import load_config
from gym.diagnose import suite_problem
from gym.errors import GymError, PatchDoesNotApply
from gym.patching import PatchRules, apply_patch
from gym.rerun import select_tests
from gym.runners import detect_runner
from gym.shell import run_shell
from gym.snapshots import Snapshots
from gym.testing import run_tests
from ratchet.artifacts import ArtifactStore

TEST_OUTPUT_TAIL = 4000


class AgentActivities:
    def __init__(
        self,
        *,
        home: Path,
        store: ArtifactStore,
        runner: RunnerConfig,
        models: Models,
        prices: dict[str, Price],
    ) -> None:
        self.home = home
        self.store = store
        self.snapshots = Snapshots(home, store)
        self.runner = runner
        self.models = models
        self.prices = prices
        self.ledger = CallLedger(store)

    @activity.defn(name=MODEL_TURN)
    @paid
    @permanent_errors
    @heartbeats
    async def model_turn(self, arg: TurnInput) -> TurnOutput:
        tag_span(arg.run.run_id)
        model = self.models.choose(arg.policy or PolicyChoice(arg.provider))
        if arg.transcript_ref:
            messages = transcript.loads(self.store.get_text(arg.transcript_ref))
        else:  # the first turn opens the conversation with the goal
            arg = with_goal(self.store, arg)
            ws = await asyncio.to_thread(self.snapshots.materialize, arg.run, arg.snapshot, "agent")
            feedback = self.store.get_text(arg.feedback_ref) if arg.feedback_ref else ""
            messages = transcript.opening(
                role=arg.role, goal=arg.goal, plan=self.store.get_text(arg.plan_ref),
                feedback=feedback, workspace=ws,
            )  # fmt: skip
        results = [(r.tool_use_id, r.content, r.is_error) for r in arg.pending_results]
        messages = transcript.with_tool_results(messages, results)
        turns_so_far = sum(1 for m in messages if m.get("role") == "assistant")
        call = ModelCall(
            arg.role, load_prompt("agent"), messages, tools=True,
            script_key=arg.script_key or f"{'refactor' if arg.role == 'refactor' else 'patch'}.1",
            index=turns_so_far,
        )  # fmt: skip
        turn = await ask(model, call, charge)
        messages = [*messages, {"role": "assistant", "content": turn.content}]
        return TurnOutput(
            transcript_ref=self.store.put_text(transcript.dumps(messages)),
            tool_calls=[ToolCall(i, n, j) for i, n, j in turn.tool_calls],
            stop_reason=turn.stop_reason,
            text=turn.text[:2000],
            model=turn.model or model.model_for(arg.role),
            usage=Usage(),  # @paid puts the ledger's total here
            attempt=activity.info().attempt,
        )

    @activity.defn(name=RUN_TOOL)
    @permanent_errors
    async def tool(self, arg: ToolInput) -> ToolOutput:
        tag_span(arg.run.run_id)
        out = await self._tool(arg)
        # The answer goes to the model and into the run's history: none of the worker's secrets.
        return replace(
            out, result=replace(out.result, content=self.store.redact(out.result.content))
        )

    async def _tool(self, arg: ToolInput) -> ToolOutput:
        call, attempt = arg.call, activity.info().attempt
        trace.get_current_span().set_attribute("ratchet.tool", call.name)
        if call.name not in TOOL_NAMES and call.name != TEXT_EDITOR:
            result = ToolResult(call.id, f"there is no tool {call.name!r}", is_error=True)
            return ToolOutput(result, arg.snapshot, attempt)
        name, args = call.name, parse_input(call.input_json)
        if name == TEXT_EDITOR:  # Claude's own editor, as the gym's file tools
            mapped = editor_call(args)
            if isinstance(mapped, str):
                return ToolOutput(ToolResult(call.id, mapped, is_error=True), arg.snapshot, attempt)
            name, args = mapped
        base = await asyncio.to_thread(
            self.snapshots.materialize, arg.run, arg.run.base_sha, "base"
        )
        rules = PatchRules(protected=load_config(base).protected)
        ws = await asyncio.to_thread(self.snapshots.materialize, arg.run, arg.snapshot, "agent")
        if call.name == RUN_TESTS:
            content, bad = await self._run_tests(arg, ws, base, args.get("select"))
            return ToolOutput(ToolResult(call.id, content, bad), arg.snapshot, attempt)
        if call.name == BASH:
            return await self._bash(arg, ws, base, args, rules)
        if name == APPLY_PATCH:
            answer = await asyncio.to_thread(_apply, ws, args, rules)
        elif name not in EDITING:
            answer = await asyncio.to_thread(read_tool, ws, name, args, rules)
            return ToolOutput(
                ToolResult(call.id, answer.content, answer.is_error), arg.snapshot, attempt
            )
        else:
            answer = await asyncio.to_thread(edit_tool, ws, name, args, rules)
        sha = arg.snapshot
        if not answer.is_error:
            step = "edit-" + "".join(ch for ch in call.id if ch.isalnum() or ch in "_-")[-40:]
            sha = await asyncio.to_thread(
                self.snapshots.snapshot, arg.run, ws, step, f"{call.name} ({call.id})"
            )
        return ToolOutput(ToolResult(call.id, answer.content, answer.is_error), sha, attempt)

    async def _bash(
        self, arg: ToolInput, ws: Path, base: Path, args: dict[str, Any], rules: PatchRules
    ) -> ToolOutput:
        attempt = activity.info().attempt
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            answer = ToolResult(arg.call.id, "bash needs a non-empty 'command'", is_error=True)
            return ToolOutput(answer, arg.snapshot, attempt)
        # Within the step's own time limit (the workflow gives a tool call the test timeout).
        timeout_s = min(self.runner.tool_timeout_s, arg.test_timeout_s + 240)
        shell = await run_shell(
            command, ws, sandbox=await sandbox_for(self.snapshots, self.runner, arg.run, base),
            limits=replace(self.runner.limits, timeout_s=timeout_s),
            protected=rules.protected, tick=activity.heartbeat,
        )  # fmt: skip
        # A failing command is an answer, not a tool error: running the same failing
        # reproduction again after a fix must not count as a loop.
        step = "bash-" + "".join(ch for ch in arg.call.id if ch.isalnum() or ch in "_-")[-40:]
        sha = await asyncio.to_thread(
            self.snapshots.snapshot, arg.run, ws, step, f"bash ({arg.call.id})"
        )
        return ToolOutput(ToolResult(arg.call.id, shell.render()), sha, attempt)

    async def _run_tests(
        self, arg: ToolInput, ws: Path, base: Path, select: object = None
    ) -> tuple[str, bool]:
        command = arg.test_command
        if select:
            if not isinstance(select, list) or not all(isinstance(s, str) and s for s in select):
                return "run_tests: 'select' must be a list of test ids or paths", True
            runner = detect_runner(command, ws)
            narrowed = select_tests(command, select) if runner in (None, "pytest") else (
                runners.select(command, runner, select, ws)
            )  # fmt: skip
            if narrowed is None:
                return (f"run_tests: the suite's command ({command}) cannot run a selection "
                        "(it is not a plain pytest call): run it with bash"), True  # fmt: skip
            command = narrowed
        run = await run_tests(
            command, ws,
            limits=replace(self.runner.limits, timeout_s=arg.test_timeout_s),
            sandbox=await sandbox_for(self.snapshots, self.runner, arg.run, base),
            reruns=self.runner.reruns, tick=activity.heartbeat,
        )  # fmt: skip
        report = run.as_json()
        failing = [t["id"] for t in report["tests"] if t["outcome"] in ("failed", "error")]
        lines = [
            f"{'PASSED' if run.passed else 'FAILED'}: {report['passed']} passed, "
            f"{report['failed']} failed, {report['errors']} errors, {len(report['flaky'])} flaky "
            f"(exit {report['exit_code']})"
        ]
        if failing:
            lines.append("failing: " + ", ".join(failing[:20]))
        if why := suite_problem(command, run.result, [t.outcome for t in run.tests]):
            lines.append(f"the suite cannot run: {why}")
        tail = run.result.output[-TEST_OUTPUT_TAIL:].decode(errors="replace")
        return "\n".join([*lines, "output (tail):", tail]), False

    def all(self) -> list[Callable[..., Any]]:
        return [self.model_turn, self.tool]


def _apply(ws: Path, args: dict[str, Any], rules: PatchRules) -> ToolAnswer:
    """apply_patch: a unified diff or search/replace blocks, under the same path rules."""
    patch = args.get("patch")
    if not isinstance(patch, str) or not patch.strip():
        return ToolAnswer("apply_patch needs a non-empty 'patch'", is_error=True)
    try:
        paths = apply_patch(ws, patch, rules)
    except (PatchDoesNotApply, GymError) as err:
        return ToolAnswer(f"the patch did not apply, nothing was written: {err}", is_error=True)
    return ToolAnswer(f"apply_patch: changed {', '.join(paths) or 'nothing'}")
