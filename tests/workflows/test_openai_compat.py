"""A self-hosted model behind the OpenAI-compatible API drives the same loop to a verified patch."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import SecretStr
from temporalio.client import Client

from api.main import create_app
from gym.git import git
from tests.conftest import TOKEN, make_settings, serve_app
from tests.utils.fake_anthropic import FakeMessagesApi
from tests.utils.fake_openai import chat_text, chat_tool
from tests.utils.repos import PY_REPO, make_repo
from tests.workflows.helpers import wait_for_end
from tests.workflows.test_agent import MUL, TEST_MUL
from worker import build_worker


async def test_openai_compatible_policy_reaches_a_verified_patch(
    tmp_path: Path, temporal_target: str, client: Client, tracer_provider: object
) -> None:
    edit = {"path": "calc.py", "search": "    return a + b\n", "replace": MUL}
    fake = FakeMessagesApi([
        chat_text("1. add mul"),
        chat_tool("edit_file", edit, "c1"),
        chat_tool("create_file", {"path": "tests/test_mul.py", "content": TEST_MUL}, "c2"),
        chat_tool("submit", {"summary": "mul added"}, "c3"),
        chat_tool("submit", {"summary": "fine as it is"}, "c4"),
    ])  # fmt: skip
    repo = make_repo(tmp_path / "calc", PY_REPO)
    with fake.serve() as url:
        settings = make_settings(
            tmp_path / "home", temporal_target, openai_base_url=f"{url}/v1",
            openai_api_key=SecretStr("local-key"), openai_model="qwen-coder",
        )  # fmt: skip
        app = create_app(settings, client=client, tracer_provider=tracer_provider)  # type: ignore[arg-type]
        async with (
            build_worker(client, settings),
            serve_app(app) as base,
            httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
            ) as api,
        ):
            response = await api.post("/tasks", json={
                "repo": str(repo), "goal": "add mul", "policy": "openai-compatible",
                "memory": False,
            })  # fmt: skip
            assert response.status_code == 202, response.text
            run = await wait_for_end(api, response.json()["run_id"])
    assert run["status"] == "completed", run
    assert "return a * b" in git("show", f"{run['result']['branch']}:calc.py", cwd=repo)
    assert run["usage"]["turns"] == 5
    assert run["usage"]["cache_read_input_tokens"] == 5 * 20
    assert run["usage"]["cost_usd"] == 0.0  # a self-hosted model is not in the price table
    first_turn = fake.requests[1]
    assert first_turn["path"] == "/v1/chat/completions"
    assert first_turn["headers"]["authorization"] == "Bearer local-key"
    body = first_turn["body"]
    assert body["model"] == "qwen-coder" and body["messages"][0]["role"] == "system"
    assert {t["function"]["name"] for t in body["tools"]} >= {"edit_file", "run_tests", "submit"}
    second = fake.requests[2]["body"]["messages"]
    assert second[-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "edit_file: calc.py written",
    }


async def test_openai_compatible_needs_a_base_url(api: httpx.AsyncClient, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    response = await api.post("/tasks", json={
        "repo": str(repo), "goal": "g", "policy": "openai-compatible",
    })  # fmt: skip
    assert response.status_code == 422
    assert "RATCHET_OPENAI_BASE_URL" in response.json()["detail"]
