"""Re-running a run's failing tests: only them when the command is a plain pytest invocation.

Appending the failing tests' node ids to `pytest tests/test_x.py` would run the whole file
again, so a plain pytest invocation has its positional arguments (files, directories, node ids)
replaced by the failing tests' node ids, every option (and its value) kept. Any other command
(shell syntax, make, tox, a script) re-runs as it is; either way only a test that failed and
then passed counts as recovered (flaky).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gym.junit import TestCase

# pytest's options (its own and common plugins') that take a value: the next argument, or
# attached (`-kexpr`, `--tb=short`). Anything not listed is a flag.
SHORT_VALUE = frozenset("kmpcoWrn")  # -n: pytest-xdist
SHORT_FLAGS = frozenset("xsvqlhVfd")  # -f, -d: pytest-xdist
LONG_VALUE = frozenset({
    # pytest
    "--maxfail", "--pythonwarnings", "--max-warnings", "--ignore", "--ignore-glob", "--deselect",
    "--confcutdir", "--import-mode", "--config-file", "--rootdir", "--basetemp", "--durations",
    "--durations-min", "--override-ini", "--verbosity", "--report-chars", "--tb", "--show-capture",
    "--color", "--code-highlight", "--pdbcls", "--capture", "--pastebin", "--assert",
    "--junitxml", "--junit-xml", "--junitprefix", "--junit-prefix", "--doctest-report",
    "--doctest-glob", "--lfnf", "--last-failed-no-failures", "--log-level", "--log-format",
    "--log-date-format", "--log-cli-level", "--log-cli-format", "--log-cli-date-format",
    "--log-file", "--log-file-mode", "--log-file-level", "--log-file-format",
    "--log-file-date-format", "--log-auto-indent", "--log-disable", "--result-log",
    # pytest-asyncio, pytest-timeout, anyio, hypothesis
    "--asyncio-mode", "--timeout", "--timeout_method", "--timeout-method", "--session-timeout",
    "--anyio-mode", "--hypothesis-profile", "--hypothesis-verbosity", "--hypothesis-seed",
    # pytest-xdist
    "--numprocesses", "--maxprocesses", "--max-worker-restart", "--maxschedchunk", "--dist",
    "--tx", "--px", "--rsyncdir", "--rsyncignore",
    # pytest-cov, pytest-rerunfailures, pytest-randomly, pytest-django, pytest-html
    "--cov-config", "--cov-fail-under", "--cov-context", "--reruns", "--reruns-delay",
    "--only-rerun", "--rerun-except", "--randomly-seed", "--ds", "--dc", "--liveserver",
    "--html", "--css",
    # pytest-json-report, pytest-split, pytest-socket, pytest-benchmark
    "--json-report-file", "--json-report-indent", "--json-report-omit", "--splits", "--group",
    "--splitting-algorithm", "--durations-path", "--store-durations-path", "--allow-hosts",
    "--benchmark-min-time", "--benchmark-max-time", "--benchmark-min-rounds",
    "--benchmark-timer", "--benchmark-calibration-precision", "--benchmark-warmup-iterations",
    "--benchmark-sort", "--benchmark-group-by", "--benchmark-columns", "--benchmark-name",
    "--benchmark-save", "--benchmark-json", "--benchmark-compare-fail", "--benchmark-cprofile",
    "--benchmark-storage", "--benchmark-time-unit",
})  # fmt: skip
# Options whose value is optional (argparse's nargs="?"): the next argument is their value
# unless it starts with "-", so `pytest --cov tests/` measures tests/ and runs the default paths.
LONG_OPTIONAL = frozenset({
    "--debug", "--cache-show", "--cov", "--cov-report", "--benchmark-compare",
    "--benchmark-histogram", "--benchmark-warmup",
})  # fmt: skip
LONG_TWO_VALUES = frozenset({"--metadata"})  # pytest-metadata: --metadata KEY VALUE
# Known flags: an unknown option followed by a word that is not a path is ambiguous (its value,
# or a positional argument?), and the command then re-runs as it is.
LONG_FLAGS = frozenset({
    "--cache-clear", "--co", "--collect-in-virtualenv", "--collect-only", "--collectonly",
    "--continue-on-collection-errors", "--disable-plugin-autoload", "--disable-pytest-warnings",
    "--disable-warnings", "--doctest-continue-on-failure", "--doctest-ignore-import-errors",
    "--doctest-modules", "--exitfirst", "--failed-first", "--ff", "--fixtures",
    "--fixtures-per-test", "--force-short-summary", "--full-trace", "--fulltrace", "--funcargs",
    "--help", "--keep-duplicates", "--keepduplicates", "--last-failed", "--lf", "--markers",
    "--new-first", "--nf", "--no-fold-skipped", "--no-header", "--no-showlocals", "--no-summary",
    "--noconftest", "--pdb", "--pyargs", "--quiet", "--runxfail", "--setup-only", "--setup-plan",
    "--setup-show", "--setuponly", "--setupplan", "--setupshow", "--showlocals", "--stepwise",
    "--stepwise-reset", "--stepwise-skip", "--strict", "--strict-config", "--strict-markers",
    "--sw", "--sw-reset", "--sw-skip", "--trace", "--trace-config", "--traceconfig", "--verbose",
    "--version", "--xfail-tb", "--asyncio-debug", "--hypothesis-show-statistics",
    "--hypothesis-explain", "--looponfail", "--distload", "--boxed", "--forked", "--cov-append",
    "--cov-branch", "--cov-reset", "--no-cov", "--no-cov-on-fail", "--randomly-dont-reorganize",
    "--randomly-dont-reset-seed", "--reuse-db", "--create-db", "--nomigrations", "--migrations",
    "--no-migrations", "--self-contained-html", "--json-report", "--benchmark-skip",
    "--benchmark-only", "--benchmark-disable", "--benchmark-enable", "--benchmark-autosave",
    "--benchmark-save-data", "--benchmark-verbose", "--benchmark-quiet",
    "--benchmark-disable-gc", "--disable-socket", "--allow-unix-socket", "--force-enable-socket",
    "--mypy", "--ruff", "--ruff-format", "--flake8", "--black", "--isort", "--snapshot-update",
    "--testmon", "--store-durations", "--clean-durations",
})  # fmt: skip

_SHELL = frozenset(";&|<>()`$\n\r")  # shell syntax beyond words and quotes: no rewriting
_ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"python(\d+(\.\d+)*)?")
_WRAPPERS = frozenset({"uv", "poetry", "pdm", "pipenv", "hatch", "rye"})  # `<tool> run pytest`
_ROOT_OPTIONS = frozenset({"--rootdir", "-c", "--config-file"})  # they set pytest's rootdir


@dataclass(frozen=True)
class Word:
    raw: str
    """As written in the command (quotes, globs and all)."""
    text: str
    """What the shell makes of it (quotes removed)."""


def shell_words(command: str) -> list[Word] | None:
    """The command's words, or None when it uses shell syntax beyond words and quoting."""
    words: list[Word] = []
    raw: list[str] = []
    text: list[str] = []
    in_word = False
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        if c in " \t":
            if in_word:
                words.append(Word("".join(raw), "".join(text)))
                raw, text, in_word = [], [], False
            i += 1
            continue
        if c in _SHELL or (c == "#" and not in_word):
            return None
        in_word = True
        if c == "'":
            end = command.find("'", i + 1)
            if end < 0:
                return None
            text.append(command[i + 1 : end])
            raw.append(command[i : end + 1])
            i = end + 1
        elif c == '"':
            j = i + 1
            while j < n and command[j] != '"':
                if command[j] in "$`":
                    return None
                if command[j] == "\\" and j + 1 < n and command[j + 1] in '"\\\n':
                    j += 1
                text.append(command[j])
                j += 1
            if j >= n:
                return None
            raw.append(command[i : j + 1])
            i = j + 1
        elif c == "\\":
            if i + 1 >= n or command[i + 1] in "\n\r":
                return None
            text.append(command[i + 1])
            raw.append(command[i : i + 2])
            i += 2
        else:
            text.append(c)
            raw.append(c)
            i += 1
    if in_word:
        words.append(Word("".join(raw), "".join(text)))
    return words


