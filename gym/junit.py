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
    cases = []
    for case in root.iter("testcase"):
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
        cases.append(TestCase(node_id(case), outcome, duration))
    return cases
