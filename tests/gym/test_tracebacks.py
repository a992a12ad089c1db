"""Tracebacks as printed by real interpreters and real pytest runs, parsed into data."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gym.tracebacks import (
    ParsedTraceback,
    TracebackFrame,
    innermost_repo_frame,
    parse_traceback,
    parse_tracebacks,
    repo_path,
    same_exception,
    short_type,
)

APP = {
    "app/__init__.py": "",
    "app/errors.py": "class BillingError(Exception):\n    pass\n",
    "app/billing.py": """\
        from app.errors import BillingError


        def total(xs):
            return sum(xs) / len(xs)


        def charge(order):
            try:
                return order["amount"]
            except KeyError as e:
                raise BillingError("no amount\\nfor order 7") from e


        def recurse(n):
            return recurse(n + 1)
        """,
    "app/bad.py": "x = 1\ndef f(:\n    pass\n",
    "tests/test_repro.py": """\
        from app.billing import charge, recurse, total


        def test_total():
            total([])


        def test_charge():
            charge({})


        def test_context():
            print("captured\\nlines")
            try:
                {}["k"]
            except KeyError:
                raise ValueError


        def test_recurse():
            recurse(0)


        def test_passes():
            pass
        """,
}


def _not_a_test(path: str) -> bool:
    return path.startswith("tests/")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    for name, text in APP.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def _run(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-B", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
    )
    return done.stdout + done.stderr


def test_pytest_native_output_gives_one_traceback_per_failing_test(repo: Path) -> None:
    output = _run(repo, "-m", "pytest", "--tb=native", "-p", "no:cacheprovider", "tests")
    assert "4 failed, 1 passed" in output
    found = parse_tracebacks(output)
    assert [(t.exception_type, t.exception_value) for t in found] == [
        ("ZeroDivisionError", "division by zero"),
        ("app.errors.BillingError", "no amount\nfor order 7"),  # the chain's last exception
        ("ValueError", ""),  # captured output after it is not part of the message
        ("RecursionError", "maximum recursion depth exceeded"),
    ]
    where = [innermost_repo_frame(t.frames, root=str(repo), skip=_not_a_test) for t in found]
    assert where == [
        ("app/billing.py", "total"),
        ("app/billing.py", "charge"),
        None,  # raised in the test itself
        ("app/billing.py", "recurse"),
    ]
    total = found[0].frames[-1]
    assert total == TracebackFrame(
        str(repo / "app/billing.py"), 5, "total", "return sum(xs) / len(xs)"
    )
    assert innermost_repo_frame(found[2].frames, root=str(repo)) == (
        "tests/test_repro.py",
        "test_context",
    )
    assert parse_traceback(output) == found[-1]


def test_interpreter_chains_give_the_exception_that_propagated(repo: Path) -> None:
    output = _run(repo, "-c", "from app.billing import charge; charge({})")
    assert "The above exception was the direct cause" in output
    parsed = parse_traceback(output)
    assert parsed is not None
    assert (parsed.exception_type, parsed.exception_value) == (
        "app.errors.BillingError",
        "no amount\nfor order 7",
    )
    assert [(f.filename, f.function) for f in parsed.frames] == [
        ("<string>", "<module>"),
        (str(repo / "app/billing.py"), "charge"),
    ]
    assert innermost_repo_frame(parsed.frames, root=str(repo)) == ("app/billing.py", "charge")
    assert len(parse_tracebacks(output)) == 1

    output = _run(repo, "-c", "try:\n    {}['x']\nexcept KeyError:\n    int('z')")
    assert "During handling of the above exception" in output
    assert parse_tracebacks(output) == [
        ParsedTraceback(
            "ValueError",
            "invalid literal for int() with base 10: 'z'",
            [TracebackFrame("<string>", 4, "<module>")],
        )
    ]


def test_interpreter_odd_shapes(repo: Path) -> None:
    parsed = parse_traceback(_run(repo, "-c", "{}['x']"))
    assert parsed is not None and (parsed.exception_type, parsed.exception_value) == (
        "KeyError",
        "'x'",
    )
    parsed = parse_traceback(_run(repo, "-c", "from app.billing import recurse; recurse(0)"))
    assert parsed is not None and parsed.exception_type == "RecursionError"
    assert {f.line for f in parsed.frames} == {
        "",  # python -c prints no source lines
        "return recurse(n + 1)",
    }

    # A SyntaxError of the script itself: no "Traceback" header, a frame without a function.
    parsed = parse_traceback(_run(repo, "-c", "def f(:"))
    assert parsed == ParsedTraceback(
        "SyntaxError", "invalid syntax", [TracebackFrame("<string>", 1, "", "def f(:")]
    )
    # One of an imported module: its frame ends the traceback.
    parsed = parse_traceback(_run(repo, "-c", "import app.bad"))
    assert parsed is not None and parsed.exception_type == "SyntaxError"
    assert parsed.frames[-1] == TracebackFrame(str(repo / "app/bad.py"), 2, "", "def f(:")
    assert innermost_repo_frame(parsed.frames, root=str(repo)) == ("app/bad.py", "")

    group = "raise ExceptionGroup('eg', [ValueError('x'), KeyError(1)])"
    parsed = parse_traceback(_run(repo, "-c", group))
    assert parsed == ParsedTraceback(
        "ExceptionGroup", "eg (2 sub-exceptions)", [TracebackFrame("<string>", 1, "<module>")]
    )
    assert parse_traceback(_run(repo, "-c", "print('all fine')")) is None


PYTEST_OUTPUT = """\
=================================== FAILURES ===================================
_________________________________ test_total __________________________________
Traceback (most recent call last):
  File "/tmp/workspace/tests/test_repro.py", line 5, in test_total
    total([])
  File "/tmp/workspace/app/billing.py", line 3, in total
    return sum(xs) / len(xs)
           ~~~~~~~~^~~~~~~~~
