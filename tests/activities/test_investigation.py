"""The investigation's steps (activities/investigation.py) on a real history with a regression
in it: prepare, read the history, probe commits, localize the culprit, revert it, check a
written reproduction and write the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from contracts.agent import ToolCall, ToolInput
from contracts.investigation import History as Commits
from contracts.investigation import (
    HistoryInput,
    InvPrepared,
    InvPrepareInput,
    LocalizeInput,
    ProbeInput,
    ReportInput,
    ReproductionInput,
    RevertInput,
    Target,
)
from gym.git import git
from tests.activities.conftest import WHEN, World
from tests.utils.repos import PY_REPO, commit, make_repo

BROKEN = "def add(a, b):\n    return (a + b) // 0\n"
TEST_ID = "tests/test_calc.py::test_add"


class History:
    def __init__(self, tmp_path: Path) -> None:
        self.repo = make_repo(tmp_path / "calc", PY_REPO)
        self.good = git("rev-parse", "HEAD", cwd=self.repo)
        self.docs = commit(self.repo, {"README.md": "# calc\n"}, "docs")
        more = {"calc.py": BROKEN, "tests/test_more.py": "def test_more():\n    pass\n"}
        self.culprit = commit(self.repo, more, "speed up add")
        self.bad = commit(self.repo, {"notes.txt": "later\n"}, "notes")


def prepare_input(history: History, **changes: object) -> InvPrepareInput:
    values: dict[str, object] = {
        "run_id": "inv-0a1b2c3d4e5f", "repo": str(history.repo), "bad_ref": "HEAD",
        "release": "", "frames": [], "test_command": None, "test_id": TEST_ID,
        "kind": "regression", "when": WHEN, "good_ref": history.good,
    } | changes  # fmt: skip
    return InvPrepareInput(**values)  # type: ignore[arg-type]


async def prepared(world: World, history: History) -> InvPrepared:
    out: InvPrepared = await world.run(world.investigation.prepare, prepare_input(history))
    return out


def probe(prep: InvPrepared, sha: str, **changes: object) -> ProbeInput:
    values: dict[str, object] = {
        "run": prep.run,
        "sha": sha,
        "command": prep.reproduce,
        "kind": "regression",
        "slot": 0,
        "timeout_s": 60,
    } | changes
    return ProbeInput(**values)  # type: ignore[arg-type]


async def test_prepare_finds_the_bad_and_good_commits_and_the_reproduction(
    world: World, tmp_path: Path
) -> None:
    history = History(tmp_path)
    prep = await prepared(world, history)
    assert prep.run.base_sha == history.bad and prep.good_sha == history.good
    assert prep.reproduce == f"python -m pytest -q {TEST_ID}"
    assert prep.test_command == "python -m pytest -q"
    # A Sentry release naming a commit the repository knows is where the error happened.
    released = await world.run(world.investigation.prepare, prepare_input(
        history, release=f"calc@2.0.0+{history.culprit[:9]}",
    ))  # fmt: skip
    assert released.run.base_sha == history.culprit


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"bad_ref": "no-such-branch"}, "unknown ref 'no-such-branch' in "),
        ({"kind": "invariants", "test_id": None}, "an invariants investigation needs "),
        ({"repo": "relative/path"}, "repo must be an absolute path or a git URL"),
    ],
    ids=["unknown-ref", "invariants-without-a-command", "relative-repo"],
)
async def test_what_prepare_cannot_use_fails_it_for_good(
    world: World, tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    history = History(tmp_path)
    with pytest.raises(ApplicationError) as caught:
        await world.run(world.investigation.prepare, prepare_input(history, **changes))
    err = caught.value
    assert err.non_retryable and err.type == "BadRepository"
    assert err.message.startswith(message)


async def test_history_and_probes_tell_good_from_bad_commits(world: World, tmp_path: Path) -> None:
    history = History(tmp_path)
    prep = await prepared(world, history)
    read: Commits = await world.run(
        world.investigation.history, HistoryInput(prep.run, history.good, 100)
    )
    assert read.commits == [history.good, history.docs, history.culprit, history.bad]
    good = await world.run(world.investigation.probe, probe(prep, history.docs))
    assert (good.sha, good.outcome, good.detail) == (history.docs, "good", "passed")
    bad = await world.run(world.investigation.probe, probe(prep, history.culprit, slot=1))
    assert (bad.outcome, bad.detail) == ("bad", f"failing: {TEST_ID}")
    assert bad.duration_s > 0


async def test_a_probe_that_does_not_build_or_runs_too_long_is_skipped(
    world: World, tmp_path: Path
) -> None:
    history = History(tmp_path)
    prep = await prepared(world, history)
    unbuildable = await world.run(world.investigation.probe, probe(
        prep, history.docs, files={"calc.py": "def add(a, b:\n"},
    ))  # fmt: skip
    assert unbuildable.outcome == "skip"
    # pytest cannot collect the test id from a module that does not import: no verdict.
    assert unbuildable.detail.startswith("does not build (exit 4): ERROR: found no collectors")
    slow = await world.run(world.investigation.probe, probe(
        prep, history.docs, command="python -m pytest -q tests/test_slow.py", timeout_s=1,
        files={"tests/test_slow.py": "import time\n\n\ndef test_slow():\n    time.sleep(20)\n"},
    ))  # fmt: skip
    assert (slow.outcome, slow.detail) == ("skip", "killed: timeout")
    assert slow.duration_s < 10


async def test_the_culprit_is_localized_and_reverted_on_top_of_the_bad_commit(
    world: World, tmp_path: Path
) -> None:
    history = History(tmp_path)
    prep = await prepared(world, history)
    found = await world.run(world.investigation.localize, LocalizeInput(
        prep.run, history.culprit, [],
    ))  # fmt: skip
    assert found.author == "Ratchet <ratchet@localhost>" and found.message == "speed up add"
    assert found.files == ["calc.py"]  # its code, not its tests: no frame named a file
    assert "+    return (a + b) // 0" in world.store.get_text(found.hunks_ref)

    fix = await world.run(world.investigation.revert, RevertInput(
        prep.run, history.culprit, found.files,
    ))  # fmt: skip
    assert fix.applied and fix.changed
    assert fix.message == "reverted the culprit's hunks in calc.py"
    mirror = Path(prep.run.mirror)
    assert git("rev-parse", f"{fix.snapshot}^", git_dir=mirror) == history.bad
    assert git("show", f"{fix.snapshot}:calc.py", git_dir=mirror) + "\n" == PY_REPO["calc.py"]
    assert git("show", f"{fix.snapshot}:notes.txt", git_dir=mirror) == "later"  # kept
    fixed = await world.run(world.investigation.probe, probe(prep, fix.snapshot))
    assert fixed.outcome == "good"


async def test_a_written_reproduction_must_fail_where_the_event_did(
    world: World, tmp_path: Path
) -> None:
    history = History(tmp_path)
    prep = await prepared(world, history)
    target = Target("ZeroDivisionError", "calc.py", "add")

    async def written(content: str) -> str:
        call = ToolCall(
            "toolu_1",
            "create_file",
            json.dumps({"path": "tests/test_repro.py", "content": content}),
        )
        out = await world.run(world.agent.tool, ToolInput(prep.run, prep.run.base_sha, call,
                                                          prep.test_command, 60))  # fmt: skip
        sha: str = out.snapshot
        return sha

    matching = await written("from calc import add\n\n\ndef test_repro():\n    add(1, 2)\n")
    check = await world.run(world.investigation.check_reproduction,
                            ReproductionInput(prep.run, matching, target, 60))  # fmt: skip
    assert check.matched, check.detail
    assert check.detail.startswith("fails as the event did: ZeroDivisionError")
    assert list(check.files) == ["tests/test_repro.py"] and check.feedback_ref is None
    assert check.command.endswith("tests/test_repro.py")

    elsewhere = await written("def test_repro():\n    assert 1 == 2\n")
    refused = await world.run(world.investigation.check_reproduction,
                              ReproductionInput(prep.run, elsewhere, target, 60))  # fmt: skip
    assert not refused.matched
    assert "but the event's error is ZeroDivisionError raised in add() of calc.py" in (
        refused.detail
    )
    assert refused.feedback_ref is not None
    assert world.store.get_text(refused.feedback_ref).startswith("The reproduction was refused")


async def test_the_report_names_the_culprit_and_the_fix(world: World, tmp_path: Path) -> None:
    history = History(tmp_path)
    prep = await prepared(world, history)
    found = await world.run(world.investigation.localize,
                            LocalizeInput(prep.run, history.culprit, []))  # fmt: skip
    out = await world.run(world.investigation.report, ReportInput(
        run_id=prep.run.run_id, kind="regression", event=None, reproduce=prep.reproduce,
        frame_files=[], refused_frames=[], culprit=history.culprit, author=found.author,
        message=found.message, confidence="high", suspects=[], probes=[], fix="reverted",
        gates=[], hunks_ref=found.hunks_ref, patch_ref=None, branch="ratchet/inv-0a1b2c3d4e5f",
    ))  # fmt: skip
    report = world.store.get_text(out.report_ref)
    assert history.culprit[:12] in report and "speed up add" in report
    assert prep.reproduce in report and "ratchet/inv-0a1b2c3d4e5f" in report
    assert "return (a + b) // 0" in report  # the guilty hunk
