"""A Go module proxy on loopback (the GOPROXY protocol: list, info, mod, zip), serving modules
written by the test, and the go.sum lines that pin them (Go's dirhash "h1:" hashes)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.utils.loopback import Files, serve_files


@dataclass(frozen=True)
class Module:
    path: str
    """A lowercase module path ("example.com/greet": no case-escaping needed)."""
    version: str
    files: dict[str, str]
    """Its files, go.mod among them."""

    def zip(self) -> bytes:
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w") as archive:
            for name, content in sorted(self.files.items()):
                archive.writestr(f"{self.path}@{self.version}/{name}", content)
        return data.getvalue()

    def sum_lines(self) -> str:
        """The go.sum lines of this module: its zip's hash and its go.mod's."""
        prefix = f"{self.path}@{self.version}/"
        tree = _hash1({prefix + name: content.encode() for name, content in self.files.items()})
        mod = _hash1({"go.mod": self.files["go.mod"].encode()})
        return f"{self.path} {self.version} {tree}\n{self.path} {self.version}/go.mod {mod}\n"


def _hash1(files: dict[str, bytes]) -> str:
    """Go's dirhash.Hash1: sha256 over "<sha256 of file>  <name>" lines, names sorted."""
    summary = "".join(f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


@contextmanager
def go_proxy(*modules: Module) -> Iterator[str]:
    """Serve `modules`; yields the proxy's URL, by this machine's name (Go sends no request
    for a loopback address through an HTTP proxy, and builds reach out only through one)."""
    answers: Files = {}
    for m in modules:
        base = f"/{m.path}/@v/{m.version}"
        info = json.dumps({"Version": m.version, "Time": "2026-01-01T00:00:00Z"}).encode()
        answers[f"/{m.path}/@v/list"] = ("text/plain", f"{m.version}\n".encode())
        answers[base + ".info"] = ("application/json", info)
        answers[base + ".mod"] = ("text/plain", m.files["go.mod"].encode())
        answers[base + ".zip"] = ("application/zip", m.zip())
    with serve_files(lambda _: answers, socket.gethostname()) as url:
        yield url