ZeroDivisionError: division by zero
=========================== short test summary info ============================
FAILED tests/test_repro.py::test_total - ZeroDivisionError: division by zero
1 failed in 0.03s
"""


def test_literal_pytest_output() -> None:
    parsed = parse_traceback(PYTEST_OUTPUT)
    assert parsed is not None
    assert parsed == ParsedTraceback(
        "ZeroDivisionError",
        "division by zero",
        [
            TracebackFrame("/tmp/workspace/tests/test_repro.py", 5, "test_total", "total([])"),
            TracebackFrame("/tmp/workspace/app/billing.py", 3, "total", "return sum(xs) / len(xs)"),
        ],
    )
    assert innermost_repo_frame(parsed.frames, skip=_not_a_test) == ("app/billing.py", "total")
    assert innermost_repo_frame(parsed.frames) == ("app/billing.py", "total")
    # The same, with the test's own frame innermost: the test is skipped, nothing else is left.
    assert innermost_repo_frame(parsed.frames[:1], skip=_not_a_test) is None
    # Windows line endings; frames without ", in"; a message running to the end of the text.
    text = 'Traceback (most recent call last):\r\n  File "app/x.py", line 9\r\napp.E: a\r\nb'
    assert parse_traceback(text) == ParsedTraceback(
        "app.E", "a\nb", [TracebackFrame("app/x.py", 9, "")]
    )
    assert parse_traceback('  File "x.py", line None, in f\nValueError') is None
    assert parse_tracebacks("") == [] and parse_traceback("E   ValueError: x") is None


def test_names_and_paths() -> None:
    assert short_type("app.errors.BillingError") == "BillingError"
    assert short_type("builtins.ValueError") == short_type("ValueError") == "ValueError"
    assert same_exception("builtins.ValueError", "ValueError")
    assert same_exception("app.errors.BillingError", "BillingError")
    assert same_exception("app.errors.BillingError", "app.errors.BillingError")
    assert not same_exception("app.errors.BillingError", "other.errors.BillingError")
    assert not same_exception("ValueError", "TypeError")

    assert repo_path("/tmp/workspace/app/x.py") == "app/x.py"
    assert repo_path("app/x.py") == repo_path("./app//x.py") == "app/x.py"
    assert repo_path("/srv/repo/app/x.py", root="/srv/repo/") == "app/x.py"
    for outside in [
        "/usr/lib/python3.11/json/__init__.py",
        "/tmp/workspace2/app/x.py",
        "/tmp/workspace/.venv/lib/python3.11/site-packages/requests/api.py",
        "/usr/lib/python3/dist-packages/six.py",
        "<string>",
        "<frozen importlib._bootstrap>",
        "/opt/ratchet/env/lib/python3.11/site.py",
        "/opt/ratchet/python/lib/os.py",
        "/tmp/workspace/../etc/passwd",
        "app/../../x.py",
        "/tmp/workspace",
        "",
    ]:
        assert repo_path(outside) is None, outside
    assert repo_path("/opt/ratchet/x.py", root="/opt/ratchet") is None


def test_hostile_input_is_cheap_and_never_raises() -> None:
    rng = random.Random(7)
    pieces = [*PYTEST_OUTPUT.splitlines(), "", "  ", "\x00", "File", '", line ', "\udcff", ":"]
    for _ in range(300):
        text = "\n".join(rng.choice(pieces) for _ in range(rng.randrange(40)))
        parse_tracebacks(text)
        parse_traceback("".join(chr(rng.randrange(0x110000)) for _ in range(200)))

    start = time.monotonic()
    huge = [
        "Traceback (most recent call last):\n" + '  File "' + '", line ' * 300_000,
        "Traceback (most recent call last):\n" + '  File "a", line 1, in f\n' * 100_000,
        "a.b" * 1_000_000 + ": x",
        "Traceback (most recent call last):\n" + "9" * 100_000 + "\n" + "X" * 3_000_000,
    ]
    for text in huge:
        parse_tracebacks(text)
    assert time.monotonic() - start < 2

    # Only the last 2 MB are looked at.
    assert parse_traceback(PYTEST_OUTPUT + "x\n" * 1_100_000) is None
    parsed = parse_traceback("x\n" * 1_100_000 + PYTEST_OUTPUT)
    assert parsed is not None and parsed.exception_type == "ZeroDivisionError"
