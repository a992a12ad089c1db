"""The gate refuses bad input with a 4xx and a message, and starts nothing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from api.main import create_app
from ratchet.settings import Settings
from tests.conftest import make_settings, serve_app
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, write_script


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "calc", PY_REPO)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return write_script(tmp_path / "script.toml", [ADD_MUL_WRONG])


async def started(client: Client, settings: Settings) -> int:
    count = await client.count_workflows(f"TaskQueue = '{settings.task_queue}'")
    return count.count


def good_body(repo: Path, script: Path) -> dict[str, object]:
    return {
        "repo": str(repo),
        "goal": "add mul",
        "policy": "scripted",
        "policy_script": str(script),
    }


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"repo": None}, 422, "repo"),
        ({"repo": ""}, 422, "repo"),
        ({"repo": "/no/such/path"}, 422, "no such directory"),
        ({"repo": "relative/path"}, 422, "absolute path"),
        ({"base_ref": "no-such-branch"}, 422, "unknown ref 'no-such-branch'"),
        ({"base_ref": "--upload-pack=evil"}, 422, "not a ref"),
        ({"goal": ""}, 422, "goal"),
        ({"goal": "x" * 20_001}, 422, "limit is 20000"),
        ({"policy": "gpt"}, 422, "policy"),
        ({"policy": None, "policy_script": None}, 422, "ANTHROPIC_API_KEY"),
        ({"policy": "anthropic", "policy_script": None}, 422, "ANTHROPIC_API_KEY"),
        ({"policy_script": None}, 422, "policy_script"),
        ({"policy_script": "/no/such/script.toml"}, 422, "policy_script"),
        ({"surprise": 1}, 422, "surprise"),
    ],
)
async def test_bad_task_is_refused_with_a_message(
    api: httpx.AsyncClient,
    client: Client,
    settings: Settings,
    repo: Path,
    script: Path,
    change: dict[str, object],
    status: int,
    message: str,
) -> None:
    body = good_body(repo, script)
    for key, value in change.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    response = await api.post("/tasks", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert await started(client, settings) == 0


async def test_not_a_git_repository(api: httpx.AsyncClient, tmp_path: Path, script: Path) -> None:
    (tmp_path / "plain").mkdir()
    response = await api.post("/tasks", json=good_body(tmp_path / "plain", script))
    assert response.status_code == 422
    assert "not a git repository" in response.json()["detail"]


async def test_invalid_script_is_refused(
    api: httpx.AsyncClient, repo: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("plan = 'no patches'\n")
    response = await api.post("/tasks", json=good_body(repo, bad))
    assert response.status_code == 422
    assert "[[patch]]" in response.json()["detail"]


async def test_malformed_json_and_wrong_content_type(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/tasks", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]
    response = await api.post("/tasks", content=b"repo=x", headers={"content-type": "text/plain"})
    assert response.status_code == 422


async def test_oversized_body_is_refused_before_parsing(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/tasks", content=b"{" + b" " * (3 * 1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic dGVzdA=="])
async def test_requests_without_the_token_are_refused(
    api: httpx.AsyncClient, repo: Path, script: Path, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(base_url=str(api.base_url), headers=headers) as anonymous:
        for method, path in (("POST", "/tasks"), ("GET", "/runs/task-x"), ("GET", "/runs/x/patch")):
            response = await anonymous.request(method, path, json=good_body(repo, script))
            assert response.status_code == 401, (method, path)
            assert "token" in response.json()["detail"]
        assert (await anonymous.get("/healthz")).status_code == 200


async def test_unknown_run_is_404(api: httpx.AsyncClient) -> None:
    for path in ("/runs/task-nope", "/runs/task-nope/patch", "/runs/-rf"):
        response = await api.get(path)
        assert response.status_code == 404, path
        assert "no run" in response.json()["detail"]
    assert (await api.get("/runs/..%2F..%2Fetc")).status_code == 404


async def test_health_and_readiness(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    assert (await api.get("/readyz")).status_code == 200


async def test_without_temporal_health_is_up_ready_is_not_and_writes_say_why(
    tmp_path: Path, repo: Path, script: Path
) -> None:
    from tests.conftest import free_port

    settings = make_settings(tmp_path / "home", f"127.0.0.1:{free_port()}")
    app = create_app(settings)
    async with (
        serve_app(app) as base_url,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {settings.token}"}, timeout=30
        ) as http,
    ):
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        response = await http.post("/tasks", json=good_body(repo, script))
        assert response.status_code == 503
        assert "Temporal is not reachable" in response.json()["detail"]
        assert "nothing was started" in response.json()["detail"]
