"""Which test runner a suite's command drives, and how to get per-test outcomes out of it in
the runner's own machine-readable form, whatever wraps it (npm, make, a script).

- pytest: JUnit XML through PYTEST_ADDOPTS (gym/testing.py);
- Node's test runner: Ratchet's reporter through NODE_OPTIONS;
- Go: `go test -json` through GOFLAGS (a flag there applies only to commands that know it);
- cargo: libtest's JSON (`-Z unstable-options --format json`, allowed on stable by
  RUSTC_BOOTSTRAP=1, the way rust-analyzer and cargo-nextest's CI read it), every test binary
  run (`--no-fail-fast`);
- Jest (`--json`), Vitest and Bun (JUnit reporters): their options appended to the command (or
  to `npm test --`), as no environment variable sets them.

A runner can be named in ratchet.toml (`[tests] runner = "go"`) when the command hides it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gym import outcomes
from gym.junit import TestCase, parse_junit, parse_nested_junit
from gym.sandbox import WORKSPACE_INSIDE

RUNNERS = ("pytest", "node", "vitest", "jest", "bun", "go", "cargo")
IN_OUTPUT = ("go", "cargo")
"""Runners whose per-test events are in the command's output (not in a file of their own)."""
REPORTER = Path(__file__).parent / "reporters" / "node_reporter.mjs"
_NODE_OPTIONS = (
    "--test-reporter=spec --test-reporter-destination=stdout "
    "--test-reporter={results}/node_reporter.mjs --test-reporter-destination=stderr"
)
JS_PROGRAMS = {
    "node": ["node", "--test"], "jest": ["node_modules/.bin/jest"],
    "vitest": ["node_modules/.bin/vitest", "run"], "bun": ["bun", "test"],
}  # fmt: skip
_PACKAGE_SCRIPT = re.compile(r"^(?:npm|pnpm|yarn|bun)\s+(?:run\s+)?test\b")
_JS_OPTIONS = {
    "jest": '--json --outputFile="$RATCHET_RESULTS/jest.json"',
    "vitest": (
        '--reporter=default --reporter=junit --outputFile.junit="$RATCHET_RESULTS/vitest.xml"'
    ),
    "bun": '--reporter=junit --reporter-outfile="$RATCHET_RESULTS/bun.xml"',
}


@dataclass(frozen=True)
class Prepared:
    """A suite's command as Ratchet runs it, and what it adds to the command's environment."""

    command: str
    env: dict[str, str] = field(default_factory=dict)


def detect_runner(command: str, workspace: Path | None = None) -> str | None:
    """The runner `command` drives (see RUNNERS), or None when it cannot be told."""
    words = _words(command)
    for i, word in enumerate(words):
        name = Path(word).name
        after = words[i + 1] if i + 1 < len(words) else ""
        if name in ("pytest", "py.test") or (word == "-m" and after == "pytest"):
            return "pytest"
        if (name, after) in (("go", "test"), ("cargo", "test"), ("bun", "test")):
            return name
        if name == "node" and "--test" in words[i + 1 :]:
            return "node"
        if name in ("vitest", "jest"):
            return name
    script = _test_script(command, workspace)
    return detect_runner(script) if script else None


def prepare(command: str, runner: str | None, results: Path) -> Prepared:
    """`command` and its environment set up to leave per-test outcomes in `results` (the
    directory the command sees as $RATCHET_RESULTS) or in its output."""
    if runner == "node":
        shutil.copy(REPORTER, results / "node_reporter.mjs")
        return Prepared(command, {"NODE_OPTIONS": _NODE_OPTIONS})
    if runner == "go":
        return Prepared(command, {"GOFLAGS": "-json"})
    if runner == "cargo":
        return Prepared(_cargo_json(command), {"RUSTC_BOOTSTRAP": "1"})
    if runner in _JS_OPTIONS:
        joiner = " -- " if _PACKAGE_SCRIPT.match(command.strip()) else " "
        return Prepared(command + joiner + _JS_OPTIONS[runner])
    return Prepared(command)


def collect(
    results: Path, output: bytes, runner: str | None, workspace: Path | None = None
) -> list[TestCase]:
    """Every test's outcome the run left: pytest's JUnit XML, the JS runners' reports, and
    Go's or libtest's events in the output (paths relative to the workspace)."""
    found: list[TestCase] = []
    for name in ("junit.xml", "vitest.xml"):
        if (results / name).is_file():
            found += parse_junit((results / name).read_bytes())
    if (results / "bun.xml").is_file():
        found += parse_nested_junit((results / "bun.xml").read_bytes())
    if (results / "node.jsonl").is_file():
        found += outcomes.node_outcomes((results / "node.jsonl").read_bytes())
    if (results / "jest.json").is_file():
        roots = (WORKSPACE_INSIDE, *([str(workspace.resolve())] if workspace else []))
        found += outcomes.jest_outcomes((results / "jest.json").read_bytes(), roots)
    if runner == "go":
        found += outcomes.go_outcomes(output)
    if runner == "cargo":
        found += outcomes.cargo_outcomes(output)
    return found


