"""Per-test outcomes from each runner's own machine-readable output, beside pytest's JUnit XML
(gym/junit.py): Node's test runner (Ratchet's reporter, gym/reporters/node_reporter.mjs), Go's
`go test -json`, Rust's libtest JSON (`cargo test`), Jest's `--json` and the JUnit XML of
Vitest and Bun. Every parser takes what the runner wrote and returns TestCases with ids in the
runner's own form; what it cannot read it skips (a run that printed nothing has no outcomes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from gym.junit import TestCase

# A JSON object per line, wherever the runner mixes them with other output.
_JSON_LINE = re.compile(rb"^\s*(\{.*\})\s*$", re.MULTILINE)
# cargo names each test binary before it runs it: "Running unittests src/lib.rs (target/...)".
_CARGO_TARGET = re.compile(rb"^\s*(?:Running (?:unittests )?(\S+)|Doc-tests (\S+))", re.MULTILINE)


def _objects(data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    for match in _JSON_LINE.finditer(data):
        try:
            value = json.loads(match.group(1))
        except ValueError:
            continue
        if isinstance(value, dict):
            yield match.start(), value


def node_outcomes(data: bytes) -> list[TestCase]:
    """Lines of Ratchet's Node reporter: {file, name (suites joined by " > "), outcome}."""
    cases = []
    for _, line in _objects(data):
        outcome = line.get("outcome")
        if outcome in ("passed", "failed", "skipped") and line.get("name"):
            test_id = f"{line.get('file') or '?'}::{line['name']}"
            cases.append(TestCase(test_id, outcome, _seconds(line.get("duration_ms"), 1000)))
    return cases


_GO_OUTCOMES = {"pass": "passed", "fail": "failed", "skip": "skipped"}


def go_outcomes(output: bytes) -> list[TestCase]:
    """`go test -json` events: each test's last pass, fail or skip, as "package::TestName"
    (subtests "package::TestName/sub"). A package that fails without a failing test (it does
    not build) is an error under its own name."""
    cases: dict[str, TestCase] = {}
    failing_packages: set[str] = set()
    for _, event in _objects(output):
        action, package = event.get("Action"), str(event.get("Package") or "")
        if action not in _GO_OUTCOMES or not package:
            continue
        test = event.get("Test")
        if not test:
            if action == "fail":
                failing_packages.add(package)
            continue
        test_id = f"{package}::{test}"
        cases[test_id] = TestCase(test_id, _GO_OUTCOMES[action], _seconds(event.get("Elapsed")))
    for package in sorted(failing_packages):
        if not any(case.id.startswith(f"{package}::") for case in cases.values()):
            cases[package] = TestCase(package, "error", 0.0)
    return list(cases.values())


def go_text(output: bytes) -> bytes:
    """What `go test` would have printed without -json: each event's output, and the lines
    that are not events (build errors) as they were."""
    text = []
    for line in output.splitlines(keepends=True):
        try:
            event = json.loads(line)
        except ValueError:
            text.append(line)
            continue
        if isinstance(event, dict) and event.get("Action") == "output":
            text.append(str(event.get("Output", "")).encode())
        elif not isinstance(event, dict):
            text.append(line)
    return b"".join(text)


_LIBTEST_OUTCOMES = {"ok": "passed", "failed": "failed", "ignored": "skipped", "timeout": "failed"}


def cargo_outcomes(output: bytes) -> list[TestCase]:
    """libtest's JSON events, each test named after the target cargo ran it in
    ("src/lib.rs::tests::adds", "tests/api.rs::lists"; doc tests under "doc")."""
    targets = [(m.start(), (m.group(1) or b"doc").decode(errors="replace"))
               for m in _CARGO_TARGET.finditer(output)]  # fmt: skip
    cases = []
    for at, event in _objects(output):
        outcome = _LIBTEST_OUTCOMES.get(str(event.get("event")))
        if event.get("type") != "test" or outcome is None or not event.get("name"):
            continue
        target = next((name for start, name in reversed(targets) if start < at), "")
        test_id = f"{target}::{event['name']}" if target else str(event["name"])
        cases.append(TestCase(test_id, outcome, _seconds(event.get("exec_time"))))
    return cases


_JEST_OUTCOMES = {"passed": "passed", "failed": "failed", "pending": "skipped",
                  "skipped": "skipped", "todo": "skipped", "disabled": "skipped"}  # fmt: skip


def jest_outcomes(data: bytes, roots: tuple[str, ...] = ()) -> list[TestCase]:
    """Jest's `--json` report: "file::Suite > test" per assertion result, the file relative to
    the first of `roots` it is under (Jest names it absolutely); a file that failed to run
    (it does not compile) is an error under its own name."""
    try:
        report = json.loads(data)
    except ValueError:
        return []
    cases = []
    for suite in report.get("testResults", []) if isinstance(report, dict) else []:
        file = str(suite.get("name", "?"))
        file = next((file[len(r) + 1 :] for r in roots if file.startswith(r + "/")), file)
        results = suite.get("assertionResults") or []
        if not results and suite.get("status") == "failed":
            cases.append(TestCase(file, "error", 0.0))
        for result in results:
            name = " > ".join([*result.get("ancestorTitles", []), result.get("title", "?")])
            outcome = _JEST_OUTCOMES.get(result.get("status"), "error")
            cases.append(
                TestCase(f"{file}::{name}", outcome, _seconds(result.get("duration"), 1000))
            )
    return cases


def _seconds(value: object, per_second: float = 1.0) -> float:
    try:
        return round(float(value or 0) / per_second, 3)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
