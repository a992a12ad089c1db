"""Python tracebacks as printed (by the interpreter, by pytest --tb=native) as data, and where in
the repository the exception was raised.

Parsing is line by line, without regular expressions, and looks only at the end of the text: the
input may be huge and is not trusted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from gym.sandbox import WORKSPACE_INSIDE

MAX_CHARS = 2_000_000  # only the last 2 MB of a text are parsed
HEADERS = (
    "Traceback (most recent call last):",
    "Exception Group Traceback (most recent call last):",
)
CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
OUTSIDE = ("site-packages", "dist-packages")


@dataclass(frozen=True)
class TracebackFrame:
    filename: str  # as printed, e.g. "/tmp/workspace/app/billing.py" or "app/billing.py"
    lineno: int | None
    function: str
    line: str = ""  # the source line printed under it, stripped ("" if none)


@dataclass(frozen=True)
class ParsedTraceback:
    exception_type: str  # as printed: "ZeroDivisionError", "app.errors.BillingError"
    exception_value: str  # the message; its further lines joined with "\n"
    frames: list[TracebackFrame]  # outermost first, as printed


def _frame(line: str) -> TracebackFrame | None:
    """`  File "<path>", line <n>[, in <function>]`, else None."""
    rest = line.lstrip()
    if not rest.startswith('File "'):
        return None
    filename, sep, tail = rest[6:].rpartition('", line ')
    number, _, function = tail.partition(", in ")
    if not sep or (number != "None" and not (number.isascii() and number.isdigit())):
        return None
    lineno = int(number) if number != "None" and len(number) < 10 else None
    return TracebackFrame(filename, lineno, function)


def _exception(line: str) -> tuple[str, str] | None:
    """`Type` or `module.Type: message` (unindented), else None."""
    name, _, message = line.partition(":")
    if line[:1].isspace() or not all(part.isidentifier() for part in name.split(".")):
        return None
    return name, message.removeprefix(" ")


def _ends_message(stripped: str) -> bool:
    """A blank line, a traceback's header, a chain's line, pytest's ____ name ____ / ==== / ----
    rules, an exception group's +---- rule."""
    rule = len(stripped) >= 3 and stripped[0] in "_=-!" and stripped[:3] == stripped[0] * 3
    return not stripped or stripped in HEADERS or stripped in CHAIN or rule or stripped[:2] == "+-"


def _ungroup(line: str) -> str:
    """The line without the `  + ` / `  | ` margin of a top-level exception group."""
    return line[4:] if line.startswith(("  + ", "  | ")) else line


def parse_tracebacks(text: str) -> list[ParsedTraceback]:
    """Every separate traceback in the text in order; a chain counts as one (its last exception).
    Lines around them (pytest's headers, captured output, summaries) are ignored."""
    found: list[ParsedTraceback] = []
    frames: list[TracebackFrame] | None = None  # inside a traceback, before its exception
    exception: tuple[str, list[str]] | None = None  # its type and message lines, while reading
    after = chained = replace = False  # just after a traceback / its chain's line / replace it
    for raw in [*text[-MAX_CHARS:].split("\n"), ""]:
        outside = frames is None and exception is None and not after
        if outside and "Traceback" not in raw and "File" not in raw:
            continue  # the common case, quickly: a line that starts nothing
        line = _ungroup(raw.rstrip())
        stripped = line.strip()
        if exception is not None:
            if not _ends_message(stripped):
                exception[1].append(line)
                continue
            parsed = ParsedTraceback(exception[0], "\n".join(exception[1]), frames or [])
            if replace and found:
                found[-1] = parsed
            else:
                found.append(parsed)
            exception, frames, after, chained = None, None, True, False
        if stripped in HEADERS:
            frames, replace, after = [], chained, False
        elif frames is None:
            frame = _frame(line)  # a SyntaxError without a traceback: `File "x.py", line 3`
            if frame is not None and not frame.function:
                frames, replace = [frame], chained
            if after and stripped in CHAIN:
                chained = True
            elif stripped:
                after = chained = False
        elif (frame := _frame(line)) is not None:
            frames.append(frame)
        elif not stripped or stripped.startswith("[Previous line repeated"):
            continue
        elif line[0].isspace():  # the source line under a frame, or carets under that
            if frames and not frames[-1].line:
                frames[-1] = dataclasses.replace(frames[-1], line=stripped)
        elif (found_exception := _exception(line)) is not None:
            exception = (found_exception[0], [found_exception[1]])
        else:
            frames = None  # not a traceback after all
    return found


def parse_traceback(text: str) -> ParsedTraceback | None:
    """The last exception of the text (of a chain, the final one, the one that propagated), or
    None when the text holds no traceback."""
    found = parse_tracebacks(text)
    return found[-1] if found else None


def short_type(name: str) -> str:
    """The name without its module: "app.errors.BillingError" -> "BillingError"."""
    return name.strip().rpartition(".")[2]


def same_exception(a: str, b: str) -> bool:
    """Equal short names, and equal modules too when both are module-qualified."""
    a, b = (name.strip().removeprefix("builtins.") for name in (a, b))
    if short_type(a) != short_type(b):
        return False
    return "." not in a or "." not in b or a.rpartition(".")[0] == b.rpartition(".")[0]


def repo_path(filename: str, root: str = WORKSPACE_INSIDE) -> str | None:
    """The repository-relative path of a printed filename, or None when it lies outside the
    repository (other absolute paths, installed packages, "<string>", "<frozen ...>", Ratchet's
    own /opt/ratchet, paths with ".." segments)."""
    if filename.startswith("/"):
        prefix = root.rstrip("/") + "/"
        if not filename.startswith(prefix) or filename.startswith("/opt/ratchet/"):
            return None
        filename = filename[len(prefix) :]
    parts = [part for part in filename.split("/") if part not in ("", ".")]
    if not parts or filename.startswith("<") or ".." in parts or set(OUTSIDE) & set(parts):
        return None
    return "/".join(parts)


def innermost_repo_frame(
    frames: list[TracebackFrame],
    *,
    root: str = WORKSPACE_INSIDE,
    skip: Callable[[str], bool] = lambda path: False,
) -> tuple[str, str] | None:
    """(repository-relative path, function) of the innermost frame in the repository that is not
    skipped (callers skip test files), or None."""
    for frame in reversed(frames):
        path = repo_path(frame.filename, root)
        if path is not None and not skip(path):
            return path, frame.function
    return None
