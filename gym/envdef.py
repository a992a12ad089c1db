"""What a repository's environment is: its setup commands, the files that key it, and where that
definition came from (the request, then `ratchet.toml`, then detection).

Detection reads the repository's manifests and lockfiles; it never runs anything.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gym.errors import BadRepository

# The files whose content keys an environment unless the definition names its own.
MANIFESTS = (
    "uv.lock", "poetry.lock", "pdm.lock", "Pipfile", "Pipfile.lock", "pyproject.toml",
    "setup.py", "setup.cfg", "requirements*.txt", "requirements/*.txt", "constraints*.txt",
    "package.json", "package-lock.json", "pnpm-lock.yaml", "yarn.lock", "bun.lock", "bun.lockb",
    "go.mod", "go.sum", "Cargo.toml", "Cargo.lock",
)  # fmt: skip
TEST_EXTRAS = ("test", "tests", "testing", "dev")
PIP = "python -m pip install --no-input"
LAYOUT = 2
"""Bump when the way environments are made changes: every key changes with it."""


@dataclass(frozen=True)
class EnvDefinition:
    setup: tuple[str, ...]
    key_files: tuple[str, ...]
    source: str
    """"request", "ratchet.toml", "detected: <file>" or "default: ..."."""


def definition_for(
    workspace: Path,
    *,
    requested_setup: list[str] | None,
    requested_key_files: list[str] | None,
    toml_setup: list[str] | None,
    toml_key_files: list[str] | None,
) -> EnvDefinition:
    """The request's definition, else ratchet.toml's, else what the manifests say."""
    if requested_setup is not None:
        files = requested_key_files or present_manifests(workspace)
        return EnvDefinition(tuple(requested_setup), tuple(files), "request")
    if toml_setup is not None:
        files = toml_key_files or present_manifests(workspace)
        return EnvDefinition(tuple(toml_setup), tuple(files), "ratchet.toml")
    return detect(workspace)


def present_manifests(workspace: Path) -> list[str]:
    found = {
        str(p.relative_to(workspace)) for pattern in MANIFESTS for p in workspace.glob(pattern)
    }
    return sorted(f for f in found if (workspace / f).is_file())


def detect(workspace: Path) -> EnvDefinition:
    files = tuple(present_manifests(workspace))
    if (workspace / "uv.lock").is_file():
        setup = (f"{PIP} -q uv", "uv sync --frozen --all-extras --python python")
        return EnvDefinition(setup, files, "detected: uv.lock")
    if (workspace / "poetry.lock").is_file():
        setup = (f"{PIP} -q poetry", "poetry install --no-interaction --all-extras")
        return EnvDefinition(setup, files, "detected: poetry.lock")
    project = _project(workspace)
    requirements = sorted(
        f for f in files if "/" not in f and f.startswith("requirements") and f.endswith(".txt")
    )
    if requirements:
        reqs = " ".join(f"-r {shlex.quote(f)}" for f in _main_first(requirements))
        editable = f" -e {shlex.quote(project.target)}" if project.installable else ""
        return EnvDefinition((f"{PIP} {reqs}{editable}",), files, f"detected: {requirements[0]}")
    if project.installable and (project.extras or project.has_dependencies):
        return EnvDefinition(
            (f"{PIP} -e {shlex.quote(project.target)}",), files, f"detected: {project.manifest}"
        )
    if (workspace / "package-lock.json").is_file():
        return EnvDefinition(("npm ci --no-audit --no-fund",), files, "detected: package-lock.json")
    if (workspace / "pnpm-lock.yaml").is_file():
        pnpm = f"npx --yes {_pnpm(workspace)} install --frozen-lockfile"
        return EnvDefinition((pnpm,), files, "detected: pnpm-lock.yaml")
    for lockfile in ("bun.lock", "bun.lockb"):
        if (workspace / lockfile).is_file():
            return EnvDefinition(("bun install --frozen-lockfile",), files, f"detected: {lockfile}")
    if (workspace / "go.mod").is_file():
        return EnvDefinition(("go mod download",), files, "detected: go.mod")
    if (workspace / "Cargo.toml").is_file():
        locked = " --locked" if (workspace / "Cargo.lock").is_file() else ""
        return EnvDefinition((f"cargo fetch{locked}",), files, "detected: Cargo.toml")
    return EnvDefinition((), files, "default: no manifest with dependencies (a venv with pytest)")


# The pnpm that reads each lockfile format (`lockfileVersion`), when package.json does not pin
# one in its "packageManager" field.
_PNPM_FOR_LOCKFILE = {"9": "pnpm@10", "6": "pnpm@8", "5": "pnpm@7"}


def _pnpm(workspace: Path) -> str:
    """The repository's own pnpm: package.json's "packageManager" pin, else the release line
    that writes its lockfile's format (npx fetches it from the npm registry)."""
    try:
        manager = json.loads((workspace / "package.json").read_text()).get("packageManager", "")
    except (OSError, ValueError, AttributeError):
        manager = ""
    if isinstance(manager, str) and re.fullmatch(r"pnpm@\d+\.\d+\.\d+", manager.split("+")[0]):
        return manager.split("+")[0]
    head = (workspace / "pnpm-lock.yaml").read_text(errors="replace")[:200]
    found = re.search(r"lockfileVersion:\s*'?(\d+)", head)
    return _PNPM_FOR_LOCKFILE.get(found.group(1) if found else "", "pnpm@10")


