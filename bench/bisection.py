"""Ratchet's k-way parallel bisection next to sequential `git bisect run`, side by side in one run:
rounds (sequential steps) and wall time to find a regression planted in a linear history.

Both run the same reproduction (`python -m pytest -q`) in the same kind of workspace with no
sandbox, so the comparison is of the search, not of the isolation. Ratchet's probes here are the
gym's runner driven by the workflow's own planner (`contracts.bisect.Multisection`), without
Temporal; the harness's per-step overhead is measured by its own benchmark.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contracts.bisect import Multisection
from gym import workspace
from gym.git import git
from gym.runner import Limits
from gym.testing import run_tests

SIZES = (100, 1000, 5000)
REPEATS = 3
K = 3
RESULTS = Path(__file__).parent / "results"
GOOD_CALC = "def add(a, b):\n    return a + b\n"
BAD_CALC = "def add(a, b):\n    return a + b + (1 if b > 2 else 0)\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
PYPROJECT = (
    '[project]\nname = "calc"\nversion = "0"\n[tool.pytest.ini_options]\npythonpath = ["."]\n'
)


def build_history(path: Path, commits: int, bad_at: int) -> list[str]:
    """A linear history made with git fast-import (thousands of commits in a second)."""
    git("init", "--quiet", "--initial-branch=main", str(path))
    stream = []

    def blob(text: str) -> str:
        data = text.encode()
        return f"data {len(data)}\n{text}"

    for i in range(commits):
        stream.append("commit refs/heads/main")
        stream.append(f"committer Bench <bench@localhost> {1700000000 + i} +0000")
        stream.append(blob(f"change {i}\n"))  # fast-import chains commits on the branch
        if i == 0:
            for name, text in (("pyproject.toml", PYPROJECT), ("calc.py", GOOD_CALC),
                               ("tests/test_calc.py", TEST)):  # fmt: skip
                stream.append(f"M 100644 inline {name}")
                stream.append(blob(text))
        elif i == bad_at:
            stream.append("M 100644 inline calc.py")
            stream.append(blob(BAD_CALC))
        else:
            stream.append(f"M 100644 inline notes/{i % 10}.txt")
            stream.append(blob(f"note {i}\n"))
    git("fast-import", "--quiet", cwd=path, input=("\n".join(stream) + "\n").encode())
    git("reset", "--hard", "--quiet", "main", cwd=path)
    return list(reversed(git("rev-list", "main", cwd=path).split()))


async def ratchet_bisect(home: Path, repo: Path, commits: list[str]) -> tuple[str, int, float]:
    mirror, _ = workspace.Mirrors(home).sync(str(repo), "main")
    search = Multisection(commits, k=K)
    search.record(commits[0], "good")
    search.record(commits[-1], "bad")
    rounds, started = 0, time.perf_counter()

    async def probe(slot: int, sha: str) -> tuple[str, str]:
        ws = workspace.materialize(mirror, sha, home / "ws" / f"probe-{slot}")
        run = await run_tests("python -m pytest -q", ws, limits=Limits(timeout_s=120), reruns=0)
        return sha, "good" if run.result.exit_code == 0 else "bad"

    while not search.done():
        rounds += 1
        batch = search.next_probes()
        for sha, outcome in await asyncio.gather(*(probe(i, s) for i, s in enumerate(batch))):
            search.record(sha, outcome)
    return search.verdict()[0], rounds, time.perf_counter() - started


def git_bisect(repo: Path, commits: list[str]) -> tuple[str, int, float]:
    started = time.perf_counter()
    git("bisect", "start", commits[-1], commits[0], cwd=repo)
    run = subprocess.run(
        # This interpreter, as the gym's runner puts it first on PATH: the same pytest and plugins.
        ["git", "bisect", "run", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=repo, capture_output=True, text=True, check=True,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    steps = run.stdout.count("running ")
    culprit = run.stdout.split(" is the first bad commit")[0].split()[-1]
    git("bisect", "reset", cwd=repo)
    return culprit, steps, elapsed


def main() -> None:
    # Both sides run unsandboxed here on purpose (see the module's docstring): no warnings.
    logging.getLogger("ratchet.gym").setLevel(logging.ERROR)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="ratchet-bisect-") as tmp:
        for size in SIZES:
            bad_at = size * 2 // 3 + 1
            repo = Path(tmp) / f"repo-{size}"
            commits = build_history(repo, size, bad_at)
            ours, theirs = [], []
            for repeat in range(REPEATS):
                home = Path(tmp) / f"home-{size}-{repeat}"
                culprit, rounds, wall = asyncio.run(ratchet_bisect(home, repo, commits))
                assert culprit == commits[bad_at], "Ratchet's bisection missed the culprit"
                ours.append((rounds, wall))
                culprit, steps, wall = git_bisect(repo, commits)
                assert culprit == commits[bad_at], "git bisect missed the culprit"
                theirs.append((steps, wall))
            row = {
                "commits": size,
                "ratchet_rounds": ours[0][0],
                "ratchet_probes_per_round": K,
                "ratchet_wall_s": statistics.median(w for _, w in ours),
                "git_bisect_steps": theirs[0][0],
                "git_bisect_wall_s": statistics.median(w for _, w in theirs),
            }
            row["wall_ratio"] = row["ratchet_wall_s"] / row["git_bisect_wall_s"]
            row["rounds_ratio"] = row["ratchet_rounds"] / row["git_bisect_steps"]
            row["ratchet_s_per_round"] = row["ratchet_wall_s"] / row["ratchet_rounds"]
            row["git_bisect_s_per_step"] = row["git_bisect_wall_s"] / row["git_bisect_steps"]
            rows[str(size)] = row
            print(
                f"{size:>5} commits: Ratchet k={K} {row['ratchet_rounds']} rounds "
                f"{row['ratchet_wall_s']:.2f}s | git bisect run {row['git_bisect_steps']} steps "
                f"{row['git_bisect_wall_s']:.2f}s | rounds x{row['rounds_ratio']:.2f}, "
                f"wall x{row['wall_ratio']:.2f} | {row['ratchet_s_per_round']:.2f}s a round, "
                f"{row['git_bisect_s_per_step']:.2f}s a step",
                flush=True,
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bisection.json").write_text(
        json.dumps({"repeats": REPEATS, "sizes": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
