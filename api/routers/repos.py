"""GET /repos/{repo}/memory: what runs learned about a repository (versioned, stale marked)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from api.deps import Authenticated, SettingsDep, StoreDep
from gym.memory import Memory

router = APIRouter(prefix="/repos", tags=["repos"], dependencies=[Authenticated])


@router.get("/{repo:path}/memory")
async def repo_memory(repo: str, settings: SettingsDep, store: StoreDep) -> dict[str, Any]:
    """`repo` as given to POST /tasks (a path or URL, percent-encoded in the URL)."""
    memory = Memory(settings.home, store)
    versions = await asyncio.to_thread(memory.versions, repo)
    entries = await asyncio.to_thread(memory.entries, repo)
    return {
        "repo": repo,
        "version": len(versions),
        "versions": [{"version": v["version"], "run_id": v["run_id"]} for v in versions],
        "entries": entries,
    }
