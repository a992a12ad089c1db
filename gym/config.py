"""A repository's own settings (`ratchet.toml` at its root) and what to assume without it.

The configuration is always read from the base snapshot, never from a patched tree, so a patch
cannot loosen the rules it is judged by; `ratchet.toml` itself is protected by default.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gym.errors import BadRepository
from gym.paths import DEFAULT_PROTECTED
from gym.runners import RUNNERS

ALWAYS_PROTECTED = ("ratchet.toml",)
DEFAULT_TEST_GLOBS = ("tests/**", "test/**", "**/test_*.py", "**/*_test.py", "**/conftest.py")
PYTHON_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "pytest.ini", "tox.ini")


@dataclass(frozen=True)
class RepoConfig:
    test_command: str | None = None
    test_runner: str | None = None
    """[tests] runner: the runner the command drives, when it cannot be told from the command
    (gym/runners.py RUNNERS); per-test outcomes come from its own report."""
    protected: tuple[str, ...] = DEFAULT_PROTECTED + ALWAYS_PROTECTED
    test_globs: tuple[str, ...] = DEFAULT_TEST_GLOBS
    max_changed_lines: int = 2000
    max_changed_files: int = 50
    allow_test_changes: bool = False
    lint_command: str | None = None
    lint_format: str = "lines"
    """"ruff-json" (ruff's --output-format=json) or "lines" (one finding per output line)."""
    lint_enabled: bool = True
    required_spans: tuple[str, ...] = ()
    """Span names the repository's tests must emit (the observability gate)."""
    benchmark_command: str | None = None
    """Prints a number on its last line (lower is better), or is timed by the wall clock."""
    benchmark_runs: int = 5
    max_slowdown: float = 0.05
    spec_globs: tuple[str, ...] = ("specs/**/*.md", "README.md")
    spec_docstrings: bool = False
    invariants_command: str | None = None
    """Checks of the code's invariants (exit 0 when they hold), for invariants investigations."""
    env_setup: tuple[str, ...] | None = None
    """[environment] setup: the commands that build the environment (None: detect)."""
    env_key_files: tuple[str, ...] | None = None
    """[environment] key_files: the files whose content keys the environment."""


def load_config(workspace: Path) -> RepoConfig:
    path = workspace / "ratchet.toml"
    if not path.is_file():
        return RepoConfig()
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise BadRepository(f"ratchet.toml is not valid TOML: {err}") from None
    tests = data.get("tests", {})
    patch = data.get("patch", {})
    lint = data.get("lint", {})
    observability = data.get("observability", {})
    performance = data.get("performance", {})
    environment = data.get("environment", {})
    try:
        return RepoConfig(
            test_command=_opt_str(tests.get("command")),
            test_runner=_runner(tests.get("runner")),
            protected=tuple(str(g) for g in patch.get("protected", DEFAULT_PROTECTED))
            + ALWAYS_PROTECTED,
            test_globs=tuple(str(g) for g in tests.get("files", DEFAULT_TEST_GLOBS)),
            max_changed_lines=int(patch.get("max_changed_lines", 2000)),
            max_changed_files=int(patch.get("max_changed_files", 50)),
            allow_test_changes=bool(patch.get("allow_test_changes", False)),
            lint_command=_opt_str(lint.get("command")),
            lint_format=str(lint.get("format", "lines")),
            lint_enabled=bool(lint.get("enabled", True)),
            required_spans=tuple(str(s) for s in observability.get("required_spans", ())),
            benchmark_command=_opt_str(performance.get("command")),
            benchmark_runs=max(2, min(int(performance.get("runs", 5)), 30)),
            max_slowdown=float(performance.get("max_slowdown", 0.05)),
            invariants_command=_opt_str(data.get("invariants", {}).get("command")),
            spec_globs=tuple(
                str(g) for g in data.get("specs", {}).get("paths", ("specs/**/*.md", "README.md"))
            ),
            spec_docstrings=bool(data.get("specs", {}).get("docstrings", False)),
            env_setup=_opt_strings(environment.get("setup"), "[environment] setup"),
            env_key_files=_opt_strings(environment.get("key_files"), "[environment] key_files"),
        )
    except (TypeError, ValueError, AttributeError) as err:
        raise BadRepository(f"ratchet.toml has a value of the wrong type: {err}") from None


def _opt_strings(value: object, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise BadRepository(f"ratchet.toml: {name} must be a list of non-empty strings")
    return tuple(value)


def _runner(value: object) -> str | None:
    if value is None:
        return None
    if value not in RUNNERS:
        raise BadRepository(f"ratchet.toml: [tests] runner must be one of {', '.join(RUNNERS)}")
    return str(value)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def detect_test_command(workspace: Path, config: RepoConfig) -> tuple[str, str]:
    """The command that runs the repository's tests and where it came from."""
    if config.test_command:
        return config.test_command, "ratchet.toml"
    if any((workspace / m).exists() for m in PYTHON_MARKERS) or any(workspace.glob("**/test_*.py")):
        return "python -m pytest -q", "detected: Python project"
    package = workspace / "package.json"
    if package.is_file():
        try:
            if json.loads(package.read_text()).get("scripts", {}).get("test"):
                return "npm test", "detected: package.json"
        except (ValueError, AttributeError):
            pass
    if (workspace / "go.mod").is_file():
        return "go test ./...", "detected: go.mod"
    if (workspace / "Cargo.toml").is_file():
        return "cargo test", "detected: Cargo.toml"
    makefile = workspace / "Makefile"
    if makefile.is_file() and any(
        line.startswith("test:") for line in makefile.read_text(errors="replace").splitlines()
    ):
        return "make test", "detected: Makefile"
    raise BadRepository(
        "cannot tell how to run this repository's tests: pass test_command "
        "or add [tests] command = '...' to ratchet.toml"
    )


RUFF = "ruff check --output-format=json --exit-zero --no-cache --quiet ."


def detect_lint_command(workspace: Path, config: RepoConfig) -> tuple[str, str] | None:
    """The lint command and its output format, or None when the repository has none."""
    if not config.lint_enabled:
        return None
    if config.lint_command:
        return config.lint_command, config.lint_format
    if any((workspace / m).exists() for m in PYTHON_MARKERS) or any(workspace.glob("**/*.py")):
        return RUFF, "ruff-json"
    if (workspace / "go.mod").is_file():
        return _go_lint(workspace), "go-vet-json"
    if (workspace / "Cargo.toml").is_file():
        return "cargo clippy --quiet --message-format=json", "cargo-json"
    if _uses(workspace, "@biomejs/biome", ("biome.json", "biome.jsonc")):
        return "node_modules/.bin/biome lint --reporter=json .", "biome-json"
    if _uses(workspace, "eslint", ESLINT_CONFIGS):
        return "node_modules/.bin/eslint --format json .", "eslint-json"
    return None


def _go_lint(workspace: Path) -> str:
    """go vet, and staticcheck after it when the repository configures it (staticcheck.conf)
    and the worker has it (Debian names it go-staticcheck); one reader takes both."""
    vet = "go vet -json ./..."
    if not (workspace / "staticcheck.conf").is_file():
        return vet
    found = shutil.which("staticcheck") or shutil.which("go-staticcheck")
    return f"{vet}; {Path(found).name} -f json ./..." if found else vet


ESLINT_CONFIGS = ("eslint.config.js", "eslint.config.mjs", "eslint.config.cjs", ".eslintrc.json",
                  ".eslintrc.js", ".eslintrc.cjs", ".eslintrc.yml", ".eslintrc")  # fmt: skip


def _uses(workspace: Path, package_name: str, configs: tuple[str, ...]) -> bool:
    """The linter is the repository's: in its dependencies, with a config of its own."""
    try:
        package = json.loads((workspace / "package.json").read_text())
        wanted = {**package.get("dependencies", {}), **package.get("devDependencies", {})}
    except (OSError, ValueError, AttributeError, TypeError):
        return False
    return package_name in wanted and any((workspace / c).is_file() for c in configs)
