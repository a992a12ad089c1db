"""The import arrows run one way: contracts at the bottom with the bottom of ratchet/
(settings, telemetry, artifacts), then gym and agents, then activities, workflows and api; no
layer imports one above it, and nothing but the workflows themselves imports workflows.

On top of everything sits ratchet/cli/, the program layer (the `ratchet` command, `ratchet up`,
the demo): it may import any package, and nothing outside it but the tests imports it. The rest
of ratchet/ is the bottom and imports contracts only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("contracts", "ratchet", "gym", "agents", "activities", "workflows", "api")
PROGRAMS = "ratchet.cli"  # the program layer: ratchet/cli/
ALLOWED = {
    "contracts": set(),
    "ratchet": {"contracts"},
    "gym": {"contracts", "ratchet"},
    "agents": {"contracts", "ratchet", "gym"},
    "activities": {"contracts", "ratchet", "gym", "agents"},
    "workflows": {"contracts", "ratchet"},
    "api": {"contracts", "ratchet", "gym", "agents"},
    PROGRAMS: set(PACKAGES),
}
LAYERS = set(ALLOWED)
# Every file of code that is not a test: none of it outside ratchet/cli/ imports ratchet.cli.
SOURCES = (*PACKAGES, "bench", "deploy", "worker.py")


def module_name(path: Path) -> str:
    """ratchet/cli/stack.py is ratchet.cli.stack; a package's own file keeps its `__init__`."""
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def imports(module: str, source: str) -> set[str]:
    """The dotted names that `module`'s `source` imports, relative imports resolved:
    `from a import b` names both `a` and `a.b` (b may be a module)."""
    package = module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            origin = ".".join(filter(None, (base, node.module)))
            found |= {origin, *(f"{origin}.{alias.name}" for alias in node.names)}
    return found


def layer(name: str) -> str:
    return PROGRAMS if _within(name, PROGRAMS) else name.split(".")[0]


def wrong_imports(module: str, source: str) -> list[str]:
    own = layer(module)
    found = {layer(name) for name in imports(module, source)}
    above = (found & LAYERS) - ALLOWED[own] - {own}
    return [f"{module} imports {other}" for other in sorted(above)]


def python_files(*tops: str) -> list[Path]:
    return sorted(
        path
        for top in tops
        for path in ([ROOT / top] if top.endswith(".py") else (ROOT / top).rglob("*.py"))
    )


def test_no_layer_imports_one_above_it() -> None:
    assert (ROOT / "ratchet" / "cli" / "__init__.py").is_file()  # the program layer exists
    wrong = []
    for path in python_files(*PACKAGES):
        wrong += wrong_imports(module_name(path), path.read_text())
    assert wrong == []


def test_nothing_but_the_programs_and_the_tests_imports_them() -> None:
    wrong = []
    for path in python_files(*SOURCES):
        name = module_name(path)
        if _within(name, PROGRAMS):
            continue
        found = imports(name, path.read_text())
        wrong += [f"{name} imports {m}" for m in sorted(found) if _within(m, PROGRAMS)]
    assert wrong == []


def test_the_check_sees_a_bottom_module_import_an_upper_layer() -> None:
    for source in (
        "from ratchet.cli import main",
        "import ratchet.cli.view",
        "from ratchet import cli",
        "from .cli.stack import up",
        "from . import cli",
        "import gym.workspace",
        "from api.main import create_app",
    ):
        assert wrong_imports("ratchet.settings", source), source
    assert wrong_imports("ratchet.__init__", "from .cli import main")
    assert wrong_imports("gym.workspace", "from ratchet.cli.demo import EXAMPLES")
    assert wrong_imports("api.main", "from ratchet.cli.apiclient import RatchetApi")
    assert wrong_imports("ratchet.settings", "from contracts.runs import POLICY_NAMES") == []
    assert (
        wrong_imports("ratchet.cli.local", "import api.main\nfrom .gym import exec_command") == []
    )


def test_contracts_are_stdlib_and_dataclasses_only() -> None:
    import sys

    for path in python_files("contracts"):
        top = {m.split(".")[0] for m in imports(module_name(path), path.read_text())}
        outside = {m for m in top - {"contracts", "__future__"}
                   if m not in sys.stdlib_module_names}  # fmt: skip
        assert outside == set(), f"{path.name} imports {outside}"
