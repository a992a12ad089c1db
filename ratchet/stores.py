"""The artifact store a deployment uses, from `RATCHET_ARTIFACTS_URL`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from ratchet.artifacts import ArtifactStore, FilesystemArtifactStore
from ratchet.scrub import Scrubber
from ratchet.settings import Settings


class BadStoreURL(ValueError):
    pass


def store_at(url: str, scrubber: Scrubber | None = None) -> ArtifactStore:
    """`file:///path` (a local directory) or `s3://bucket/prefix` (S3-compatible storage,
    endpoint and credentials from the standard AWS variables and chain)."""
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path:
        return FilesystemArtifactStore(Path(unquote(parts.path)), scrubber)
    if parts.scheme == "s3" and parts.netloc:
        from ratchet.s3store import S3ArtifactStore

        return S3ArtifactStore(url, scrubber)
    raise BadStoreURL(
        f"RATCHET_ARTIFACTS_URL must be file:///path or s3://bucket/prefix, not {url[:120]!r}"
    )


def artifact_store(settings: Settings) -> ArtifactStore:
    return store_at(settings.artifacts_location, Scrubber(settings.secret_values()))