def pytest_arguments_start(words: Sequence[Word]) -> int | None:
    """Where pytest's own arguments start, when the words are a plain pytest invocation:
    `[VAR=value ...] [uv|poetry|... run] pytest ...`, `python [options] -m pytest ...` or
    `coverage run [options] -m pytest ...`."""
    i = 0
    while i < len(words) and _ENV_ASSIGNMENT.match(words[i].text):
        i += 1
    if i + 1 < len(words) and words[i].text in _WRAPPERS and words[i + 1].text == "run":
        i += 2
    if i >= len(words):
        return None
    program = PurePosixPath(words[i].text).name
    if program in ("pytest", "py.test"):
        return i + 1
    if program == "coverage" and i + 1 < len(words) and words[i + 1].text == "run":
        i += 1
    elif not _PYTHON.fullmatch(program):
        return None
    i += 1
    while i < len(words):  # the interpreter's (or coverage's) options, up to -m pytest
        option = words[i].text
        if option == "-m":
            return i + 2 if i + 1 < len(words) and words[i + 1].text == "pytest" else None
        if option == "-mpytest":
            return i + 1
        if option in ("-X", "-W"):
            i += 2
            continue
        if not option.startswith("-") or option == "-" or option.startswith("-c"):
            return None  # a script, stdin or -c code: not pytest
        i += 1
    return None


