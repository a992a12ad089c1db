"""Re-running a run's failing tests: only them when the command is a plain pytest invocation.

Appending the failing tests' node ids to `pytest tests/test_x.py` would run the whole file
again, so a plain pytest invocation has its positional arguments (files, directories, node ids)
replaced by the failing tests' node ids, every option (and its value) kept. Any other command
(shell syntax, make, tox, a script) re-runs as it is; either way only a test that failed and
then passed counts as recovered (flaky). Reading the command is gym/pytest_command.py's; here
the failing tests' ids become node ids, and the re-run's outcomes tell which recovered.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gym.junit import TestCase
from gym.pytest_command import parse_pytest


def rootdir_candidates(roots: Iterable[str], paths: Iterable[str]) -> tuple[str, ...]:
    """Where (relative to the workspace) pytest may have put its rootdir, which test ids are
    relative to: --rootdir or -c's, the working directory, or a directory on the way to one of
    the arguments (older pytest: their common ancestor, or where a config file is found)."""
    found = [*roots, "."]
    for arg in paths:
        path = PurePosixPath(arg.split("::", 1)[0])
        found += [str(p) for p in (path, *path.parents)]
    return tuple(
        str(PurePosixPath(p))
        for p in dict.fromkeys(found)
        if not PurePosixPath(p).is_absolute() and ".." not in PurePosixPath(p).parts
    )


def node_id(test_id: str, roots: Sequence[str], workspace: Path | None) -> str | None:
    """The node id, relative to the working directory, for pytest to run the test with the
    JUnit id `test_id` (gym.junit.node_id); None when its file is not found."""
    file, _, rest = test_id.partition("::")
    relative = PurePosixPath(file)
    if not file or file.startswith("-") or relative.is_absolute() or ".." in relative.parts:
        return None
    if workspace is None:
        if not file.endswith(".py"):
            return None
        path: PurePosixPath | None = relative
    else:
        path = next(
            (PurePosixPath(r) / relative for r in roots if (workspace / r / relative).is_file()),
            None,
        )
    if path is None:
        return None
    if rest == file.removesuffix(".py").replace("/", "."):
        rest = ""  # the module itself (a collection error, a module doctest): run the file
    return f"{path}::{rest}" if rest else str(path)


@dataclass(frozen=True)
class Rerun:
    """How to re-run a run's failing tests, and which of them passed then."""

    command: str
    node_ids: dict[str, str] = field(default_factory=dict)
    """Each failing test's id -> the node id it re-runs as; empty when the whole command does."""
    roots: tuple[str, ...] = ()
    """Where the re-run's rootdir may be (it can move with the arguments in older pytest)."""

    def recovered(
        self, failing: Iterable[str], again: Iterable[TestCase], workspace: Path | None = None
    ) -> set[str]:
        """The failing tests that passed in the re-run (tests only the re-run saw are ignored)."""
        again = list(again)
        not_passed = {t.id for t in again if t.outcome != "passed"}
        passed = {t.id for t in again if t.outcome == "passed"} - not_passed
        as_run = {node_id(i, self.roots, workspace) for i in passed} if self.node_ids else set()
        return {
            test
            for test in failing
            if test in passed or (test in self.node_ids and self.node_ids[test] in as_run)
        }


def plan_rerun(command: str, failing: Sequence[str], workspace: Path | None = None) -> Rerun:
    """Re-run only the failing tests when the command is a plain pytest invocation whose tests'
    files are found (in `workspace`, when given); else the whole command."""
    call = parse_pytest(command, workspace)
    if call is None:
        return Rerun(command)
    roots = rootdir_candidates(call.roots, call.paths)
    node_ids: dict[str, str] = {}
    for test in dict.fromkeys(failing):
        node = node_id(test, roots, workspace)
        if node is None:
            return Rerun(command)
        node_ids[test] = node
    files = {n for n in node_ids.values() if "::" not in n}  # whole files run all their tests
    targets = [
        n for n in dict.fromkeys(node_ids.values()) if n in files or n.split("::")[0] not in files
    ]
    rerun = " ".join([*call.head, *call.options, *(shlex.quote(t) for t in targets)])
    return Rerun(rerun, node_ids, rootdir_candidates(call.roots, targets))


def select_tests(command: str, selection: Sequence[str]) -> str | None:
    """The suite's command narrowed to `selection` (test ids, files, directories): its own
    paths swapped for them, its options kept. None when it is not a plain pytest invocation."""
    call = parse_pytest(command)
    if call is None:
        return None
    return " ".join([*call.head, *call.options, "--", *(shlex.quote(s) for s in selection)])
