"""Seeding a new environment with Ratchet's own test tools, copied from its installation.

A fresh venv gets pytest and hypothesis (and what they need) before the repository's setup
runs, so the suite can run without a download and without the network; the setup may replace
them with the repository's own versions. The copy is made file by file from the installed
distributions, their compiled bytecode included, with console scripts written for the venv's
interpreter.
"""

from __future__ import annotations

import shutil
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

# Ratchet's own test tools, copied into every environment before its setup (which may replace
# them with the repository's own versions): pytest runs the suites, hypothesis runs the
# invariant guards. Hypothesis comes without its pytest plugin entry point, so a suite that does
# not import it pays nothing for it.
SEED = ("pytest", "hypothesis")
NOT_SEEDED = ("hypothesis", "entry_points.txt")


def seed(path: Path, seen: str) -> None:
    """Copy pytest and what it needs from Ratchet's own installation, compiled bytecode
    included, so an environment can run the tests without a download."""
    site = path / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    for dist in _closure(*SEED):
        for file in dist.files or []:
            if str(file).startswith(".."):
                continue  # console scripts: written below with this venv's interpreter
            if _is_plugin_entry(dist, str(file)):
                continue
            source = Path(str(dist.locate_file(file)))
            if source.is_file():
                target = site / str(file)
                target.parent.mkdir(parents=True, exist_ok=True)
                # A copy, never a hard link: setup runs with the environment writable, and what
                # it writes must not reach Ratchet's own installation. copy2 keeps the mtime, so
                # the compiled bytecode copied beside stays valid.
                shutil.copy2(source, target)
    for script in ("pytest", "py.test"):
        target = path / "bin" / script
        target.write_text(
            f"#!{seen}/bin/python\nimport sys\nfrom pytest import console_main\n"
            "sys.exit(console_main())\n"
        )
        target.chmod(0o755)


def _is_plugin_entry(dist: metadata.Distribution, file: str) -> bool:
    name = (dist.metadata["Name"] or "").lower()
    return name == NOT_SEEDED[0] and file.endswith(f".dist-info/{NOT_SEEDED[1]}")


def _closure(*names: str) -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        current = todo.pop()
        if current.lower() in seen:
            continue
        dist = metadata.distribution(current)
        seen[current.lower()] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(seen.values())