@dataclass(frozen=True)
class PytestCall:
    head: list[str]
    """The raw words that start pytest (environment, wrapper, interpreter)."""
    options: list[str]
    """The raw words of pytest's options, with their values."""
    paths: list[str]
    """The positional arguments: files, directories, node ids (or --pyargs packages)."""
    roots: list[str]
    """Where --rootdir or -c put pytest's rootdir."""


def _looks_like_path(word: str, workspace: Path | None) -> bool:
    path = word.split("::", 1)[0]
    return workspace is not None and bool(path) and (workspace / path).exists()


def _option(
    words: Sequence[Word], i: int, workspace: Path | None
) -> tuple[int, str, str | None] | None:
    """How many following words the option at `i` takes, its name and its value if any; None
    when that cannot be told."""
    option = words[i].text
    following = words[i + 1].text if i + 1 < len(words) else None

    def unknown(name: str) -> tuple[int, str, str | None] | None:
        if following is None or following.startswith("-"):
            return 0, name, None
        # A path after an unknown option is taken for a positional argument; anything else
        # could be the option's value.
        return (0, name, None) if _looks_like_path(following, workspace) else None

    if option.startswith("--"):
        name, eq, value = option.partition("=")
        if eq:
            return 0, name, value
        if name in LONG_VALUE:
            return None if following is None else (1, name, following)
        if name in LONG_TWO_VALUES:
            return None if i + 2 >= len(words) else (2, name, None)
        if name in LONG_OPTIONAL:
            if following is None or following.startswith("-"):
                return 0, name, None
            return 1, name, following
        if name in LONG_FLAGS:
            return 0, name, None
        return unknown(name)
    for k, char in enumerate(option[1:], start=1):
        if char in SHORT_VALUE:
            if k + 1 < len(option):
                return 0, "-" + char, option[k + 1 :]
            return None if following is None else (1, "-" + char, following)
        if char not in SHORT_FLAGS:
            # An unknown short option: its value (or more flags) attached, or it is last.
            return (0, "-" + char, None) if k + 1 < len(option) else unknown("-" + char)
    return 0, option, None


def parse_pytest(command: str, workspace: Path | None = None) -> PytestCall | None:
    """The command as a pytest invocation, or None when it is not a plain one (or its
    arguments cannot be told apart)."""
    words = shell_words(command.strip())
    start = pytest_arguments_start(words) if words else None
    if words is None or start is None:
        return None
    options: list[str] = []
    paths: list[str] = []
    roots: list[str] = []
    i = start
    while i < len(words):
        word = words[i]
        if word.text == "--":
            paths += [w.text for w in words[i + 1 :]]
            break
        if word.text == "-" or not word.text.startswith("-"):
            paths.append(word.text)
            i += 1
            continue
        parsed = _option(words, i, workspace)
        if parsed is None:
            return None
        takes, name, value = parsed
        if name in _ROOT_OPTIONS and value is not None:
            roots.append(value if name == "--rootdir" else str(PurePosixPath(value).parent))
        options += [w.raw for w in words[i : i + 1 + takes]]
        i += 1 + takes
    return PytestCall([w.raw for w in words[:start]], options, paths, roots)


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
