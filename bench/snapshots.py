"""Time to materialize a snapshot into a workspace, next to `git clone` and `cp -r`, measured
side by side in one run on repositories of 1k, 10k and 50k files (medians over repeats).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gym import workspace
from gym.git import git

SIZES = (1_000, 10_000, 50_000)
REPEATS = 3
RESULTS = Path(__file__).parent / "results"


def build_repo(root: Path, files: int) -> Path:
    repo = root / f"repo-{files}"
    for i in range(files):
        path = repo / f"pkg{i % 100:02d}" / f"sub{i % 7}" / f"mod_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE_{i} = {i}\n\n\ndef f_{i}(x):\n    return x + {i}\n")
    git("init", "--quiet", "--initial-branch=main", cwd=repo)
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "-m", "bench", cwd=repo)
    return repo


def median_s(action: Callable[[int], None]) -> float:
    times = []
    for i in range(REPEATS):
        started = time.perf_counter()
        action(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(root: Path, files: int) -> dict[str, float]:
    repo = build_repo(root, files)
    mirror, sha = workspace.Mirrors(root / "home").sync(str(repo), "HEAD")
    out = root / f"out-{files}"

    def fresh_worktree(i: int) -> None:
        workspace.materialize(mirror, sha, out / f"wt-{i}")

    def reused_worktree(i: int) -> None:
        workspace.materialize(mirror, sha, out / "wt-0")  # already exists: reset + clean

    def clone(i: int) -> None:
        subprocess.run(["git", "clone", "--quiet", str(repo), str(out / f"clone-{i}")], check=True)

    def copy(i: int) -> None:
        shutil.copytree(repo, out / f"copy-{i}", symlinks=True)

    figures = {
        "materialize_new_s": median_s(fresh_worktree),
        "materialize_reused_s": median_s(reused_worktree),
        "git_clone_s": median_s(clone),
        "cp_r_s": median_s(copy),
    }
    figures["new_vs_clone"] = figures["materialize_new_s"] / figures["git_clone_s"]
    figures["reused_vs_clone"] = figures["materialize_reused_s"] / figures["git_clone_s"]
    return figures


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory(prefix="ratchet-bench-") as tmp:
        for files in SIZES:
            results[str(files)] = measure(Path(tmp), files)
            r = results[str(files)]
            print(
                f"{files:>6} files: new worktree {r['materialize_new_s']:.3f}s, "
                f"reused {r['materialize_reused_s']:.3f}s, git clone {r['git_clone_s']:.3f}s, "
                f"cp -r {r['cp_r_s']:.3f}s  (new/clone {r['new_vs_clone']:.2f}x, "
                f"reused/clone {r['reused_vs_clone']:.2f}x)",
                flush=True,
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "snapshots.json").write_text(
        json.dumps({"repeats": REPEATS, "sizes": results}, indent=2)
    )


if __name__ == "__main__":
    main()
