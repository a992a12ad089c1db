"""Content-addressed artifact store: large things (diffs, logs, plans, bundles) travel by hash.

One interface, two backends: a local directory (the default, nothing to start) and S3-compatible
object storage (ratchet/s3store.py), chosen by `RATCHET_ARTIFACTS_URL` (`file:///path`,
`s3://bucket/prefix`). Keys are the content's sha256, so a write is idempotent: storing what is
there already is a lookup. Large objects stream (`put_file`, `get_file`): nothing reads a whole
log or bundle into memory to store or fetch it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ratchet.scrub import Scrubber

_REF = re.compile(r"^sha256:([0-9a-f]{64})$")
_CLAIM = re.compile(r"[a-z0-9][a-z0-9.-]{0,199}")
CHUNK = 1 << 20


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

    def put_file(self, path: Path) -> str:
        """Store the file at `path`, streamed (scrubbed like `put`); its reference."""
        ...

    def get_file(self, ref: str, path: Path) -> None:
        """Write the artifact to `path`, streamed."""
        ...

    def claim(self, name: str, data: bytes = b"") -> bool:
        """Make the marker `name` (holding `data`) unless it exists, atomically across every
        process using the store: True for the one call that made it (replicas agree on who does
        a thing once; workers on what a snapshot's bundle or a memory version is)."""
        ...

    def marker(self, name: str) -> bytes | None:
        """What the marker `name` holds; None when there is none."""
        ...

    def markers(self, prefix: str) -> list[str]:
        """The names of every marker that starts with `prefix`, sorted."""
        ...

    def release(self, prefix: str) -> None:
        """Remove every marker whose name starts with `prefix`."""
        ...

    def redact(self, text: str) -> str:
        """`text` with the worker's secrets replaced, as the store would keep it: text that
        leaves the worker by another road (a report's summary, a tool's answer) goes through
        this, so it carries no more than the artifacts do."""
        ...


def digest_of(ref: str) -> str:
    match = _REF.match(ref)
    if match is None:
        # A reference is data from outside (API, workflow history): never let it become a path.
        raise ArtifactNotFound(f"not an artifact reference: {ref[:80]!r}")
    return match.group(1)


def claim_name(name: str) -> str:
    if not _CLAIM.fullmatch(name):
        raise ValueError(f"not a claim name: {name[:80]!r}")
    return name


def read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


class ContentStore(ABC):
    """What both backends share: scrubbing, hashing, text, and a streamed put through a local
    temporary file (hashed and scrubbed on the way, so the key is known before the upload).
    Each backend says how it tests for, writes and reads an object."""

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        self.scrubber = scrubber or Scrubber()

    @abstractmethod
    def _has(self, digest: str) -> bool: ...

    @abstractmethod
    def _write(self, digest: str, data: bytes) -> None: ...

    @abstractmethod
    def _write_file(self, digest: str, path: Path) -> None:
        """Keep the file at `path` (a temporary file of the store's, moved or uploaded)."""

    def redact(self, text: str) -> str:
        return self.scrubber.text(text)

    def put(self, data: bytes) -> str:
        data = self.scrubber.data(data)  # a transcript or log may quote a key it was shown
        digest = hashlib.sha256(data).hexdigest()
        if not self._has(digest):
            self._write(digest, data)
        return "sha256:" + digest

    def put_file(self, path: Path) -> str:
        fd, tmp = tempfile.mkstemp(dir=self._staging(), prefix=".tmp-")
        hasher = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in self.scrubber.chunks(read_chunks(path)):
                    hasher.update(chunk)
                    out.write(chunk)
            digest = hasher.hexdigest()
            if not self._has(digest):
                self._write_file(digest, Path(tmp))
        finally:
            Path(tmp).unlink(missing_ok=True)
        return "sha256:" + digest

    def _staging(self) -> str | None:
        return None

    def exists(self, ref: str) -> bool:
        return self._has(digest_of(ref))

    def put_text(self, text: str) -> str:
        return self.put(text.encode())

    @abstractmethod
    def get(self, ref: str) -> bytes: ...

    def get_text(self, ref: str) -> str:
        return self.get(ref).decode(errors="replace")


class FilesystemArtifactStore(ContentStore):
    """Artifacts as files named by their hash under one directory (the default store)."""

    def __init__(self, root: Path, scrubber: Scrubber | None = None) -> None:
        super().__init__(scrubber)
        self.root = root

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def _has(self, digest: str) -> bool:
        return self._path(digest).exists()

    def _staging(self) -> str:
        # Beside the artifacts, so keeping a streamed file is a rename on one filesystem.
        self.root.mkdir(parents=True, exist_ok=True)
        return str(self.root)

    def _write(self, digest: str, data: bytes) -> None:
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half an artifact even if the writer dies.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)

    def _write_file(self, digest: str, path: Path) -> None:
        target = self._path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)

    def get(self, ref: str) -> bytes:
        try:
            return self._path(digest_of(ref)).read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFound(f"no artifact {ref}") from None

    def get_file(self, ref: str, path: Path) -> None:
        try:
            src = self._path(digest_of(ref)).open("rb")
        except FileNotFoundError:
            raise ArtifactNotFound(f"no artifact {ref}") from None
        # A destination that cannot be written is that error, not a missing artifact.
        with src, path.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK)

    def _marker_path(self, name: str) -> Path:
        # One directory per name's first dot-separated part (a run's deliveries, one activity's
        # ledger, one repository's memory): listing a prefix reads that directory, not them all.
        name = claim_name(name)
        return self.root / "claims" / name.split(".", 1)[0] / name

    def claim(self, name: str, data: bytes = b"") -> bool:
        path = self._marker_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside then linked: link() fails when the name exists (the atomic create-if-
        # absent), and a reader never sees a marker without its data.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def marker(self, name: str) -> bytes | None:
        try:
            return self._marker_path(name).read_bytes()
        except FileNotFoundError:
            return None

    def _marker_paths(self, prefix: str) -> list[Path]:
        prefix = claim_name(prefix)
        first = prefix.split(".", 1)[0]
        claims = self.root / "claims"
        families = [claims / first] if "." in prefix else sorted(claims.glob(first + "*"))
        return [p for family in families for p in family.glob(prefix + "*")]

    def markers(self, prefix: str) -> list[str]:
        return sorted(p.name for p in self._marker_paths(prefix))

    def release(self, prefix: str) -> None:
        for path in self._marker_paths(prefix):
            path.unlink(missing_ok=True)
