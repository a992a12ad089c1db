"""The import arrows run one way: contracts at the bottom with the bottom of ratchet/
(settings, telemetry, artifacts), then gym and agents, then activities, workflows and api; no
layer imports one above it, and nothing but the workflows themselves imports workflows."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("contracts", "ratchet", "gym", "agents", "activities", "workflows", "api")
ALLOWED = {
    "contracts": set(),
    "ratchet": {"contracts"},
    "gym": {"contracts", "ratchet"},
    "agents": {"contracts", "ratchet", "gym"},
    "activities": {"contracts", "ratchet", "gym", "agents"},
    "workflows": {"contracts", "ratchet"},
    "api": {"contracts", "ratchet", "gym", "agents"},
}
# The programs of ratchet/ (the CLI, `ratchet up`, the demo) sit on top of everything; they are
# not the bottom layer.
PROGRAMS = {"ratchet/cli.py", "ratchet/demo.py", "ratchet/gymcli.py", "ratchet/stack.py",
            "ratchet/cliview.py", "ratchet/apiclient.py", "ratchet/phoenix.py"}  # fmt: skip


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_layer_imports_one_above_it() -> None:
    wrong = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in PROGRAMS:
                continue
            above = (imports(path) & set(PACKAGES)) - ALLOWED[package] - {package}
            wrong += [f"{name} imports {layer}" for layer in sorted(above)]
    assert wrong == []


def test_contracts_are_stdlib_and_dataclasses_only() -> None:
    import sys

    for path in sorted((ROOT / "contracts").rglob("*.py")):
        outside = {m for m in imports(path) - {"contracts", "__future__"}
                   if m not in sys.stdlib_module_names}  # fmt: skip
        assert outside == set(), f"{path.name} imports {outside}"
