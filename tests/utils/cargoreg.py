"""A Cargo registry on loopback (the sparse protocol: config.json, index files, .crate
downloads), serving crates written by the test."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.utils.loopback import Files, serve_files


@dataclass(frozen=True)
class Crate:
    name: str
    """A lowercase name of at least four characters (its index path is `ab/cd/<name>`)."""
    version: str
    files: dict[str, str]
    """Its files besides Cargo.toml (src/lib.rs among them)."""

    def archive(self) -> bytes:
        """The .crate: a gzipped tar of `<name>-<version>/`, as `cargo package` makes it."""
        manifest = (
            f'[package]\nname = "{self.name}"\nversion = "{self.version}"\nedition = "2021"\n'
        )
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as tar:
            for name, content in sorted({"Cargo.toml": manifest, **self.files}.items()):
                body = content.encode()
                info = tarfile.TarInfo(f"{self.name}-{self.version}/{name}")
                info.size, info.mtime, info.mode = len(body), 0, 0o644
                tar.addfile(info, io.BytesIO(body))
        return gzip.compress(data.getvalue(), mtime=0)

    def index_line(self) -> bytes:
        entry = {"name": self.name, "vers": self.version, "deps": [], "features": {},
                 "cksum": hashlib.sha256(self.archive()).hexdigest(), "yanked": False}  # fmt: skip
        return json.dumps(entry).encode() + b"\n"


@contextmanager
def cargo_registry(*crates: Crate) -> Iterator[str]:
    """Serve `crates`; yields the index's URL for Cargo (`sparse+http://<this machine>:<port>/`),
    by this machine's name, as builds reach out only through a proxy."""

    def files(base: str) -> Files:
        answers: Files = {"/config.json": ("application/json", json.dumps(
            {"dl": f"{base}/dl/{{crate}}/{{version}}.crate"}
        ).encode())}  # fmt: skip
        for c in crates:
            answers[f"/{c.name[:2]}/{c.name[2:4]}/{c.name}"] = ("text/plain", c.index_line())
            answers[f"/dl/{c.name}/{c.version}.crate"] = ("application/gzip", c.archive())
        return answers

    with serve_files(files, socket.gethostname()) as url:
        yield f"sparse+{url}/"
