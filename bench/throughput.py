"""Runs completed per minute, and how long a run takes, with N scripted ForwardPlanningWorkflow
runs at once on one worker (`worker.build_worker`, its defaults: the bwrap sandbox, 8 activities
at once), for N = 1, 4 and 8 measured in turn in the same process, repeat by repeat.

Every run is the real pipeline on a real repository: prepare, baseline tests and lint, plan, a
wrong patch whose tests fail, its repair, tests, lint and gates again, delivery to a branch. The
policy is the scripted test double, so the model's time is not in the figures: what is left is
the harness and the repository's own tests, which on this 2-core machine are most of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.stack import (
    MachineCpu,
    connect,
    dev_server,
    make_settings,
    median,
    print_table,
    write_results,
)
from contracts.results import TaskResult, TaskState
from contracts.runs import FORWARD_WORKFLOW, PolicyChoice, TaskInput
from ratchet.artifacts import FilesystemArtifactStore
from ratchet.settings import Settings
from ratchet.telemetry import install
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from worker import build_worker

CONCURRENCY = (1, 4, 8)
REPEATS = 3


class Runs:
    def __init__(self, client: Client, settings: Settings, repo: Path, script_ref: str) -> None:
        self.client, self.settings, self.repo, self.script_ref = client, settings, repo, script_ref

    async def one(self) -> tuple[float, int]:
        """One run from its start to its result, and how many of its steps were retried; fails
        unless it delivered a verified patch."""
        run_id = f"task-bench-{uuid.uuid4().hex[:12]}"
        task = TaskInput(
            run_id=run_id, repo=str(self.repo), goal="add mul",
            policy=PolicyChoice("scripted", self.script_ref), max_repair_rounds=2,
            test_timeout_s=self.settings.test_timeout_s,
            heartbeat_timeout_s=self.settings.heartbeat_timeout_s,
        )  # fmt: skip
        started = time.perf_counter()
        handle = await self.client.start_workflow(
            FORWARD_WORKFLOW, task, id=run_id, task_queue=self.settings.task_queue,
            result_type=TaskResult,
        )  # fmt: skip
        result = await handle.result()
        latency = time.perf_counter() - started
        assert result.branch and all(g.passed for g in result.gates), result
        state = await handle.query("state", result_type=TaskState)
        return latency, sum(step.attempts - 1 for step in state.steps)

    async def batch(self, n: int) -> dict[str, Any]:
        machine, started = MachineCpu(), time.perf_counter()
        runs = await asyncio.gather(*(self.one() for _ in range(n)))
        wall, busy = time.perf_counter() - started, machine.share()
        return {
            "wall_s": wall, "runs_per_min": n / wall * 60, "machine_busy": busy,
            # CPU a run costs, from how busy all the cores were (anyone's work counts).
            "core_s_per_run": busy * (os.cpu_count() or 1) * wall / n,
            "latencies_s": [r[0] for r in runs], "retried_steps": sum(r[1] for r in runs),
        }  # fmt: skip


async def run(root: Path) -> dict[str, Any]:
    (root / "temporal").mkdir()
    async with dev_server(root / "temporal") as target:
        settings = make_settings(root / "home", target)
        provider, _ = install(settings, "ratchet-worker")  # the worker's own telemetry
        logging.getLogger("temporalio").setLevel(logging.WARNING)
        client = await connect(target, provider)
        repo = make_repo(root / "calc", PY_REPO)
        script = write_script(root / "script.toml", [ADD_MUL_WRONG, FIX_MUL])
        ref = FilesystemArtifactStore(settings.artifacts_dir).put_text(script.read_text())
        runs = Runs(client, settings, repo, ref)
        batches: dict[int, list[dict[str, Any]]] = {n: [] for n in CONCURRENCY}
        async with build_worker(client, settings):
            await runs.one()  # warm-up: the mirror, the sandbox's first import of the workflows
            for _ in range(REPEATS):  # every N once per repeat, so drift hits them alike
                for n in CONCURRENCY:
                    batches[n].append(await runs.batch(n))
                    last = batches[n][-1]
                    print(f"  N={n}: {last['runs_per_min']:.1f} runs/min, "
                          f"cores {last['machine_busy']:.0%} busy", flush=True)  # fmt: skip
        provider.shutdown()
    rows: dict[str, Any] = {}
    for n, repeats in batches.items():
        rows[str(n)] = {
            "concurrency": n,
            "repeats": repeats,
            "runs_per_min": median([b["runs_per_min"] for b in repeats]),
            "median_latency_s": median([median(b["latencies_s"]) for b in repeats]),
            "max_latency_s": median([max(b["latencies_s"]) for b in repeats]),
            "machine_busy": median([b["machine_busy"] for b in repeats]),
            "core_s_per_run": median([b["core_s_per_run"] for b in repeats]),
            "retried_steps": sum(b["retried_steps"] for b in repeats),
        }
    solo = rows[str(CONCURRENCY[0])]
    for row in rows.values():
        row["throughput_vs_n1"] = row["runs_per_min"] / solo["runs_per_min"]
        row["latency_vs_n1"] = row["median_latency_s"] / solo["median_latency_s"]
    return {"repeats": REPEATS, "concurrency": rows}


def report(results: dict[str, Any]) -> None:
    print_table(
        f"throughput: scripted runs on one worker (median of {REPEATS})",
        ["N at once", "runs/min", "median latency", "slowest", "throughput vs N=1",
         "latency vs N=1", "cores busy", "CPU a run"],
        [[n, f"{r['runs_per_min']:.1f}", f"{r['median_latency_s']:.2f} s",
          f"{r['max_latency_s']:.2f} s", f"{r['throughput_vs_n1']:.2f}x",
          f"{r['latency_vs_n1']:.2f}x", f"{r['machine_busy']:.0%}",
          f"{r['core_s_per_run']:.1f} core-s"]
         for n, r in results["concurrency"].items()],
    )  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ratchet-throughput-") as tmp:
        results = asyncio.run(run(Path(tmp)))
    write_results("throughput", results)
    report(results)


if __name__ == "__main__":
    main()
