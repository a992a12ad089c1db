"""The tests Ratchet's roles write (the red team's, the invariants', a spec claim's check), in
the repository's own runner: where such a file lives, what the policy is told to write, and the
command that runs that one file. A pytest file in a Python repository, node:test, Vitest, Jest
or bun files in a JavaScript one, a `_test.go` file in Go, an integration test in Rust.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gym.config import RepoConfig, detect_test_command
from gym.errors import BadRepository
from gym.runners import JS_PROGRAMS, detect_runner

_NAME = "[A-Za-z0-9_]+"


@dataclass(frozen=True)
class Convention:
    runner: str
    framework: str
    """How the policy is told to write the test."""
    where: str
    """The path form, with {kind} and <name>."""
    pattern: str
    """A path the runner finds, with {kind}: checked before a written test runs."""

    def allows(self, kind: str, path: str) -> bool:
        return re.fullmatch(self.pattern.format(kind=kind), path) is not None

    def path(self, kind: str, name: str) -> str:
        """The path of a test named `name` (a spec claim's id) where the form puts it."""
        return self.where.format(kind=kind).replace("<package dir>/", "").replace("<name>", name)

    def guidance(self, kind: str) -> str:
        """What the policy is told, as data in the user message beside the goal."""
        return (
            f"<tests>This repository's tests run with {self.runner}. Write each test for it: "
            f"{self.framework}. Put each test in its own new file at {self.where.format(kind=kind)}"
            f" (the path must match {self.pattern.format(kind=kind)}).</tests>"
        )

    def command(self, path: str, content: str) -> str:
        """The command that runs the one test file at `path` (its content names Go's tests)."""
        if self.runner == "go":
            parent = str(PurePosixPath(path).parent)
            names = re.findall(r"^func (Test\w*)\(", content, re.M)
            run = ["-run", f"^({'|'.join(names)})$"] if names else []
            return shlex.join(["go", "test", f"./{parent}" if parent != "." else ".", *run])
        if self.runner == "cargo":
            return shlex.join(["cargo", "test", "--test", PurePosixPath(path).stem])
        program = {"pytest": ["python", "-m", "pytest", "-q"], **JS_PROGRAMS}[self.runner]
        # bun reads a bare argument as a name filter: a path must start with ./
        return shlex.join([*program, f"./{path}" if self.runner == "bun" else path])


_JS = r"(test|tests|__tests__)/{kind}_" + _NAME + r"\.test\."
CONVENTIONS = {
    "pytest": Convention(
        "pytest", "pytest test functions with plain asserts (hypothesis for properties)",
        "tests/test_{kind}_<name>.py", r"tests/test_{kind}_" + _NAME + r"\.py",
    ),
    "node": Convention(
        "node", "Node's built-in runner (require('node:test') and require('node:assert'))",
        "test/{kind}_<name>.test.js", _JS + "[cm]?js",
    ),
    "vitest": Convention(
        "vitest", "Vitest (import { test, expect } from 'vitest')",
        "test/{kind}_<name>.test.js", _JS + "[cm]?[jt]s",
    ),
    "jest": Convention(
        "jest", "Jest (test and expect are globals; CommonJS require)",
        "test/{kind}_<name>.test.js", _JS + "[cm]?js",
    ),
    "bun": Convention(
        "bun", "bun test (import { test, expect } from 'bun:test')",
        "test/{kind}_<name>.test.ts", _JS + "[cm]?[jt]s",
    ),
    "go": Convention(
        "go", "Go's testing package (func TestX(t *testing.T)) in the package it tests, with that "
        "package's name", "<package dir>/{kind}_<name>_test.go",
        r"([A-Za-z0-9_.-]+/)*{kind}_" + _NAME + r"_test\.go",
    ),
    "cargo": Convention(
        "cargo", "a Rust integration test (#[test] functions using the crate's public API by "
        "the crate's name)", "tests/{kind}_<name>.rs", r"tests/{kind}_" + _NAME + r"\.rs",
    ),
}  # fmt: skip


def convention_for(workspace: Path, config: RepoConfig) -> Convention:
    """The convention of the repository's runner (ratchet.toml's, else the detected test
    command's); pytest's when neither names one this module knows."""
    runner = config.test_runner
    if runner is None:
        try:
            runner = detect_runner(detect_test_command(workspace, config)[0], workspace)
        except BadRepository:
            runner = None
    return CONVENTIONS.get(runner or "pytest", CONVENTIONS["pytest"])
