from __future__ import annotations

from pathlib import Path

import pytest

from ratchet.artifacts import ArtifactNotFound, FilesystemArtifactStore


def test_content_addressed_round_trip(tmp_path: Path) -> None:
    store = FilesystemArtifactStore(tmp_path)
    ref = store.put(b"hello")
    assert ref == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert store.put(b"hello") == ref
    assert store.get(ref) == b"hello" and store.exists(ref)
    assert store.get_text(store.put_text("héllo")) == "héllo"


@pytest.mark.parametrize("ref", ["sha256:" + "0" * 64, "../../etc/passwd", "sha256:../x", ""])
def test_unknown_or_malformed_refs(tmp_path: Path, ref: str) -> None:
    with pytest.raises(ArtifactNotFound):
        FilesystemArtifactStore(tmp_path).get(ref)
