"""Per-test outcomes from JUnit XML (pytest writes it with --junitxml)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest class

    id: str
    outcome: str
    """"passed", "failed", "error", "skipped" or "flaky"."""
    duration_s: float


def node_id(case: ET.Element) -> str:
    """pytest's node id (file::Class::name) from a testcase's attributes."""
    name = case.get("name", "?")
    classname = case.get("classname", "")
    file = case.get("file")
    if file:
        module = file.removesuffix(".py").replace("/", ".")
        rest = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
        return "::".join([file, *filter(None, rest.split(".")), name])
    return f"{classname}::{name}" if classname else name


def parse_junit(data: bytes) -> list[TestCase]:
    try:
        root = ET.fromstring(data)  # noqa: S314 - see the import
    except ET.ParseError:
        return []
    return [_case(node_id(case), case) for case in root.iter("testcase")]


def parse_nested_junit(data: bytes) -> list[TestCase]:
    """JUnit whose suites nest as the tests' describe blocks do (bun's): "file::A > B > test",
    the file's own suite first (its name is the file)."""
    try:
        root = ET.fromstring(data)  # noqa: S314 - see the import
    except ET.ParseError:
        return []
    cases: list[TestCase] = []

    def walk(suite: ET.Element, file: str, names: list[str]) -> None:
        for child in suite:
            if child.tag == "testsuite":
                inner = child.get("file") or file
                walk(child, inner, [*names, child.get("name", "?")] if file else [])
            elif child.tag == "testcase":
                name = " > ".join([*names, child.get("name", "?")])
                cases.append(_case(f"{child.get('file') or file}::{name}", child))

    walk(root, "", [])
    return cases


def _case(test_id: str, case: ET.Element) -> TestCase:
    if case.find("failure") is not None:
        outcome = "failed"
    elif case.find("error") is not None:
        outcome = "error"
    elif case.find("skipped") is not None:
        outcome = "skipped"
    else:
        outcome = "passed"
    try:
        duration = round(float(case.get("time", "0")), 3)
    except ValueError:
        duration = 0.0
    return TestCase(test_id, outcome, duration)
