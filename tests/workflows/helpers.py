from __future__ import annotations

import asyncio
from typing import Any

import httpx


async def wait_for_end(
    api: httpx.AsyncClient, run_id: str, timeout_s: float = 90, until_not: str = "running"
) -> dict[str, Any]:
    """Poll until the run leaves `until_not` (by default: it ended, paused or awaits approval)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        response = await api.get(f"/runs/{run_id}")
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        if run["status"] not in ("running", until_not):
            return run
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"run {run_id} still running after {timeout_s}s: {run}")
        await asyncio.sleep(0.2)
