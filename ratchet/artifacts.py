"""Content-addressed artifact store: large things (diffs, logs, plans, scripts) travel by hash."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from ratchet.scrub import Scrubber

_REF = re.compile(r"^sha256:([0-9a-f]{64})$")


class ArtifactNotFound(LookupError):
    pass


class ArtifactStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store `data` and return its reference, `sha256:<hex>`."""
        ...

    def get(self, ref: str) -> bytes: ...

    def exists(self, ref: str) -> bool: ...

    def put_text(self, text: str) -> str: ...

    def get_text(self, ref: str) -> str: ...

    def redact(self, text: str) -> str:
        """`text` with the worker's secrets replaced, as the store would keep it: text that
        leaves the worker by another road (a report's summary, a tool's answer) goes through
        this, so it carries no more than the artifacts do."""
        ...


class FilesystemArtifactStore:
    """Artifacts as files named by their hash under one directory (the default store)."""

    def __init__(self, root: Path, scrubber: Scrubber | None = None) -> None:
        self.root = root
        self.scrubber = scrubber or Scrubber()

    def _path(self, ref: str) -> Path:
        match = _REF.match(ref)
        if match is None:
            # A reference is data from outside (API, workflow history): never let it become a path.
            raise ArtifactNotFound(f"not an artifact reference: {ref[:80]!r}")
        digest = match.group(1)
        return self.root / digest[:2] / digest

    def redact(self, text: str) -> str:
        return self.scrubber.text(text)

    def put(self, data: bytes) -> str:
        data = self.scrubber.data(data)  # a transcript or log may quote a key it was shown
        ref = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self._path(ref)
        if path.exists():
            return ref
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half an artifact even if the writer dies.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
        return ref

    def get(self, ref: str) -> bytes:
        path = self._path(ref)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFound(f"no artifact {ref}") from None

    def exists(self, ref: str) -> bool:
        return self._path(ref).exists()

    def put_text(self, text: str) -> str:
        return self.put(text.encode())

    def get_text(self, ref: str) -> str:
        return self.get(ref).decode(errors="replace")
