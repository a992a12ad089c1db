"""BodySizeLimit over real HTTP: a body over the limit is refused (413) whether its size is
declared or only seen as it arrives, and the endpoint never gets it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from api.limits import BodySizeLimit
from tests.conftest import serve_app

LIMIT = 64
REFUSED = {"detail": f"request body is larger than the {LIMIT}-byte limit"}


def echo_app(handled: list[int]) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        size = len(await request.body())
        handled.append(size)
        return {"size": size}

    app.add_middleware(BodySizeLimit, max_bytes=LIMIT)
    return app


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
def handled() -> list[int]:
    return []


@pytest.fixture
async def http(handled: list[int]) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_app(echo_app(handled)) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        yield client


async def test_a_body_at_the_limit_reaches_the_endpoint(
    http: httpx.AsyncClient, handled: list[int]
) -> None:
    declared = await http.post("/echo", content=b"x" * LIMIT)
    streamed = await http.post("/echo", content=chunks(b"x" * 40, b"x" * 24))
    assert (declared.status_code, declared.json()) == (200, {"size": LIMIT})
    assert (streamed.status_code, streamed.json()) == (200, {"size": LIMIT})
    assert handled == [LIMIT, LIMIT]


async def test_a_declared_length_over_the_limit_is_refused_unread(
    http: httpx.AsyncClient, handled: list[int]
) -> None:
    response = await http.post("/echo", content=b"x" * (LIMIT + 1))
    assert (response.status_code, response.json()) == (413, REFUSED)
    assert response.headers["content-type"] == "application/json"
    assert handled == []


async def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(
    http: httpx.AsyncClient, handled: list[int]
) -> None:
    # No Content-Length: only the bytes counted as they come can tell it is too large.
    response = await http.post("/echo", content=chunks(b"x" * 40, b"x" * 40))
    assert "content-length" not in response.request.headers
    assert (response.status_code, response.json()) == (413, REFUSED)
    assert handled == []
