"""`ratchet exec` and `ratchet test` as a person runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.gym.test_testing import SUITE
from tests.utils.repos import PY_REPO, commit, make_repo

RATCHET = str(Path(sys.executable).parent / "ratchet")


def ratchet(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATCHET_")}
    env |= {"RATCHET_HOME": str(home), "SECRET_TOKEN": "do-not-leak"}
    return subprocess.run(
        [RATCHET, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_exec_streams_output_and_exits_with_the_commands_status(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    commit(repo, {"calc.py": "# v2\n"}, "v2")
    done = ratchet(tmp_path / "home", "exec", "--repo", str(repo), "--ref", "HEAD~1", "--",
                   "sh", "-c", "cat calc.py; env; exit 7")  # fmt: skip
    assert done.returncode == 7
    assert "def add(a, b):" in done.stdout  # HEAD~1, not the v2 commit
    assert "do-not-leak" not in done.stdout
    assert "isolation: bwrap (sealed): no network" in done.stderr
    assert (repo / "calc.py").read_text() == "# v2\n"  # the repository itself is untouched
    assert not list((tmp_path / "home" / "workspaces").iterdir())  # the workspace is gone


def test_exec_timeout_exits_124(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    done = ratchet(tmp_path / "home", "exec", "--repo", str(repo), "--timeout", "1", "--",
                   "sleep", "60")  # fmt: skip
    assert done.returncode == 124
    assert "killed by timeout" in done.stderr


def test_exec_unknown_ref_is_a_clear_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    done = ratchet(tmp_path / "home", "exec", "--repo", str(repo), "--ref", "nope", "--", "true")
    assert done.returncode == 2
    assert "unknown ref 'nope'" in done.stderr
    assert "Traceback" not in done.stderr


def test_test_json_reports_per_test_outcomes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "suite", SUITE)
    done = ratchet(tmp_path / "home", "test", "--repo", str(repo), "--json")
    assert done.returncode == 1  # test_broken really fails
    report = json.loads(done.stdout)
    assert {k: report[k] for k in ("passed", "failed", "errors", "skipped")} == {
        "passed": 2, "failed": 1, "errors": 0, "skipped": 1,
    }  # fmt: skip
    assert report["flaky"] == ["tests/test_things.py::test_flaky"]
    assert {t["id"] for t in report["tests"]} >= {"tests/test_things.py::TestGroup::test_method"}
    assert report["isolation"].startswith("bwrap")
    assert set(report["tests"][0]) == {"id", "outcome", "duration_s"}


def test_test_with_an_explicit_command(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    done = ratchet(tmp_path / "home", "test", "--repo", str(repo), "--command", "exit 0", "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout)["tests"] == []


def test_test_with_setup_builds_the_environment_once_and_counts_like_pytest(
    tmp_path: Path,
) -> None:
    from tests.utils.pypi import build_wheel

    # A wheel directory of this machine, named by the user's own --setup (--find-links).
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, "tinyfmt", "1.0", {"tinyfmt/__init__.py": "def fmt(x):\n    return x\n"})
    tests = (
        "from tinyfmt import fmt\n\n"
        + "".join(f"def test_{i}():\n    assert fmt({i}) == {i}\n\n" for i in range(4))
        + "def test_broken():\n    assert fmt(1) == 2\n"
    )
    repo = make_repo(tmp_path / "app", {"tests/test_x.py": tests})
    setup = f"python -m pip install --no-index --find-links {wheels} tinyfmt"
    args = ("test", "--repo", str(repo), "--command", "python -m pytest -q tests/test_x.py",
            "--setup", setup, "--json")  # fmt: skip
    done = ratchet(tmp_path / "home", *args)
    report = json.loads(done.stdout)
    assert done.returncode == 1, done.stderr
    # pytest's own count: 4 passed, 1 failed; the re-run of the failing test marks none flaky.
    assert (report["passed"], report["failed"], report["flaky"]) == (4, 1, []), report
    assert report["environment"]["source"] == "request" and not report["environment"]["cache_hit"]
    assert "built in" in done.stderr
    again = ratchet(tmp_path / "home", *args)
    assert json.loads(again.stdout)["environment"]["cache_hit"] is True
    assert "cache hit" in again.stderr
