"""Reading a test command as a pytest invocation: its head, its options and its paths.

Only a plain invocation counts (`[VAR=value ...] [uv run] pytest ...`, `python -m pytest ...`,
`coverage run -m pytest ...`, words and quoting only): shell syntax, make, tox or a script are
not read, and neither is a command whose options cannot be told from its paths. A re-run
(gym/rerun.py) swaps the paths for node ids and keeps every option with its value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gym.pytest_options import (
    LONG_FLAGS,
    LONG_OPTIONAL,
    LONG_TWO_VALUES,
    LONG_VALUE,
    SHORT_FLAGS,
    SHORT_VALUE,
)

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
