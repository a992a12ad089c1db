"""The test runner on a real repository's suite: per-test outcomes, flaky tests, re-runs."""

from __future__ import annotations

from pathlib import Path

from gym.junit import parse_junit
from gym.runner import Limits
from gym.sandbox import BwrapSandbox
from gym.testing import rerun_command, run_tests
from tests.utils.repos import make_repo

SUITE = {
    "pyproject.toml": '[project]\nname = "s"\nversion = "0"\n',
    "tests/test_things.py": (
        "import os\nimport pytest\n\n\n"
        "def test_ok():\n    assert 1 + 1 == 2\n\n\n"
        "def test_broken():\n    assert 1 + 1 == 3\n\n\n"
        "@pytest.mark.skip(reason='not today')\ndef test_skipped():\n    pass\n\n\n"
        "def test_flaky():\n"
        "    # Fails the first time it runs in this workspace, passes after.\n"
        "    if not os.path.exists('seen'):\n"
        "        open('seen', 'w').close()\n"
        "        raise AssertionError('first run fails')\n\n\n"
        "class TestGroup:\n    def test_method(self):\n        assert True\n"
    ),
}


async def test_real_suite_per_test_outcomes_and_flaky_detection(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "suite", SUITE)
    run = await run_tests(
        "python -m pytest -q", repo, limits=Limits(timeout_s=60), sandbox=BwrapSandbox()
    )
    outcomes = {t.id: t.outcome for t in run.tests}
    assert outcomes == {
        "tests/test_things.py::test_ok": "passed",
        "tests/test_things.py::test_broken": "failed",
        "tests/test_things.py::test_skipped": "skipped",
        "tests/test_things.py::test_flaky": "flaky",
        "tests/test_things.py::TestGroup::test_method": "passed",
    }
    assert run.flaky == ["tests/test_things.py::test_flaky"]
    assert not run.passed  # test_broken failed twice: a real failure
    report = run.as_json()
    assert (report["passed"], report["failed"], report["errors"], report["skipped"]) == (2, 1, 0, 1)
    assert report["isolation"].startswith("bwrap")
    assert all(t["duration_s"] >= 0 for t in report["tests"])


async def test_only_flaky_failures_do_not_fail_the_run_but_are_reported(tmp_path: Path) -> None:
    files = dict(SUITE)
    files["tests/test_things.py"] = files["tests/test_things.py"].replace("1 + 1 == 3", "True")
    repo = make_repo(tmp_path / "suite", files)
    run = await run_tests("python -m pytest -q", repo, limits=Limits(timeout_s=60))
    assert run.passed
    assert run.flaky == ["tests/test_things.py::test_flaky"]
    assert run.count("passed") == 3


async def test_non_pytest_commands_fall_back_to_the_exit_code(tmp_path: Path) -> None:
    run = await run_tests("exit 2", tmp_path, limits=Limits(timeout_s=10))
    assert run.tests == [] and not run.passed and run.result.exit_code == 2


def test_rerun_command() -> None:
    assert rerun_command("python -m pytest -q", ["a.py::t"]) == "python -m pytest -q a.py::t"
    assert rerun_command("make test", ["a.py::t"]) == "make test"
    assert rerun_command("cd x && pytest", ["a.py::t"]) == "cd x && pytest"


def test_junit_garbage_gives_no_outcomes() -> None:
    assert parse_junit(b"<not xml") == []
    assert parse_junit(b'<!DOCTYPE x [<!ENTITY a "aaaa">]><testsuite/>') == []


async def test_the_bundled_example_repositorys_own_suite(tmp_path: Path) -> None:
    from ratchet.demo import build_example
    from ratchet.settings import Settings

    repo = build_example(Settings(home=tmp_path))
    run = await run_tests(
        "python -m pytest -q", repo, limits=Limits(timeout_s=60), sandbox=BwrapSandbox()
    )
    assert run.passed
    assert [(t.id, t.outcome) for t in run.tests] == [
        ("tests/test_stats.py::test_mean", "passed"),
        ("tests/test_stats.py::test_mean_of_nothing_is_an_error", "passed"),
    ]
