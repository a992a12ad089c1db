"""A run's wall time with its artifacts and snapshots in S3-compatible storage, next to the local
directory: the same scripted run (prepare, baseline, a wrong patch, its repair, tests, lint and
gates twice, delivery) on three workers of one process, in turns, repeat by repeat.

- `local dir`: the default store, `$RATCHET_HOME/artifacts`, a warm home.
- `s3, warm home`: the store is a moto server on loopback (`moto_server`, in a process of its
  own, reached over HTTP by boto3); the worker's home keeps its mirror and environment.
- `s3, cold home`: the same store, a worker with an empty home each run: it clones the
  repository, builds the environment and fetches what it needs, as a new worker on another
  machine would.
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

from bench.stack import connect, dev_server, make_settings, median, print_table, write_results
from contracts.results import TaskResult
from contracts.runs import FORWARD_WORKFLOW, PolicyChoice, TaskInput
from ratchet.settings import Settings
from ratchet.stores import artifact_store
from ratchet.telemetry import install
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.s3server import s3_server
from tests.utils.scripts import ADD_MUL_WRONG, FIX_MUL, write_script
from worker import build_worker

REPEATS = 5
VARIANTS = ("local dir", "s3, warm home", "s3, cold home")


async def one_run(client: Client, settings: Settings, repo: Path, script: str) -> float:
    """One scripted run on `settings`' worker, start to result; fails unless it delivered."""
    ref = artifact_store(settings).put_text(script)
    run_id = f"task-bench-{uuid.uuid4().hex[:12]}"
    task = TaskInput(
        run_id=run_id, repo=str(repo), goal="add mul", policy=PolicyChoice("scripted", ref),
        max_repair_rounds=2, test_timeout_s=settings.test_timeout_s,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
    )  # fmt: skip
    started = time.perf_counter()
    handle = await client.start_workflow(
        FORWARD_WORKFLOW, task, id=run_id, task_queue=settings.task_queue, result_type=TaskResult
    )
    result = await handle.result()
    assert result.branch and all(g.passed for g in result.gates), result
    return time.perf_counter() - started


async def run(root: Path) -> dict[str, Any]:
    (root / "temporal").mkdir()
    walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with s3_server() as server:
        os.environ.update(server.env())  # the standard AWS variables, as a deployment sets
        url = f"s3://{server.bucket('bench')}/ratchet"
        async with dev_server(root / "temporal") as target:
            local = make_settings(root / "local", target)
            warm = make_settings(root / "s3-warm", target, artifacts_url=url)
            provider, _ = install(local, "ratchet-worker")
            logging.getLogger("temporalio").setLevel(logging.WARNING)
            client = await connect(target, provider)
            repo = make_repo(root / "calc", PY_REPO)
            script = write_script(root / "script.toml", [ADD_MUL_WRONG, FIX_MUL]).read_text()
            async with build_worker(client, local), build_worker(client, warm):
                for settings in (local, warm):  # warm-up: mirrors, environments, imports
                    await one_run(client, settings, repo, script)
                for n in range(REPEATS):  # in turns, so drift hits every variant alike
                    walls["local dir"].append(await one_run(client, local, repo, script))
                    walls["s3, warm home"].append(await one_run(client, warm, repo, script))
                    cold = make_settings(root / f"s3-cold-{n}", target, artifacts_url=url)
                    async with build_worker(client, cold):
                        walls["s3, cold home"].append(await one_run(client, cold, repo, script))
                    print(f"  repeat {n + 1}: " + ", ".join(
                        f"{v} {walls[v][-1]:.2f} s" for v in VARIANTS), flush=True)  # fmt: skip
            provider.shutdown()
    base = median(walls["local dir"])
    rows = {
        v: {"walls_s": walls[v], "median_s": median(walls[v]), "vs_local": median(walls[v]) / base}
        for v in VARIANTS
    }
    return {"repeats": REPEATS, "variants": rows}


def report(results: dict[str, Any]) -> None:
    print_table(
        f"store: one scripted run with two repair rounds' worth of steps (median of {REPEATS})",
        ["store", "run wall time", "vs local dir", "fastest", "slowest"],
        [[v, f"{r['median_s']:.2f} s", f"{r['vs_local']:.2f}x", f"{min(r['walls_s']):.2f} s",
          f"{max(r['walls_s']):.2f} s"] for v, r in results["variants"].items()],
    )  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ratchet-store-") as tmp:
        results = asyncio.run(run(Path(tmp)))
    write_results("store", results)
    report(results)


if __name__ == "__main__":
    main()
