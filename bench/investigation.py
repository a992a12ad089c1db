"""An investigation next to `git bisect run`, on the same generated ranges, side by side in one run:
how long until each names the culprit.

For each range size (5, 10, 30, 100 and 1,000 commits between a good and a bad commit, the
regression planted at the same place in each), in turns, repeat by repeat:

- `git bisect run`: `git bisect start <bad> <good>` in a clone, then `git bisect run` of the
  reproduction (`python -m pytest -q tests/test_calc.py::test_add`), until it prints "is the
  first bad commit". It trusts the good and the bad commit, and every failure, as given. Its
  `python` is this base interpreter with the packages of the environment Ratchet's probes run
  in (pytest alone: built by the warm-up run), so both sides run the same test the same way;
  this project's venv, with its dozen pytest plugins, would cost git bisect ~0.2 s a step more.
- Ratchet: a whole InvestigationWorkflow (policy none: the culprit is reverted) on a real dev
  server, with one worker of this process (`worker.build_worker`, its defaults: the bwrap
  sandbox, the environment step, its probes), given the same good ref and test id. Its culprit
  time is from the start of the workflow to the start of its `localize` step: the moment the
  culprit is known. The run then reverts it, verifies the revert and delivers it; that is
  reported apart (`whole run`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.bisection import build_history
from bench.stack import connect, dev_server, make_settings, median, print_table, write_results
from contracts.investigation import INVESTIGATION_WORKFLOW, InvestigationInput
from contracts.results import InvestigationResult
from contracts.runs import RunState
from ratchet.telemetry import install
from worker import build_worker

SIZES = tuple(int(s) for s in os.environ.get("BENCH_SIZES", "5,10,30,100,1000").split(","))
REPEATS = 3
TEST_ID = "tests/test_calc.py::test_add"
CULPRIT_AT = 0.61
"""Where in the range the regression is planted (the same share for every size)."""


def git_bisect(repo: Path, good: str, bad: str, workdir: Path,
               python: str) -> tuple[str, float, int]:  # fmt: skip
    """(culprit, seconds, commits tested) of `git bisect run` in a fresh clone."""
    clone = workdir / f"bisect-{uuid.uuid4().hex[:8]}"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
    started = time.perf_counter()
    subprocess.run(["git", "bisect", "start", bad, good], cwd=clone, check=True,
                   capture_output=True)  # fmt: skip
    done = subprocess.run(
        ["git", "bisect", "run", python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         TEST_ID],
        cwd=clone, capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    culprit = next(line.split()[0] for line in done.stdout.splitlines()
                   if line.endswith("is the first bad commit"))  # fmt: skip
    return culprit, seconds, done.stdout.count("running")


def environment_python(home: Path, workdir: Path) -> str:
    """An interpreter with the packages of the environment Ratchet built for the generated
    repository (pytest and its own dependencies, none of this project's plugins), for `git
    bisect run`: a venv of the same base Python whose site-packages lead to the environment's."""
    # The newest: the one the warm-up run of this range has just built.
    found = max(home.glob("envs/*/lib/python3*/site-packages"), key=lambda p: p.stat().st_mtime)
    venv = workdir / f"bisect-venv-{found.parents[2].name}"
    if not venv.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
        own = next(venv.glob("lib/python3*/site-packages"))
        (own / "ratchet-environment.pth").write_text(f"{found}\n")
    return str(venv / "bin" / "python")


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


async def investigate(client: Any, queue: str, repo: Path, good: str) -> dict[str, Any]:
    run_id = f"inv-bench{uuid.uuid4().hex[:8]}"
    task = InvestigationInput(run_id=run_id, kind="regression", repo=str(repo), bad_ref="main",
                              good_ref=good, test_id=TEST_ID, test_timeout_s=120,
                              heartbeat_timeout_s=30)  # fmt: skip
    started = time.perf_counter()
    handle = await client.start_workflow(
        INVESTIGATION_WORKFLOW, task, id=run_id, task_queue=queue, result_type=InvestigationResult
    )
    result = await handle.result()
    whole = time.perf_counter() - started
    state = await handle.query("state", result_type=RunState)
    start = (await handle.describe()).start_time
    localize = next(s for s in state.steps if s.name == "localize")
    # The probes that found it (the one after the fix checks the revert).
    probes = [s for s in state.steps[: state.steps.index(localize)] if s.name == "probe"]
    assert result.culprit is not None, result
    culprit_s = (_at(localize.started_at) - start).total_seconds()
    return {"culprit": result.culprit.sha, "culprit_s": culprit_s, "whole_s": whole,
            "probes": len(probes), "rounds": result.rounds}  # fmt: skip


async def run(root: Path) -> dict[str, Any]:
    (root / "temporal").mkdir()
    rows: dict[str, Any] = {}
    async with dev_server(root / "temporal") as target:
        settings = make_settings(root / "home", target)
        provider, _ = install(settings, "ratchet-worker")
        logging.getLogger("temporalio").setLevel(logging.WARNING)
        client = await connect(target, provider)
        async with build_worker(client, settings):
            for size in SIZES:
                repo = root / f"range-{size}"
                commits = build_history(repo, size + 1, bad_at=max(1, round(size * CULPRIT_AT)))
                expected = commits[max(1, round(size * CULPRIT_AT))]
                await investigate(client, settings.task_queue, repo, commits[0])  # warm-up
                python = environment_python(settings.home, root)
                runs: list[dict[str, Any]] = []
                for n in range(REPEATS if size < 1000 else 2):  # in turns
                    culprit, seconds, tested = git_bisect(repo, commits[0], "main", root, python)
                    assert culprit == expected, (culprit, expected)
                    ours = await investigate(client, settings.task_queue, repo, commits[0])
                    assert ours["culprit"] == expected, ours
                    runs.append({"git_bisect_s": seconds, "git_bisect_tested": tested, **ours})
                    print(f"  {size} commits, repeat {n + 1}: git bisect {seconds:.2f} s "
                          f"({tested} tested), Ratchet culprit {ours['culprit_s']:.2f} s "
                          f"({ours['probes']} probes, {ours['rounds']} rounds), whole run "
                          f"{ours['whole_s']:.2f} s", flush=True)  # fmt: skip
                rows[str(size)] = {
                    "runs": runs,
                    "git_bisect_s": median([r["git_bisect_s"] for r in runs]),
                    "culprit_s": median([r["culprit_s"] for r in runs]),
                    "whole_s": median([r["whole_s"] for r in runs]),
                    "probes": median([r["probes"] for r in runs]),
                    "git_bisect_tested": median([r["git_bisect_tested"] for r in runs]),
                }
                rows[str(size)]["ratio"] = (
                    rows[str(size)]["culprit_s"] / rows[str(size)]["git_bisect_s"]
                )
        provider.shutdown()
    return {"repeats": REPEATS, "sizes": rows}


def report(results: dict[str, Any]) -> None:
    print_table(
        "investigation: culprit named, next to git bisect run (median)",
        ["commits", "git bisect run", "tested", "Ratchet culprit", "probes", "ratio",
         "Ratchet whole run"],
        [[size, f"{r['git_bisect_s']:.2f} s", f"{r['git_bisect_tested']:g}",
          f"{r['culprit_s']:.2f} s", f"{r['probes']:g}", f"{r['ratio']:.2f}x",
          f"{r['whole_s']:.2f} s"] for size, r in results["sizes"].items()],
    )  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ratchet-investigation-") as tmp:
        results = asyncio.run(run(Path(tmp)))
    write_results("investigation", results)
    report(results)


if __name__ == "__main__":
    main()
