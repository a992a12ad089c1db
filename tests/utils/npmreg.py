"""An npm registry on loopback, serving the packages a lockfile pins, packed once by
`make install` from the registry this machine's npm uses (`python -m tests.utils.npmreg DIR
LOCKFILE... [NAME@VERSION...]`): an npm ci in a test downloads nothing from outside the
machine."""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.utils.loopback import Files, serve_files

ROOT = Path(__file__).resolve().parents[2]
PACKS = ROOT / ".venv" / "npm-packs"


def pinned(lockfile: Path) -> list[str]:
    """name@version of every package a package-lock.json (v2/v3) pins that installs on this
    machine (not another platform's optional binary)."""
    packages = json.loads(lockfile.read_text()).get("packages", {})
    return [
        f"{path.rsplit('node_modules/', 1)[1]}@{entry['version']}"
        for path, entry in packages.items()
        if path.startswith("node_modules/") and not entry.get("link") and _for_here(entry)
    ]


_ARCH = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}


def _for_here(entry: dict[str, Any]) -> bool:
    wanted = {"os": "linux", "cpu": _ARCH.get(platform.machine(), platform.machine()),
              "libc": "glibc"}  # fmt: skip
    return all(wanted[k] in entry[k] for k in wanted if entry.get(k))


def pack(wanted_specs: list[str], into: Path) -> None:
    """`npm pack` each package not packed yet (the registry's own tarball): every one a
    lockfile pins (a path), or one `name@version`."""
    into.mkdir(parents=True, exist_ok=True)
    have = {_spec(t) for t in into.glob("*.tgz")}
    specs = [p for w in wanted_specs for p in (pinned(Path(w)) if Path(w).is_file() else [w])]
    wanted = sorted({p for p in specs if p not in have})
    if wanted:
        subprocess.run(["npm", "pack", "--silent", *wanted], cwd=into, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip


def _manifest(tarball: Path) -> dict[str, object]:
    with tarfile.open(tarball) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/package.json")
                      and m.name.count("/") == 1)  # fmt: skip
        data = archive.extractfile(member)
        assert data is not None
        manifest: dict[str, object] = json.loads(data.read())
    return manifest


def _spec(tarball: Path) -> str:
    manifest = _manifest(tarball)
    return f"{manifest['name']}@{manifest['version']}"


@contextmanager
def npm_registry(packs: Path = PACKS) -> Iterator[str]:
    """Serve every tarball in `packs` as a registry (a document per package, its tarballs):
    yields its URL."""
    if not any(packs.glob("*.tgz")):
        raise FileNotFoundError(f"no packed npm packages in {packs}: run `make install`")

    def files(url: str) -> Files:
        answers: Files = {}
        documents: dict[str, dict[str, Any]] = {}
        for tarball in sorted(packs.glob("*.tgz")):
            manifest, data = _manifest(tarball), tarball.read_bytes()
            name, version = str(manifest["name"]), str(manifest["version"])
            integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
            answers[f"/{name}/-/{tarball.name}"] = ("application/octet-stream", data)
            dist = {"tarball": f"{url}/{name}/-/{tarball.name}", "integrity": integrity}
            document = documents.setdefault(name, {"name": name, "versions": {}})
            document["versions"][version] = {**manifest, "dist": dist}
            document["dist-tags"] = {"latest": version}
        for name, document in documents.items():  # scoped names are asked as @scope%2fname
            body = ("application/json", json.dumps(document).encode())
            for asked in (name, name.replace("/", "%2f"), name.replace("/", "%2F")):
                answers[f"/{asked}"] = body
        return answers

    with serve_files(files) as url:
        yield url


if __name__ == "__main__":
    pack(sys.argv[2:], Path(sys.argv[1]))
