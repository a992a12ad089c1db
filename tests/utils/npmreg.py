"""An npm registry on loopback, serving the packages a lockfile pins, packed once by
`make install` from the registry this machine's npm uses (`python -m tests.utils.npmreg
LOCKFILE DIR`): an npm ci in a test downloads nothing from outside the machine."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[2]
PACKS = ROOT / ".venv" / "npm-packs"


def pinned(lockfile: Path) -> list[str]:
    """name@version of every package a package-lock.json (v2/v3) pins."""
    packages = json.loads(lockfile.read_text()).get("packages", {})
    return [
        f"{path.rsplit('node_modules/', 1)[1]}@{entry['version']}"
        for path, entry in packages.items()
        if path.startswith("node_modules/") and not entry.get("link")
    ]


def pack(lockfile: Path, into: Path) -> None:
    """`npm pack` each pinned package not packed yet (the registry's own tarball)."""
    into.mkdir(parents=True, exist_ok=True)
    have = {_spec(t) for t in into.glob("*.tgz")}
    wanted = [p for p in pinned(lockfile) if p not in have]
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
    """Serve every tarball in `packs` as a registry: yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    documents: dict[str, dict[str, object]] = {}
    tarballs: dict[str, bytes] = {}
    for tarball in sorted(packs.glob("*.tgz")):
        manifest, data = _manifest(tarball), tarball.read_bytes()
        name, version = str(manifest["name"]), str(manifest["version"])
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        tarballs[f"/{name}/-/{tarball.name}"] = data
        document = documents.setdefault(name, {"name": name, "versions": {}, "dist-tags": {}})
        dist = {"tarball": f"{url}/{name}/-/{tarball.name}", "integrity": integrity}
        document["versions"][version] = {**manifest, "dist": dist}  # type: ignore[index]
        document["dist-tags"] = {"latest": version}
    server.documents, server.tarballs = documents, tarballs  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = unquote(self.path.split("?", 1)[0])
        server = self.server
        if path in server.tarballs:  # type: ignore[attr-defined]
            self._send("application/octet-stream", server.tarballs[path])  # type: ignore[attr-defined]
            return
        document = server.documents.get(path.lstrip("/"))  # type: ignore[attr-defined]
        if document is None:
            self.send_error(404)
            return
        self._send("application/json", json.dumps(document).encode())

    def _send(self, kind: str, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


if __name__ == "__main__":
    pack(Path(sys.argv[1]), Path(sys.argv[2]))
