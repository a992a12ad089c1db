"""Both artifact stores behind one interface, the S3 one against a real S3-compatible server on
loopback: content-addressed, idempotent, scrubbed, and streamed for large objects."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ratchet.artifacts import ArtifactNotFound, ArtifactStore, FilesystemArtifactStore
from ratchet.s3store import PART, S3ArtifactStore
from ratchet.scrub import REDACTED, Scrubber
from ratchet.stores import BadStoreURL, store_at
from tests.utils.s3server import S3Server, s3_server

SECRET = "sk-test-0123456789abcdef-secret"


@pytest.fixture(scope="module")
def server() -> Iterator[S3Server]:
    with s3_server() as running:
        yield running


@pytest.fixture(params=["file", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ArtifactStore:
    scrubber = Scrubber([SECRET])
    if request.param == "file":
        return store_at((tmp_path / "artifacts").as_uri(), scrubber)
    server: S3Server = request.getfixturevalue("server")
    for key, value in server.env().items():  # the standard AWS variables, as a deployment sets
        monkeypatch.setenv(key, value)
    bucket = server.bucket(f"b-{os.urandom(4).hex()}")
    made = store_at(f"s3://{bucket}/ratchet/artifacts", scrubber)
    assert isinstance(made, S3ArtifactStore)
    return made


def test_a_round_trip_is_content_addressed_and_a_second_write_is_a_lookup(
    store: ArtifactStore,
) -> None:
    ref = store.put(b"hello")
    assert ref == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert store.exists(ref) and store.get(ref) == b"hello"
    assert store.put(b"hello") == ref
    assert store.get_text(store.put_text("héllo")) == "héllo"
    assert not store.exists("sha256:" + "0" * 64)
    for bad in ("sha256:" + "0" * 64, "../../etc/passwd", "sha256:../x"):
        with pytest.raises(ArtifactNotFound):
            store.get(bad)


def test_the_s3_store_keys_objects_by_hash_and_writes_once(server: S3Server) -> None:
    bucket = server.bucket("keys")
    store = S3ArtifactStore(f"s3://{bucket}/runs", client=server.client())
    ref = store.put(b"hello")
    store.put(b"hello")
    listed = server.client().list_objects_v2(Bucket=bucket)["Contents"]
    digest = ref.removeprefix("sha256:")
    assert [o["Key"] for o in listed] == [f"runs/{digest[:2]}/{digest}"]


def test_a_large_file_streams_in_and_out_scrubbed_without_being_held_in_memory(
    store: ArtifactStore, tmp_path: Path
) -> None:
    big = tmp_path / "build.log"
    line = b"compiling a module of the repository, line after line, to make a large log\n"
    with big.open("wb") as out:
        for i in range(800_000):  # 60 MB, a secret in the middle across no particular boundary
            out.write(line if i != 400_000 else f"token={SECRET}\n".encode())
    tracemalloc.start()
    ref = store.put_file(big)
    back = tmp_path / "back.log"
    store.get_file(ref, back)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Streamed: at most the transfer's parts in flight (two of 8 MiB), never the whole file.
    assert peak < 3 * PART < big.stat().st_size / 2, peak
    data = back.read_bytes()
    assert SECRET.encode() not in data and f"token={REDACTED}\n".encode() in data
    assert len(data) == big.stat().st_size - len(SECRET) + len(REDACTED)
    assert store.put_file(big) == ref  # idempotent
    with pytest.raises(ArtifactNotFound):
        store.get_file("sha256:" + "0" * 64, tmp_path / "none.log")


def test_the_store_is_chosen_by_its_url(tmp_path: Path) -> None:
    made = store_at(f"file://{tmp_path}/a")
    assert isinstance(made, FilesystemArtifactStore) and made.root == tmp_path / "a"
    for bad in ("s3://", "ftp://host/x", "/plain/path", "file://remote-host/x"):
        with pytest.raises(BadStoreURL, match="file:///path or s3://bucket/prefix"):
            store_at(bad)


def test_the_scrubber_catches_a_secret_split_across_chunks() -> None:
    scrubber = Scrubber([SECRET])
    text = f"head {SECRET} tail {SECRET}".encode()
    for size in (1, 3, 7, len(SECRET) - 1, len(SECRET), 100):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        assert b"".join(scrubber.chunks(chunks)) == scrubber.data(text)


def test_of_many_concurrent_claims_of_one_name_exactly_one_wins(store: ArtifactStore) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        won = list(pool.map(lambda _: store.claim("sentry-1.abc.7"), range(48)))
    assert won.count(True) == 1
    assert store.claim("sentry-1.def.7") and store.claim("sentry-2.abc.7")
    store.release("sentry-1.")  # every claim of that run, not another run's
    assert store.claim("sentry-1.abc.7") and not store.claim("sentry-2.abc.7")
    with pytest.raises(ValueError, match="not a claim name"):
        store.claim("../escape")


def test_a_marker_keeps_what_its_first_claim_wrote(store: ArtifactStore) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        won = list(pool.map(lambda n: store.claim("memory-k.000002", b"v%d" % n), range(16)))
    winner = won.index(True)
    assert store.marker("memory-k.000002") == b"v%d" % winner  # never a loser's, never empty
    assert store.marker("memory-k.000003") is None
    store.claim("memory-k.000001", b"first")
    store.claim("memory-other.000001")
    assert store.markers("memory-k.") == ["memory-k.000001", "memory-k.000002"]
    assert store.markers("memory-") == [
        "memory-k.000001", "memory-k.000002", "memory-other.000001"
    ]  # fmt: skip
    assert store.markers("nothing.") == [] and store.markers("nothing") == []
