"""A production error as a failing test: what the reproducer is shown of the event, and whether
the test it wrote fails the way the event failed — the same exception type, raised from the
event's innermost in-app frame (same file and function) — read from the test run's own
traceback, never from the model's word.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from gym.investigate import TEST_FILE
from gym.tracebacks import (
    ParsedTraceback,
    innermost_repo_frame,
    parse_tracebacks,
    repo_path,
    same_exception,
    short_type,
)

MAX_EVIDENCE_CHARS = 20_000
MAX_TEST_BYTES = 64_000


@dataclass(frozen=True)
class EventFrame:
    file: str
    """The repository path it resolves to ("" when none)."""
    filename: str
    function: str
    lineno: int | None
    in_app: bool
    context: list[str]
    """pre-context, the line itself (marked), post-context."""
    variables: dict[str, str]


def evidence(
    *, exception_type: str, exception_value: str, frames: Sequence[EventFrame],
    release: str, environment: str, tags: dict[str, str], title: str,
) -> str:  # fmt: skip
    """The event as text for the reproducer (quoted by the caller: it is data, not orders)."""
    lines = [f"exception: {exception_type}: {exception_value}".strip()]
    if title:
        lines.append(f"title: {title}")
    lines += [f"release: {release or '?'}", f"environment: {environment or '?'}"]
    if tags:
        lines.append("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items())[:30]))
    lines.append("frames (outermost first; in-app frames name the repository file):")
    for frame in frames:
        where = frame.file or frame.filename
        app = "in app" if frame.in_app else "library"
        lines.append(f"- {where}, line {frame.lineno or '?'}, in {frame.function} ({app})")
        lines += [f"    {line}" for line in frame.context]
        for name, value in list(frame.variables.items())[:20]:
            lines.append(f"    {name} = {value}")
    text = "\n".join(lines)
    return text if len(text) <= MAX_EVIDENCE_CHARS else text[-MAX_EVIDENCE_CHARS:]


def short_value(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:limit]


def test_paths(changed: Sequence[tuple[str, str]]) -> tuple[list[str], str]:
    """(new test files, why the change is not a reproduction — "" when it is one) from the
    reproducer's (status, path) changes: it may add or change test files, nothing else."""
    tests = [p for status, p in changed if status != "D" and TEST_FILE.search(p)]
    others = [p for status, p in changed if p not in tests]
    if others:
        return tests, (f"the reproduction may only add tests; it also changed {', '.join(others)}"
                       " — put those changes back and write the test alone")  # fmt: skip
    if not tests:
        return tests, "there is no new test file: write one under tests/ named test_*.py"
    return tests, ""


def command_for(tests: Sequence[str]) -> str:
    return "python -m pytest -q -p no:cacheprovider --tb=native " + " ".join(
        shlex.quote(t) for t in tests
    )


@dataclass(frozen=True)
class Verdict:
    matched: bool
    detail: str
    failure: str


def judge(
    output: str, exit_code: int, *, exception_type: str, file: str, function: str,
    tests: Sequence[str],
) -> Verdict:  # fmt: skip
    """Did the new tests fail the way the event failed? `output` is their pytest run's."""
    wanted = f"{exception_type or 'an exception'}" + (
        f" raised in {function}() of {file}" if file else ""
    )
    if exit_code == 0:
        return Verdict(False, f"the new test passes at this commit: it must fail with {wanted}",
                       "")  # fmt: skip
    seen = []
    for tb in parse_tracebacks(output):
        where = innermost_repo_frame(tb.frames, skip=lambda p: p in tests or bool(
            TEST_FILE.search(p)))  # fmt: skip
        failure = _render(tb.exception_type, tb.exception_value, where,
                          innermost_repo_frame(tb.frames))  # fmt: skip
        type_ok = not exception_type or same_exception(tb.exception_type, exception_type)
        place_ok = not file or where == (file, function)
        if type_ok and place_ok:
            return Verdict(True, f"fails as the event did: {failure}", in_repository(tb))
        seen.append(failure)
    if not seen:
        tail = " ".join(output.strip().splitlines()[-1:])[:300]
        return Verdict(False, f"the new test did not fail with a traceback (exit {exit_code}: "
                       f"{tail}); it must fail with {wanted}", _tail(output))  # fmt: skip
    shown = "\n\n".join(in_repository(tb) for tb in parse_tracebacks(output)[:3])
    return Verdict(False, f"the new test failed with {'; '.join(seen[:3])}, but the event's "
                   f"error is {wanted}", shown)  # fmt: skip


def _render(
    exception_type: str, value: str, where: tuple[str, str] | None,
    anywhere: tuple[str, str] | None,
) -> str:  # fmt: skip
    if where:
        place = f" raised in {where[1]}() of {where[0]}"
    elif anywhere:
        place = f" raised in the test itself ({anywhere[1]}() of {anywhere[0]})"
    else:
        place = " raised outside the repository"
    return f"{short_type(exception_type) or exception_type}: {value[:200]}{place}"


def _tail(output: str, chars: int = 3000) -> str:
    return output[-chars:]


def in_repository(tb: ParsedTraceback) -> str:
    """A traceback's frames in the repository (the test runner's own left out), then its
    exception: where the test fails, as a person would read it."""
    lines = []
    for frame in tb.frames:
        path = repo_path(frame.filename)
        if path is None:
            continue
        lines.append(f"  {path}, line {frame.lineno or '?'}, in {frame.function}")
        if frame.line:
            lines.append(f"    {frame.line}")
    lines.append(f"{tb.exception_type}: {tb.exception_value}".rstrip(": "))
    return "\n".join(lines)
