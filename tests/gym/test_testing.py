"""The test runner on a real repository's suite: per-test outcomes, flaky tests, re-runs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gym.junit import TestCase, parse_junit
from gym.rerun import Rerun, plan_rerun
from gym.runner import Limits
from gym.testing import TestRun, rerun_command, run_tests
from tests.utils.envs import sealed
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
        "python -m pytest -q", repo, limits=Limits(timeout_s=60), sandbox=sealed()
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
    from ratchet.cli.demo import build_example
    from ratchet.settings import Settings

    repo = build_example(Settings(home=tmp_path))
    run = await run_tests(
        "python -m pytest -q", repo, limits=Limits(timeout_s=60), sandbox=sealed()
    )
    assert run.passed
    assert [(t.id, t.outcome) for t in run.tests] == [
        ("tests/test_stats.py::test_mean", "passed"),
        ("tests/test_stats.py::test_mean_of_nothing_is_an_error", "passed"),
    ]


# --- Re-running only the failing tests -------------------------------------------------------

# Every run of every test is logged, so a test can tell what the re-run ran.
RECORDING_CONFTEST = (
    "import pathlib\nimport pytest\n\n\n"
    "@pytest.fixture(autouse=True)\n"
    "def _record(request):\n"
    "    with open(pathlib.Path(__file__).parent.parent / 'ran.log', 'a') as log:\n"
    "        log.write(request.node.nodeid + '\\n')\n"
)
FAILS_FIRST_TIME = (
    "import pathlib\n\n\n"
    "def fails_first_time(name):\n"
    "    # A marker file next to the test: it fails the first time it runs here, passes after.\n"
    "    marker = pathlib.Path(__file__).parent / f'.{name}.seen'\n"
    "    if not marker.exists():\n"
    "        marker.write_text('')\n"
    "        raise AssertionError('fails the first time only')\n\n\n"
)
FOUR_PASS_ONE_FAILS = (
    FAILS_FIRST_TIME
    + "".join(f"def test_{name}():\n    assert True\n\n\n" for name in "abcd")
    + ("def test_broken():\n    assert 1 + 1 == 3\n")
)


def rerun_suite(tmp_path: Path, extra: dict[str, str] | None = None) -> Path:
    return make_repo(
        tmp_path / "suite",
        {
            "pyproject.toml": '[project]\nname = "s"\nversion = "0"\n',
            "tests/conftest.py": RECORDING_CONFTEST,
            "tests/test_x.py": FOUR_PASS_ONE_FAILS,
            **(extra or {}),
        },
    )


def ran(repo: Path) -> Counter[str]:
    return Counter((repo / "ran.log").read_text().splitlines())


def counts(run: TestRun) -> tuple[int, int, int, list[str]]:
    return run.count("passed"), run.count("failed"), run.count("error"), run.flaky


async def run(command: str, repo: Path) -> TestRun:
    return await run_tests(command, repo, limits=Limits(timeout_s=60))


async def test_a_file_named_command_reruns_only_its_failing_test(tmp_path: Path) -> None:
    repo = rerun_suite(tmp_path)
    result = await run("python -m pytest tests/test_x.py", repo)
    # What pytest itself says: 4 passed, 1 failed; none of the passed ones is flaky.
    assert counts(result) == (4, 1, 0, [])
    assert result.reruns == 1 and not result.passed
    assert {t.id: t.outcome for t in result.tests}["tests/test_x.py::test_broken"] == "failed"
    log = ran(repo)
    assert log["tests/test_x.py::test_broken"] == 2
    assert all(log[f"tests/test_x.py::test_{name}"] == 1 for name in "abcd")


async def test_a_directory_named_command_reruns_only_the_failing_tests(tmp_path: Path) -> None:
    files = {"tests/unit/test_y.py": "def test_y():\n    assert True\n\n\n"
             "def test_y_broken():\n    assert False\n"}  # fmt: skip
    repo = rerun_suite(tmp_path, files)
    result = await run("python -m pytest -q tests/ --tb=short", repo)
    assert counts(result) == (5, 2, 0, [])
    log = ran(repo)
    assert log["tests/test_x.py::test_broken"] == log["tests/unit/test_y.py::test_y_broken"] == 2
    assert log["tests/unit/test_y.py::test_y"] == log["tests/test_x.py::test_a"] == 1


async def test_a_node_id_command_reruns_only_the_failing_node(tmp_path: Path) -> None:
    repo = rerun_suite(tmp_path)
    result = await run(
        "python -m pytest tests/test_x.py::test_a tests/test_x.py::test_broken -q -p no:randomly",
        repo,
    )
    assert counts(result) == (1, 1, 0, [])
    assert ran(repo) == {"tests/test_x.py::test_a": 1, "tests/test_x.py::test_broken": 2}


async def test_a_genuinely_flaky_test_in_a_file_named_command_is_flaky(tmp_path: Path) -> None:
    flaky = FOUR_PASS_ONE_FAILS + "\n\ndef test_flaky():\n    fails_first_time('flaky')\n"
    repo = rerun_suite(tmp_path, {"tests/test_x.py": flaky})
    result = await run("python -m pytest -q tests/test_x.py", repo)
    assert counts(result) == (4, 1, 0, ["tests/test_x.py::test_flaky"])
    assert ran(repo)["tests/test_x.py::test_flaky"] == 2
    assert ran(repo)["tests/test_x.py::test_a"] == 1


PARAMETRIZED_AND_CLASSES = FAILS_FIRST_TIME + (
    "import pytest\n\n\n"
    "@pytest.mark.parametrize('case', ['flaky one', 'broken', 'fine'])\n"
    "def test_p(case):\n"
    "    if case == 'flaky one':\n"
    "        fails_first_time('p')\n"
    "    assert case != 'broken'\n\n\n"
    "class TestGroup:\n"
    "    def test_fine(self):\n        assert True\n\n"
    "    @pytest.mark.parametrize('n', [1, 2])\n"
    "    def test_m(self, n):\n"
    "        if n == 1:\n"
    "            fails_first_time('m')\n"
    "        assert n != 2\n\n"
    "    class TestInner:\n"
    "        def test_inner(self):\n            fails_first_time('inner')\n"
)


async def test_parametrized_and_class_based_failures_rerun_by_node_id(tmp_path: Path) -> None:
    repo = rerun_suite(tmp_path, {"tests/test_x.py": PARAMETRIZED_AND_CLASSES})
    result = await run("python -m pytest tests/test_x.py -q", repo)
    f = "tests/test_x.py"
    assert {t.id: t.outcome for t in result.tests} == {
        f"{f}::test_p[flaky one]": "flaky",
        f"{f}::test_p[broken]": "failed",
        f"{f}::test_p[fine]": "passed",
        f"{f}::TestGroup::test_fine": "passed",
        f"{f}::TestGroup::test_m[1]": "flaky",
        f"{f}::TestGroup::test_m[2]": "failed",
        f"{f}::TestGroup::TestInner::test_inner": "flaky",
    }
    log = ran(repo)
    assert log[f"{f}::test_p[fine]"] == log[f"{f}::TestGroup::test_fine"] == 1
    assert log[f"{f}::test_p[flaky one]"] == log[f"{f}::TestGroup::TestInner::test_inner"] == 2


@pytest.mark.parametrize(
    "command",
    ["sh -c 'python -m pytest -q tests/test_x.py'", "python -m pytest tests/test_x.py && true"],
)
async def test_a_non_pytest_command_reruns_whole_and_no_passed_test_turns_flaky(
    tmp_path: Path, command: str
) -> None:
    flaky = FOUR_PASS_ONE_FAILS + "\n\ndef test_flaky():\n    fails_first_time('flaky')\n"
    repo = rerun_suite(tmp_path, {"tests/test_x.py": flaky})
    result = await run(command, repo)
    assert counts(result) == (4, 1, 0, ["tests/test_x.py::test_flaky"])
    assert ran(repo)["tests/test_x.py::test_a"] == 2  # the whole command ran again


async def test_ids_relative_to_another_rootdir_rerun_as_node_ids(tmp_path: Path) -> None:
    # With --rootdir=tests (or an older pytest's rootdir guess) the JUnit ids are relative to
    # tests/, not to the working directory the node ids are given from.
    flaky = FOUR_PASS_ONE_FAILS + "\n\ndef test_flaky():\n    fails_first_time('flaky')\n"
    repo = rerun_suite(tmp_path, {"tests/test_x.py": flaky})
    result = await run("python -m pytest --rootdir tests tests/test_x.py", repo)
    assert counts(result) == (4, 1, 0, ["test_x.py::test_flaky"])
    assert ran(repo) == {
        **{f"test_x.py::test_{name}": 1 for name in "abcd"},
        "test_x.py::test_broken": 2,
        "test_x.py::test_flaky": 2,
    }


async def test_node_ids_pytest_rejects_fall_back_to_the_whole_command(tmp_path: Path) -> None:
    # --junit-prefix hides the class from the JUnit id: pytest finds no such node (and then runs
    # none of them), so the whole command re-runs, and the flaky test is still told apart.
    flaky = "class TestGroup:\n    def test_flaky(self):\n        fails_first_time('flaky')\n"
    repo = rerun_suite(tmp_path, {"tests/test_x.py": FOUR_PASS_ONE_FAILS + flaky})
    result = await run("python -m pytest --junit-prefix=pfx tests/test_x.py", repo)
    assert counts(result) == (4, 1, 0, ["tests/test_x.py::test_flaky"])
    assert ran(repo)["tests/test_x.py::test_a"] == 2


def test_only_a_failing_test_that_then_passed_is_recovered() -> None:
    again = [
        TestCase("t::a", "passed", 0.0),  # failed, then passed: flaky
        TestCase("t::b", "failed", 0.0),  # failed twice
        TestCase("t::ok", "passed", 0.0),  # passed the first time: not a recovery
        TestCase("t::new", "passed", 0.0),  # only the re-run saw it
    ]
    assert Rerun("pytest").recovered(["t::a", "t::b"], again) == {"t::a"}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    for name in ("tests/test_x.py", "tests/sub/test_y.py", "tests/pytest.ini", "src/m.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    return tmp_path


FAILED = ["tests/test_x.py::test_b"]


@pytest.mark.parametrize(
    ("command", "rerun"),
    [
        ("python -m pytest tests/test_x.py", "python -m pytest tests/test_x.py::test_b"),
        ("pytest -q tests/", "pytest -q tests/test_x.py::test_b"),
        ("python -m pytest tests/test_x.py::test_a -x",
         "python -m pytest -x tests/test_x.py::test_b"),
        ("pytest -- tests", "pytest tests/test_x.py::test_b"),
        # Selections and every option's value are kept; only the paths go.
        ("pytest -k 'a or b' tests -m \"not slow\"",
         "pytest -k 'a or b' -m \"not slow\" tests/test_x.py::test_b"),
        (
            "pytest -p no:randomly -c tests/pytest.ini --rootdir . -o a=b --deselect tests/x.py::c "
            "--ignore tests/sub --tb short -W error::UserWarning --junitxml out.xml "
            "tests/sub tests",
            "pytest -p no:randomly -c tests/pytest.ini --rootdir . -o a=b --deselect tests/x.py::c "
            "--ignore tests/sub --tb short -W error::UserWarning --junitxml out.xml "
            "tests/test_x.py::test_b",
        ),
        (
            "pytest --tb=short --ignore=tests/sub --deselect=tests/x.py::c --junit-xml=o.xml tests",
            "pytest --tb=short --ignore=tests/sub --deselect=tests/x.py::c --junit-xml=o.xml "
            "tests/test_x.py::test_b",
        ),
        ("pytest -kfoo -xvs -pno:x -rA tests",
         "pytest -kfoo -xvs -pno:x -rA tests/test_x.py::test_b"),
        ("pytest -xk foo tests", "pytest -xk foo tests/test_x.py::test_b"),
        ("pytest -n 4 --dist load tests", "pytest -n 4 --dist load tests/test_x.py::test_b"),
        # An optional value is the next word unless it starts with "-" (argparse's nargs="?").
        ("pytest --cov src tests", "pytest --cov src tests/test_x.py::test_b"),
        ("pytest --cov -q tests", "pytest --cov -q tests/test_x.py::test_b"),
        # An unknown option before a path is a flag.
        ("pytest --some-plugin-flag tests", "pytest --some-plugin-flag tests/test_x.py::test_b"),
        # What starts pytest is kept as written.
        ("PYTHONHASHSEED=0 uv run python -X dev -m pytest tests",
         "PYTHONHASHSEED=0 uv run python -X dev -m pytest tests/test_x.py::test_b"),
        (".venv/bin/pytest tests", ".venv/bin/pytest tests/test_x.py::test_b"),
        ("coverage run -m pytest tests", "coverage run -m pytest tests/test_x.py::test_b"),
        ("python -m pytest -q", "python -m pytest -q tests/test_x.py::test_b"),
    ],
)  # fmt: skip
def test_rerun_command_swaps_paths_for_node_ids(workspace: Path, command: str, rerun: str) -> None:
    assert rerun_command(command, FAILED, workspace) == rerun


@pytest.mark.parametrize(
    "command",
    [
        "make test",
        "tox -e py",
        "sh -c 'pytest tests'",
        "pytest tests && echo done",
        "pytest tests | tee log",
        "pytest tests > log",
        "pytest $ARGS",
        "pytest `cat args`",
        "pytest tests; true",
        "python script.py tests",
        "python -c 'import pytest; pytest.main()'",
        "pytest-watch tests",
        "pytest --some-plugin-option value tests",  # its value, or a positional argument?
        "pytest -k",  # a value is missing
    ],
)
def test_other_commands_rerun_whole(workspace: Path, command: str) -> None:
    assert plan_rerun(command, FAILED, workspace) == Rerun(command)


def test_node_ids_from_junit_ids(workspace: Path) -> None:
    failing = [
        "tests/test_x.py::TestGroup::test_m[x y]",
        "tests/test_x.py::test_p[1-2]",
        "tests/test_x.py::test_p[1-2]",  # listed once
    ]
    assert rerun_command("pytest tests", failing, workspace) == (
        "pytest 'tests/test_x.py::TestGroup::test_m[x y]' 'tests/test_x.py::test_p[1-2]'"
    )
    # A collection error's id names the module: the re-run runs the file (once).
    errors = ["tests/test_x.py::tests.test_x", "tests/test_x.py::test_b"]
    assert rerun_command("pytest tests", errors, workspace) == "pytest tests/test_x.py"
    # Ids relative to another rootdir (here tests/sub, an older pytest's guess) are found.
    plan = plan_rerun("pytest tests/sub", ["test_y.py::test_c"], workspace)
    assert plan.command == "pytest tests/sub/test_y.py::test_c"
    assert plan.recovered(["test_y.py::test_c"], [TestCase("test_y.py::test_c", "passed", 0)])
    # A test whose file is not there (or no file at all) re-runs the whole command.
    assert rerun_command("pytest tests", ["tests/gone.py::t"], workspace) == "pytest tests"
    assert rerun_command("pytest tests", ["tests.test_x::t"], workspace) == "pytest tests"


def test_a_selection_narrows_the_suites_pytest_command() -> None:
    from gym.rerun import select_tests

    assert select_tests("python -m pytest -q tests", ["tests/test_a.py::test_x"]) == (
        "python -m pytest -q -- tests/test_a.py::test_x"
    )
    assert select_tests("pytest -k 'not slow' tests/unit -x", ["tests/b.py", "t[1 2]"]) == (
        "pytest -k 'not slow' -x -- tests/b.py 't[1 2]'"
    )
    assert select_tests("make test", ["tests/b.py"]) is None
    assert select_tests("python -m pytest; rm -rf /", ["x"]) is None
