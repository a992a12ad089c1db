"""GET /repos/{repo}/memory: what runs recorded about a repository, read back over HTTP."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from gym.memory import Memory
from ratchet.artifacts import FilesystemArtifactStore
from ratchet.settings import Settings


async def test_a_repository_s_memory_is_read_with_its_versions(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    repo = "https://git.example/shop.git"
    memory = Memory(settings.home, FilesystemArtifactStore(settings.artifacts_dir))
    memory.record(repo, "task-000000000001", [{"kind": "fact", "text": "tests run with tox"}], [])
    memory.record(repo, "task-000000000002", [{"kind": "fact", "text": "tests run with nox"}],
                  contradicts=["m1"])  # fmt: skip
    response = await api.get(f"/repos/{quote(repo, safe='')}/memory")
    assert response.status_code == 200, response.text
    shown = response.json()
    assert (shown["repo"], shown["version"]) == (repo, 2)
    assert shown["versions"] == [
        {"version": 1, "run_id": "task-000000000001"},
        {"version": 2, "run_id": "task-000000000002"},
    ]
    assert [(e["id"], e["text"], e["stale"]) for e in shown["entries"]] == [
        ("m1", "tests run with tox", True), ("m2", "tests run with nox", False)
    ]  # fmt: skip
    assert shown["entries"][0]["stale_since"] == "task-000000000002"


async def test_a_repository_nothing_was_learned_about_has_an_empty_memory(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get("/repos//srv/never-seen/memory")
    assert response.json() == {"repo": "/srv/never-seen", "version": 0, "versions": [],
                               "entries": []}  # fmt: skip
