"""The API's one Temporal connection: made on first use, and a failure remembered for a moment,
so requests while Temporal is down are answered at once instead of each waiting to connect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from api.deps import TemporalUnavailable
from api.temporal import REMEMBER_FAILURE_S, TemporalConnection
from tests.conftest import free_port
from tests.utils.settings import make_settings


@asynccontextmanager
async def forwarder(port: int, target: str, accepted: list[int]) -> AsyncIterator[None]:
    """Temporal comes up on `port`: a TCP relay to the test server's frontend."""
    host, target_port = target.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        up_reader, up_writer = await asyncio.open_connection(host, int(target_port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(relay, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


async def test_a_failed_connection_is_remembered_then_retried(
    tmp_path: Path, temporal_target: str
) -> None:
    port = free_port()
    settings = make_settings(tmp_path / "home", f"127.0.0.1:{port}")
    connection = TemporalConnection(settings, TracerProvider().get_tracer("test"))
    with pytest.raises(TemporalUnavailable) as first:
        await connection.client()
    reason = str(first.value)
    assert reason.startswith(f"Temporal is not reachable at 127.0.0.1:{port}: ")
    accepted: list[int] = []
    async with forwarder(port, temporal_target, accepted):
        with pytest.raises(TemporalUnavailable) as again:
            await connection.client()  # within the moment: told at once, no new attempt
        assert (str(again.value), accepted) == (reason, [])
        await asyncio.sleep(REMEMBER_FAILURE_S + 0.1)
        client = await connection.client()
        assert accepted  # connected this time, through the relay
        assert await client.service_client.check_health()
        assert await connection.client() is client  # one client per process
