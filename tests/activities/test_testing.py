"""The test, lint and performance steps (activities/testing.py) as the worker runs them: the
repository's own suite in the sandbox, what the gym counted in the report, heartbeats while it
runs, its processes killed when the step is cancelled or over its time limit."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import fields, replace
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from contracts.steps import LintInput, PerfInput
from contracts.steps import TestInput as StepInput
from tests.activities.conftest import World, processes_running, under_way
from tests.utils.repos import PY_REPO, commit, make_repo

ONE_FAILS = PY_REPO | {
    "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    "\n\ndef test_sub():\n    assert add(2, -3) == 5\n",
}
SLOW = PY_REPO | {
    "tests/test_slow.py": "import time\n\n\ndef test_slow():\n    time.sleep(2.5)\n",
}


async def test_a_failing_suite_is_reported_as_the_gym_counted_it(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", ONE_FAILS))
    report = await world.run(
        world.tests.run_tests, StepInput(run, run.base_sha, "python -m pytest -q", 45, "baseline")
    )
    assert not report.passed and report.exit_code == 1 and not report.timed_out
    assert (report.passed_count, report.failed_count) == (1, 1)
    assert report.killed_by == [] and report.flaky == [] and report.restored_tests == []
    assert report.cannot_run == "" and not report.cannot_run_fatal
    assert report.attempt == 1
    # The step's own time limit, not the worker's default, is the one the sandbox enforced.
    assert report.isolation.startswith(world.runner.sandbox.name)
    assert "wall 45s" in report.isolation
    log = world.store.get_text(report.log_ref)
    assert "1 failed, 1 passed" in log and "test_sub" in log
    assert report.summary == log[-1500:]
    results = json.loads(world.store.get_text(report.results_ref))
    assert {t["id"]: t["outcome"] for t in results["tests"]} == {
        "tests/test_calc.py::test_add": "passed",
        "tests/test_calc.py::test_sub": "failed",
    }


async def test_a_secret_of_the_worker_never_reaches_the_stored_log(
    world: World, tmp_path: Path
) -> None:
    token = world.settings.token  # the API token this worker holds
    files = PY_REPO | {"tests/test_leak.py": f"def test_leak():\n    print('{token}')\n"
                                             "    assert False\n"}  # fmt: skip
    run = await world.prepare(make_repo(tmp_path / "calc", files))
    report = await world.run(
        world.tests.run_tests, StepInput(run, run.base_sha, "python -m pytest -q", 60, "baseline")
    )
    log = world.store.get_text(report.log_ref)
    assert "test_leak" in log and "[REDACTED]" in log
    assert token not in log


def holding(report: object, secret: str) -> list[str]:
    """The fields of `report` with a string (or a list of them) holding `secret`."""
    found = []
    for f in fields(report):  # type: ignore[arg-type]
        value = getattr(report, f.name)
        strings = value if isinstance(value, list) else [value]
        if any(isinstance(s, str) and secret in s for s in strings):
            found.append(f.name)
    return found


async def test_a_secret_of_the_worker_never_reaches_the_report_either(
    world: World, tmp_path: Path
) -> None:
    # The report's text goes into the workflow's history, a gate's detail, GET /runs and the
    # pull request's body. A flaky test that prints the key and has it in its id:
    token = world.settings.token
    files = PY_REPO | {"tests/test_leak.py": (
        "import pathlib\n\nimport pytest\n\n\n"
        f"@pytest.mark.parametrize('key', ['{token}'])\ndef test_leak(key):\n    print(key)\n"
        "    if not pathlib.Path('ran').exists():\n        pathlib.Path('ran').touch()\n"
        "        assert False\n"
    )}  # fmt: skip
    run = await world.prepare(make_repo(tmp_path / "calc", files))
    report = await world.run(
        world.tests.run_tests, StepInput(run, run.base_sha, "python -m pytest -q", 60, "baseline")
    )
    assert holding(report, token) == []
    assert report.passed and report.flaky == ["tests/test_leak.py::test_leak[[REDACTED]]"]
    assert "[REDACTED]" in report.summary and "1 failed" in report.summary
    assert report.summary == world.store.get_text(report.log_ref)[-1500:]


async def test_a_secret_of_the_worker_never_reaches_why_the_suite_cannot_run(
    world: World, tmp_path: Path
) -> None:
    token = world.settings.token
    files = PY_REPO | {"tests/test_calc.py": f"raise ImportError('{token}')\n"}
    run = await world.prepare(make_repo(tmp_path / "calc", files))
    report = await world.run(
        world.tests.run_tests, StepInput(run, run.base_sha, "python -m pytest -q", 60, "baseline")
    )
    assert holding(report, token) == []
    assert report.cannot_run.endswith("ImportError: [REDACTED]") and report.cannot_run_fatal


async def test_a_secret_of_the_worker_never_reaches_the_lint_report(
    world: World, tmp_path: Path
) -> None:
    token = world.settings.token
    files = PY_REPO | {
        "ratchet.toml": "[lint]\ncommand = 'python lint.py'\nformat = 'ruff-json'\n",
        "lint.py": f"print('{token}')\n",
    }
    run = await world.prepare(make_repo(tmp_path / "calc", files))
    report = await world.run(world.tests.lint, LintInput(run, run.base_sha))
    assert holding(report, token) == []
    assert not report.ok and report.detail.startswith("lint output was not ruff-json: [REDACTED]")


async def test_grading_with_the_base_tests_puts_back_the_tests_a_patch_changed(
    world: World, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    cheat = commit(repo, {
        "calc.py": "def add(a, b):\n    return a - b\n",
        "tests/test_calc.py": "from calc import add\n\n\ndef test_add():\n"
                              "    assert add(2, 3) == -1\n",
    }, "break add and bend its test")  # fmt: skip
    run = await world.prepare(repo, base_ref="HEAD~1")
    as_patched = await world.run(
        world.tests.run_tests, StepInput(run, cheat, "python -m pytest -q", 60, "test")
    )
    assert as_patched.passed and as_patched.restored_tests == []
    graded = await world.run(
        world.tests.run_tests,
        StepInput(run, cheat, "python -m pytest -q", 60, "test", grade_with_base_tests=True),
    )
    assert graded.restored_tests == ["tests/test_calc.py"]
    assert not graded.passed and graded.failed_count == 1  # the original test, on the new code


async def test_a_long_suite_heartbeats_while_it_runs(world: World, tmp_path: Path) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", SLOW))
    world.heartbeats.clear()
    report = await world.run(
        world.tests.run_tests, StepInput(run, run.base_sha, "python -m pytest -q", 60, "baseline")
    )
    assert report.passed and report.duration_s >= 2.5
    assert len(world.heartbeats) >= 2  # about one a second, while pytest was still running


async def test_cancelling_the_step_kills_the_suite_it_runs(world: World, tmp_path: Path) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    marker = "31.4159"  # a sleep no other process on this machine has
    env = world.env()
    started = time.monotonic()
    step = asyncio.ensure_future(env.run(
        world.tests.run_tests,
        StepInput(run, run.base_sha, f"sleep {marker} && python -m pytest -q", 60, "baseline"),
    ))  # fmt: skip
    await under_way(world, step, marker)
    assert processes_running(marker)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    assert time.monotonic() - started < 20  # it did not wait the sleep out
    assert processes_running(marker) == []


async def test_a_suite_over_its_time_limit_is_killed_and_says_so(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", SLOW))
    report = await world.run(
        world.tests.run_tests, StepInput(run, run.base_sha, "python -m pytest -q", 1, "baseline")
    )
    assert report.timed_out and report.killed_by == ["timeout"] and report.exit_code == 124
    assert not report.passed and report.duration_s < 10
    assert "killed after the 1s wall-clock limit" in report.summary
    assert report.cannot_run == ""  # a timeout is not a suite that cannot run


async def test_a_suite_that_cannot_run_says_why(world: World, tmp_path: Path) -> None:
    files = PY_REPO | {"tests/test_calc.py": "import numpyish\n\n\ndef test_x():\n    pass\n"}
    run = await world.prepare(make_repo(tmp_path / "calc", files))
    report = await world.run(
        world.tests.run_tests, StepInput(run, run.base_sha, "python -m pytest -q", 60, "baseline")
    )
    assert not report.passed and report.exit_code == 2
    assert report.cannot_run.startswith("`python -m pytest -q` exited 2: ")
    assert "No module named 'numpyish'" in report.cannot_run
    assert report.cannot_run_fatal


async def test_a_base_whose_ratchet_toml_does_not_parse_fails_the_step_for_good(
    world: World, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    run = await world.prepare(repo)
    broken = commit(repo, {"ratchet.toml": "[tests\ncommand = 1\n"}, "break the config")
    with pytest.raises(ApplicationError) as at_prepare:  # it syncs the mirror, then reads it
        await world.prepare(repo)
    assert at_prepare.value.non_retryable and at_prepare.value.type == "BadRepository"
    # The rules are read from the base: a step on that base cannot be graded either.
    with pytest.raises(ApplicationError) as caught:
        await world.run(
            world.tests.run_tests,
            StepInput(replace(run, base_sha=broken), broken, "python -m pytest -q", 60, "t"),
        )
    err = caught.value
    assert err.non_retryable and err.type == "BadRepository"
    assert err.message.startswith("ratchet.toml is not valid TOML")


async def test_lint_counts_the_findings_of_the_repositorys_linter(
    world: World, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    dirty = commit(repo, {"calc.py": "import os\n\n\ndef add(a, b):\n    return a + b\n"}, "os")
    run = await world.prepare(repo, base_ref="HEAD~1")
    clean = await world.run(world.tests.lint, LintInput(run, run.base_sha))
    assert clean.configured and clean.ok and clean.count == 0
    assert clean.command.startswith("ruff check")
    report = await world.run(world.tests.lint, LintInput(run, dirty))
    assert report.configured and report.ok and report.count == 1
    (finding,) = json.loads(world.store.get_text(report.findings_ref))
    assert "calc.py" in json.dumps(finding) and "F401" in json.dumps(finding)


async def test_lint_turned_off_in_ratchet_toml_is_not_configured(
    world: World, tmp_path: Path
) -> None:
    files = PY_REPO | {"ratchet.toml": "[lint]\nenabled = false\n", "calc.py": "import os\n"}
    run = await world.prepare(make_repo(tmp_path / "calc", files))
    report = await world.run(world.tests.lint, LintInput(run, run.base_sha))
    assert not report.configured and report.count == 0 and report.findings_ref is None


async def test_without_a_benchmark_the_performance_gate_passes_and_says_so(
    world: World, tmp_path: Path
) -> None:
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    report = await world.run(world.tests.performance, PerfInput(run, run.base_sha))
    assert report.passed and report.detail == "no benchmark declared" and report.base == []


async def test_a_benchmark_twice_as_slow_fails_the_performance_gate(
    world: World, tmp_path: Path
) -> None:
    files = PY_REPO | {
        "ratchet.toml": "[performance]\ncommand = 'python bench.py'\nruns = 4\n",
        "bench.py": "print(1.0)\n",
    }
    repo = make_repo(tmp_path / "calc", files)
    slower = commit(repo, {"bench.py": "print(2.0)\n"}, "slower")
    run = await world.prepare(repo, base_ref="HEAD~1")
    report = await world.run(world.tests.performance, PerfInput(run, slower, timeout_s=60))
    assert report.base == [1.0] * 4 and report.patched == [2.0] * 4
    assert report.unit == "reported"
    assert report.ratio == 2.0 and report.p_value is not None and report.p_value < 0.05
    assert not report.passed
    same = await world.run(world.tests.performance, PerfInput(run, run.base_sha, timeout_s=60))
    assert same.passed and same.ratio == 1.0