def rerun_failing(command: str, runner: str | None, failing: list[str]) -> str | None:
    """`command` narrowed to the failing tests, for the runners whose ids select them (Go's
    -run, libtest's exact filters); None: run it all again."""
    if runner == "go" and _plain(command, "go", "test"):
        names = sorted(
            {test.split("::", 1)[1].split("/", 1)[0] for test in failing if "::" in test}
        )
        if names:
            return f"{command} -run {shlex.quote('^(' + '|'.join(map(re.escape, names)) + ')$')}"
    if runner == "cargo" and _plain(command, "cargo", "test"):
        names = [_libtest_name(test) for test in failing]
        separator = " " if " -- " in f" {command} " else " -- "
        return command + separator + " ".join(["--exact", *map(shlex.quote, names)])
    return None


def select(
    command: str, runner: str | None, ids: list[str], workspace: Path | None = None
) -> str | None:
    """A command running only the tests `ids` name, in the runner's own form (pytest's node
    ids, "package::TestName" for Go, "target::name" for cargo, "file::name" for the JS
    runners, whose files are selected); None when the runner cannot select. What a package's
    test script does before its runner (`tsc -p . && node --test dist/`) is done first."""
    picked = _select(command, runner, ids)
    steps = _steps_before_runner(command, workspace)
    # The steps find the package's programs (tsc) where the package manager would put them.
    return (
        f'export PATH="$PWD/node_modules/.bin:$PATH"; {steps} && {picked}'
        if (picked and steps)
        else picked
    )


def _steps_before_runner(command: str, workspace: Path | None) -> str:
    script = _test_script(command, workspace)
    if script is None:
        return ""
    parts = [p.strip() for p in script.split("&&")]
    at = next((i for i, p in enumerate(parts) if detect_runner(p) is not None), 0)
    return " && ".join(parts[:at])


def _select(command: str, runner: str | None, ids: list[str]) -> str | None:
    if runner == "go":
        tests = [i.split("::", 1) for i in ids if "::" in i]
        if tests:
            packages = " ".join(shlex.quote(p) for p in sorted({p for p, _ in tests}))
            return f"go test -run {shlex.quote(_go_pattern([n for _, n in tests]))} {packages}"
    if runner == "cargo":
        return shlex.join(["cargo", "test", "--", "--exact", *map(_libtest_name, ids)])
    if runner in ("node", "jest", "vitest", "bun"):
        files = list(dict.fromkeys(i.split("::", 1)[0] for i in ids))
        return shlex.join([*JS_PROGRAMS[runner], *files])
    return None


def _go_pattern(names: list[str]) -> str:
    """`go test -run`'s pattern: one test's every level matched whole ("^TestX$/^case$"), or
    several top-level tests (their subtests run with them)."""
    if len(names) == 1:
        return "/".join(f"^{re.escape(level)}$" for level in names[0].split("/"))
    tops = sorted({re.escape(name.split("/", 1)[0]) for name in names})
    return f"^({'|'.join(tops)})$"


def _libtest_name(test_id: str) -> str:
    """The test's name in its binary: "src/lib.rs::tests::adds" → "tests::adds"."""
    target, found, name = test_id.partition("::")
    return name if found and (target.endswith(".rs") or target == "doc") else test_id


def _cargo_json(command: str) -> str:
    """`cargo test ...` running every test binary and reporting in libtest's JSON."""
    if not _plain(command, "cargo", "test"):
        return command
    words = _words(command)
    cut = words.index("--") if "--" in words else len(words)
    cargo, libtest = words[:cut], words[cut + 1 :]
    if "--no-fail-fast" not in cargo:
        cargo.insert(2, "--no-fail-fast")
    json_args = ["-Z", "unstable-options", "--format", "json", "--report-time"]
    return shlex.join([*cargo, "--", *libtest, *json_args])


def _plain(command: str, program: str, verb: str) -> bool:
    """A single invocation of `program verb` (no shell syntax around it)."""
    words = _words(command)
    return (
        len(words) >= 2
        and Path(words[0]).name == program
        and words[1] == verb
        and not any(w in ("&&", "||", ";", "|") for w in words)
    )


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _test_script(command: str, workspace: Path | None) -> str | None:
    """The package.json test script `npm test` (pnpm, yarn, bun run test) would run."""
    if workspace is None or not _PACKAGE_SCRIPT.match(command.strip()):
        return None
    try:
        scripts = json.loads((workspace / "package.json").read_text()).get("scripts", {})
    except (OSError, ValueError, AttributeError):
        return None
    script = scripts.get("test") if isinstance(scripts, dict) else None
    return script if isinstance(script, str) else None
