"""What a caller gets when a request is invalid or Temporal cannot take it: a status and one
line, with Retry-After where sending the same request again may work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from opentelemetry.sdk.trace import TracerProvider
from temporalio.client import Client

from api.main import create_app
from tests.conftest import free_port, serve_app
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, write_script
from tests.utils.settings import TOKEN, make_settings

MISSING = "no-such-namespace"


@asynccontextmanager
async def gate_on(
    tmp_path: Path, target: str, client: Client | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    namespace = client.namespace if client else "default"
    settings = make_settings(tmp_path / "home", target, namespace=namespace)
    app = create_app(settings, client=client, tracer_provider=TracerProvider())
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        serve_app(app) as base_url,
        httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http,
    ):
        yield http


def task(tmp_path: Path) -> dict[str, object]:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "script.toml", [ADD_MUL_WRONG])
    return {
        "repo": str(repo),
        "goal": "add mul",
        "policy": "scripted",
        "policy_script": str(script),
    }


async def test_an_invalid_body_is_one_line_naming_each_field(api: httpx.AsyncClient) -> None:
    missing = await api.post("/tasks", json={})
    assert (missing.status_code, missing.json()) == (
        422, {"detail": "repo: Field required; goal: Field required"}
    )  # fmt: skip
    nested = await api.post("/tasks", json={"repo": "/r", "goal": "g", "budget": {"max_turns": 0}})
    assert nested.json() == {"detail": "budget.max_turns: Input should be greater than 0"}


async def test_without_temporal_a_start_is_refused_with_retry_after(tmp_path: Path) -> None:
    target = f"127.0.0.1:{free_port()}"
    async with gate_on(tmp_path, target) as http:
        response = await http.post("/tasks", json=task(tmp_path))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    detail = response.json()["detail"]
    assert detail.startswith(f"Temporal is not reachable at {target}: ")
    assert detail.endswith("; nothing was started")


async def test_what_temporal_refuses_is_a_503_with_its_message(
    tmp_path: Path, temporal_target: str
) -> None:
    missing = await Client.connect(temporal_target, namespace=MISSING)
    async with gate_on(tmp_path, temporal_target, missing) as http:
        started = await http.post("/tasks", json=task(tmp_path))
        listed = await http.get("/runs")
    not_found = f"Namespace {MISSING} is not found."
    assert (started.status_code, started.headers["retry-after"]) == (503, "5")
    assert started.json() == {
        "detail": f"Temporal refused the run: {not_found}; nothing was started"
    }
    assert (listed.status_code, listed.headers["retry-after"]) == (503, "5")
    assert listed.json() == {"detail": f"Temporal error: {not_found}"}
