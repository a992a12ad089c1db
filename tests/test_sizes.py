"""Small modules and short functions, so a newcomer reads one thing at a time: no module over
300 lines outside tests/ (250 in workflows/, which only orchestrates) and no function over 60."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("contracts", "ratchet", "gym", "agents", "activities", "workflows", "api", "bench",
            "deploy")  # fmt: skip
MODULE_LINES = 300
WORKFLOW_MODULE_LINES = 250
FUNCTION_LINES = 60


def sources() -> list[Path]:
    found = [ROOT / "worker.py"]
    for package in PACKAGES:
        found += sorted((ROOT / package).rglob("*.py"))
    return found


def test_no_module_is_too_long() -> None:
    long = []
    for path in sources():
        name = path.relative_to(ROOT).as_posix()
        limit = WORKFLOW_MODULE_LINES if name.startswith("workflows/") else MODULE_LINES
        lines = len(path.read_text().splitlines())
        if lines > limit:
            long.append(f"{name}: {lines} lines (at most {limit})")
    assert long == []


def test_no_function_is_too_long() -> None:
    long = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > FUNCTION_LINES:
                    name = path.relative_to(ROOT).as_posix()
                    long.append(f"{name}: {node.name} is {lines} lines")
    assert long == []


def test_the_sizes_are_measured_on_the_real_tree() -> None:
    # The checks above pass vacuously if the walk finds nothing.
    names = {path.relative_to(ROOT).as_posix() for path in sources()}
    assert {"workflows/forward.py", "gym/runner.py", "api/main.py"} <= names
