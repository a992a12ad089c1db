"""The dependencies every endpoint shares: run ids a URL may name, and the API token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import HTTPException
from opentelemetry.sdk.trace import TracerProvider

from api.deps import check_run_id
from api.main import create_app
from tests.conftest import free_port, serve_app
from tests.utils.settings import TOKEN, make_settings

REFUSED = "missing or wrong API token: send 'Authorization: Bearer <token>'"


@pytest.mark.parametrize(
    "run_id",
    ["task-0123456789ab", "inv-0123456789ab", "sentry-6543210987",
     "drift-schedule-0123456789ab-run-2026-11-21T18:04:56Z", "a" * 201],
)  # fmt: skip
def test_a_run_id_ratchet_could_have_made_is_taken(run_id: str) -> None:
    assert check_run_id(run_id) == run_id


@pytest.mark.parametrize(
    "run_id", ["", "-rf", "../etc", ".hidden", "a b", "a/b", "a" * 202, "täsk-1"]
)
def test_any_other_run_id_is_no_run(run_id: str) -> None:
    with pytest.raises(HTTPException) as err:
        check_run_id(run_id)
    assert (err.value.status_code, err.value.detail) == (404, f"no run {run_id[:100]!r}")


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    # No Temporal behind it: the token is checked before anything needs one.
    settings = make_settings(tmp_path / "home", f"127.0.0.1:{free_port()}")
    async with serve_app(create_app(settings, tracer_provider=TracerProvider())) as url:
        yield url


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Token {TOKEN}"]
)
async def test_without_the_exact_token_a_request_is_told_how_to_authenticate(
    base_url: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as http:
        response = await http.get("/runs/task-0123456789ab")
    assert (response.status_code, response.json()) == (401, {"detail": REFUSED})
    assert response.headers["www-authenticate"] == "Bearer"


async def test_with_the_token_a_request_gets_past_the_gate(base_url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as http:
        response = await http.get("/runs/task-0123456789ab")
    assert response.status_code == 503  # the next thing it needs is Temporal, which is away
    assert "Temporal is not reachable" in response.json()["detail"]