def _main_first(requirements: list[str]) -> list[str]:
    return sorted(requirements, key=lambda f: (f != "requirements.txt", f))


@dataclass(frozen=True)
class _Project:
    installable: bool = False
    has_dependencies: bool = False
    extras: tuple[str, ...] = ()
    manifest: str = ""

    @property
    def target(self) -> str:
        return f".[{','.join(self.extras)}]" if self.extras else "."


def _project(workspace: Path) -> _Project:
    """What pyproject.toml / setup.cfg / setup.py say about installing the repository itself."""
    pyproject = workspace / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(errors="replace"))
        except tomllib.TOMLDecodeError as err:
            raise BadRepository(f"pyproject.toml is not valid TOML: {err}") from None
        table = data.get("project")
        if isinstance(table, dict) or "build-system" in data:
            table = table if isinstance(table, dict) else {}
            optional = table.get("optional-dependencies") or {}
            extras = tuple(e for e in TEST_EXTRAS if isinstance(optional, dict) and e in optional)
            deps = bool(table.get("dependencies")) or "dependencies" in table.get("dynamic", [])
            return _Project(
                True, deps or (workspace / "setup.py").is_file(), extras, "pyproject.toml"
            )
    if (workspace / "setup.py").is_file() or (workspace / "setup.cfg").is_file():
        extras = _setup_cfg_extras(workspace / "setup.cfg")
        manifest = "setup.py" if (workspace / "setup.py").is_file() else "setup.cfg"
        return _Project(True, True, extras, manifest)
    return _Project()


def _setup_cfg_extras(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ()
    import configparser

    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text(errors="replace"))
    except configparser.Error:
        return ()
    if not parser.has_section("options.extras_require"):
        return ()
    return tuple(e for e in TEST_EXTRAS if parser.has_option("options.extras_require", e))


def key_for(
    repo: str, workspace: Path, definition: EnvDefinition, interpreter: str, seen_at: str
) -> str:
    """Same repository, same key files at this commit, same setup, interpreter and layout: the
    same environment."""
    files = {}
    for pattern in definition.key_files:
        if pattern.startswith("/") or ".." in Path(pattern).parts:
            files[pattern] = "outside the repository"  # never read (ratchet.toml is untrusted)
            continue
        for path in sorted(workspace.glob(pattern)) or [workspace / pattern]:
            rel = str(path.relative_to(workspace)) if path.is_relative_to(workspace) else pattern
            files[rel] = _digest(path)
    identity = {
        "layout": LAYOUT, "repo": repo.rstrip("/").removesuffix(".git"),
        "setup": list(definition.setup), "files": files, "interpreter": interpreter,
        "seen_at": seen_at,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def _digest(path: Path) -> str:
    if path.is_symlink():  # never follow a link out of the workspace
        return "link:" + str(path.readlink())
    if not path.is_file():
        return "missing"
    return hashlib.sha256(path.read_bytes()).hexdigest()
