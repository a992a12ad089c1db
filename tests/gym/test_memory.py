"""A repository's memory kept in the store: writers on different homes agree on one history."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gym.memory import Memory, repo_key
from ratchet.artifacts import FilesystemArtifactStore

REPO = "https://example.org/calc.git"


def test_concurrent_writers_on_separate_homes_lose_no_entry(tmp_path: Path) -> None:
    store = FilesystemArtifactStore(tmp_path / "store")
    homes = [Memory(tmp_path / f"worker-{n}", store) for n in range(4)]

    def learn(n: int) -> int:
        text = f"fact {n}"
        return homes[n % 4].record(REPO, f"task-{n:012d}", [{"kind": "fact", "text": text}], [])

    with ThreadPoolExecutor(max_workers=8) as pool:
        numbers = list(pool.map(learn, range(24)))
    assert sorted(numbers) == list(range(1, 25))  # every writer got a version of its own
    texts = {e["text"] for e in homes[0].entries(REPO)}
    assert texts == {f"fact {n}" for n in range(24)}
    versions = homes[3].versions(REPO)
    assert [v["version"] for v in versions] == list(range(1, 25))
    assert {v["run_id"] for v in versions} == {f"task-{n:012d}" for n in range(24)}
    assert not (tmp_path / "worker-0" / "memory").exists()  # nothing of it on a worker's disk


def test_a_home_s_earlier_index_is_read_as_the_first_versions(tmp_path: Path) -> None:
    store = FilesystemArtifactStore(tmp_path / "store")
    old = [{"id": "m1", "kind": "fact", "text": "tests run with tox", "stale": False}]
    index = tmp_path / "home" / "memory" / f"{repo_key(REPO)}.json"
    index.parent.mkdir(parents=True)
    index.write_text(json.dumps([{"version": 1, "run_id": "task-1", "ref": store.put_text(
        json.dumps(old))}]))  # fmt: skip
    memory = Memory(tmp_path / "home", store)
    assert [e["text"] for e in memory.entries(REPO)] == ["tests run with tox"]
    assert memory.record(REPO, "task-2", [{"kind": "fact", "text": "lint with ruff"}], ["m1"]) == 2
    entries = memory.entries(REPO)
    assert [(e["text"], e["stale"]) for e in entries] == [
        ("tests run with tox", True), ("lint with ruff", False)
    ]  # fmt: skip
    assert [v["version"] for v in memory.versions(REPO)] == [1, 2]
