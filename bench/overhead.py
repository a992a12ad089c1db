"""What the harness costs a step: a 20-step workflow through a real Temporal dev server and a
worker (Ratchet's step machinery, its interceptors, its tracing) next to the same 20 steps
called directly in one process, side by side in one run, paired repeat by repeat.

Three kinds of step: a no-op (the harness alone), `true` (the gym's runner starting a process,
the smallest real step) and `sleep 0.2` (a step as long as a small test run: the harness costs a
short step more, see bench/README.md). Then whole scripted ForwardPlanningWorkflow runs: their
wall time next to the time their activities were running, from the activities' own spans.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.observe import ObserveInterceptor
from bench.stack import connect, dev_server, make_settings, median, print_table, write_results
from bench.steps_workflow import (
    STEP,
    STEPS_WORKFLOW,
    StepInput,
    StepOutput,
    StepsInput,
    StepsWorkflow,
)
from contracts.results import TaskResult
from contracts.runs import FORWARD_WORKFLOW, PolicyChoice, TaskInput
from gym.runner import Limits, run_command
from gym.sandbox import NoSandbox
from ratchet.artifacts import FilesystemArtifactStore
from ratchet.settings import Settings
from ratchet.telemetry import RUN_ID_ATTRIBUTE, install
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from worker import build_worker

STEPS = 20
REPEATS = 5
COMMANDS = ("", "true", "sleep 0.2")
LOCAL = "no-op, local"
"""The no-op as a local activity: what a light bookkeeping step (verify, history, localize,
memory read) pays since it is one."""
FORWARD_RUNS = 3
TEST_COMMAND_MS = 1000.0
"""The share is stated for a step whose test command takes this long."""
SERVERS: dict[str, tuple[str, ...]] = {
    "default": (),  # as `ratchet up` runs it
    # The history service's transfer queue read at up to 1000/s instead of 20/s: with it, the
    # ~50 ms floor a step of 2-40 ms shows on the default dev server goes away (bench/README.md).
    "transfer-poll-1000": ("--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000"),
}


@activity.defn(name=STEP)
async def step(arg: StepInput) -> StepOutput:
    if not arg.command:
        return StepOutput(0)
    # Unsandboxed on both sides: the sandbox's cost is the step's, not the harness's.
    result = await run_command(
        arg.command, Path(arg.workspace), sandbox=NoSandbox(), limits=Limits(timeout_s=60)
    )
    return StepOutput(result.exit_code)


async def direct(command: str, ws: Path) -> float:
    started = time.perf_counter()
    for _ in range(STEPS):
        out = await step(StepInput(command, str(ws)))
        assert out.exit_code == 0
    return time.perf_counter() - started


async def through_temporal(client: Client, queue: str, command: str, ws: Path, steps: int,
                           local: bool = False) -> float:  # fmt: skip
    run_id = f"bench-steps-{uuid.uuid4().hex[:12]}"
    started = time.perf_counter()
    done = await client.execute_workflow(
        STEPS_WORKFLOW, StepsInput(run_id, steps, StepInput(command, str(ws)), local),
        id=run_id, task_queue=queue, result_type=int,
    )  # fmt: skip
    assert done == steps
    return time.perf_counter() - started


def _label(command: str) -> str:
    return command or "no-op"


async def measure_steps(client: Client, settings: Settings, ws: Path) -> dict[str, Any]:
    queue = f"{settings.task_queue}-steps"
    worker = Worker(
        client, task_queue=queue, workflows=[StepsWorkflow], activities=[step],
        interceptors=[ObserveInterceptor()],
        max_concurrent_activities=settings.max_concurrent_activities,
    )  # fmt: skip
    raw: dict[str, dict[str, list[float]]] = {
        label: {"temporal_s": [], "direct_s": []} for label in [*map(_label, COMMANDS), LOCAL]
    }
    empty: list[float] = []
    # The steps run unsandboxed on purpose (see `step`): no warning per step.
    logging.getLogger("ratchet.gym").setLevel(logging.ERROR)
    async with worker:
        for command in COMMANDS:  # warm-up: the sandbox's first import of the workflow module
            await through_temporal(client, queue, command, ws, STEPS)
            await direct(command, ws)
        await through_temporal(client, queue, "", ws, STEPS, local=True)
        for _ in range(REPEATS):
            empty.append(await through_temporal(client, queue, "", ws, 0))
            for command in COMMANDS:
                times = raw[_label(command)]
                times["temporal_s"].append(
                    await through_temporal(client, queue, command, ws, STEPS)
                )
                times["direct_s"].append(await direct(command, ws))
            raw[LOCAL]["temporal_s"].append(
                await through_temporal(client, queue, "", ws, STEPS, local=True)
            )
            raw[LOCAL]["direct_s"].append(await direct("", ws))
    logging.getLogger("ratchet.gym").setLevel(logging.NOTSET)
    steps: dict[str, Any] = {}
    for label, times in raw.items():
        pairs = zip(times["temporal_s"], times["direct_s"], strict=True)
        per_step_ms = [(t - d) / STEPS * 1000 for t, d in pairs]
        overhead = median(per_step_ms)
        steps[label] = {
            **times,
            "overhead_per_step_ms_repeats": per_step_ms,
            "temporal_median_s": median(times["temporal_s"]),
            "direct_median_s": median(times["direct_s"]),
            "direct_per_step_ms": median(times["direct_s"]) / STEPS * 1000,
            "overhead_per_step_ms": overhead,
            "share_of_1s_step": overhead / (overhead + TEST_COMMAND_MS),
        }
    return {"by_step": steps, "empty_workflow_s": empty, "empty_workflow_median_s": median(empty)}


def _busy(spans: list[ReadableSpan]) -> float:
    """Seconds during which at least one of the spans was open (steps may overlap)."""
    busy, end = 0, 0
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        start, stop = span.start_time or 0, span.end_time or 0
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy / 1e9


async def measure_forward(
    client: Client, settings: Settings, root: Path, spans: InMemorySpanExporter
) -> dict[str, Any]:
    store = FilesystemArtifactStore(settings.artifacts_dir)
    repo = make_repo(root / "calc", PY_REPO)
    script = write_script(root / "script.toml", [ADD_MUL_WRONG, FIX_MUL])
    ref = store.put_text(script.read_text())
    runs = []
    async with build_worker(client, settings):
        for i in range(FORWARD_RUNS + 1):  # the first one warms the mirror and the sandbox
            run_id = f"task-bench-{uuid.uuid4().hex[:12]}"
            task = TaskInput(
                run_id=run_id, repo=str(repo), goal="add mul",
                policy=PolicyChoice("scripted", ref), max_repair_rounds=2,
                test_timeout_s=settings.test_timeout_s,
                heartbeat_timeout_s=settings.heartbeat_timeout_s,
            )  # fmt: skip
            started = time.perf_counter()
            result = await client.execute_workflow(
                FORWARD_WORKFLOW, task, id=run_id, task_queue=settings.task_queue,
                result_type=TaskResult,
            )  # fmt: skip
            wall = time.perf_counter() - started
            assert result.branch and all(g.passed for g in result.gates), result
            if i == 0:
                continue
            ours = [
                s for s in spans.get_finished_spans()
                if s.name.startswith("RunActivity:")
                and (s.attributes or {}).get(RUN_ID_ATTRIBUTE) == run_id
            ]  # fmt: skip
            busy = _busy(ours)
            runs.append({
                "wall_s": wall, "activities": len(ours), "activity_busy_s": busy,
                "activity_sum_s": sum(((s.end_time or 0) - (s.start_time or 0)) for s in ours)
                / 1e9,
                "harness_s": wall - busy, "harness_share": (wall - busy) / wall,
                "harness_per_activity_ms": (wall - busy) / len(ours) * 1000,
            })  # fmt: skip
    medians = {key: median([r[key] for r in runs]) for key in runs[0]}
    return {"runs": runs, "median": medians}


async def run(root: Path) -> dict[str, Any]:
    (root / "ws").mkdir()
    provider, spans, servers = None, InMemorySpanExporter(), {}
    for name, extra in SERVERS.items():
        home = root / name
        (home / "temporal").mkdir(parents=True)
        async with dev_server(home / "temporal", extra_args=extra) as target:
            settings = make_settings(home / "ratchet", target)
            if provider is None:  # once a process: the worker's own telemetry, spans kept too
                provider, _ = install(settings, "ratchet-worker")
                logging.getLogger("temporalio").setLevel(logging.WARNING)
                provider.add_span_processor(SimpleSpanProcessor(spans))
            client = await connect(target, provider)
            steps = await measure_steps(client, settings, root / "ws")
            forward = await measure_forward(client, settings, home, spans)
            servers[name] = {"dev_server_args": list(extra), **steps, "forward": forward}
    if provider is not None:
        provider.shutdown()
    return {"steps": STEPS, "repeats": REPEATS, "test_command_ms": TEST_COMMAND_MS,
            "servers": servers}  # fmt: skip


def report(results: dict[str, Any]) -> None:
    rows, runs = [], []
    for server, figures in results["servers"].items():
        for label, r in figures["by_step"].items():
            rows.append([
                server, label, f"{r['temporal_median_s'] * 1000:.0f} ms",
                f"{r['direct_median_s'] * 1000:.0f} ms", f"{r['direct_per_step_ms']:.1f} ms",
                f"{r['overhead_per_step_ms']:.1f} ms", f"{r['share_of_1s_step']:.1%}",
            ])  # fmt: skip
        empty = f"{figures['empty_workflow_median_s'] * 1000:.0f} ms"
        rows.append([server, "(empty workflow)", empty, "", "", "", ""])
        f = figures["forward"]["median"]
        runs.append([
            server, f"{f['activities']:.0f}", f"{f['wall_s']:.2f} s",
            f"{f['activity_busy_s']:.2f} s", f"{f['harness_s']:.2f} s",
            f"{f['harness_share']:.1%}", f"{f['harness_per_activity_ms']:.0f} ms",
        ])  # fmt: skip
    print_table(
        f"overhead: {STEPS} steps through Temporal vs called directly (median of {REPEATS})",
        ["dev server", "step", "Temporal", "direct", "direct/step", "overhead/step",
         "share at 1 s"],
        rows,
    )  # fmt: skip
    print_table(
        f"scripted ForwardPlanningWorkflow runs (median of {FORWARD_RUNS})",
        ["dev server", "activities", "wall", "activities busy", "harness", "harness share",
         "per activity"],
        runs,
    )  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ratchet-overhead-") as tmp:
        results = asyncio.run(run(Path(tmp)))
    write_results("overhead", results)
    report(results)


if __name__ == "__main__":
    main()
