"""A small HTTP load generator, run as its own process (`python -m bench.load < spec.json`) so
that it does not share an event loop or a GIL with the server it measures.

The spec: {"base_url", "concurrency", "requests": [{"method", "path", "headers", "body"}],
"rate"?}. It opens `concurrency` keep-alive connections (each first sends GET /healthz, not
timed), sends the requests from them, and prints one JSON object: the wall time, its own CPU
time, every request's latency, the count of each status and the run ids answered.

Without "rate" each connection sends its next request as soon as it has an answer (the most the
server takes). With "rate" (requests a second) the requests are due on a fixed schedule, as
Sentry sends them whether or not the server keeps up, and a request's latency runs from the
moment it was due, so time spent waiting for a free connection counts too (no coordinated
omission).

It speaks just enough HTTP/1.1 over asyncio streams (requests with a body and Content-Length,
responses with Content-Length, as uvicorn sends them): httpx spent about 2 ms of CPU a request
here, so it saturated a core before the server did and measured itself.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, base_url: str) -> Connection:
        url = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        return cls(reader, writer, f"{url.hostname}:{url.port}")

    async def send(self, request: dict[str, Any]) -> tuple[float, int, bytes]:
        body = request.get("body", "").encode()
        head = [f"{request['method']} {request['path']} HTTP/1.1", f"Host: {self.host}"]
        head += [f"{k}: {v}" for k, v in (request.get("headers") or {}).items()]
        head.append(f"Content-Length: {len(body)}")
        started = time.perf_counter()
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        if "content-length" not in headers:
            raise RuntimeError(f"a response without Content-Length: {status_line}")
        content = await self.reader.readexactly(int(headers["content-length"]))
        return time.perf_counter() - started, int(status_line.split()[1]), content

    def close(self) -> None:
        self.writer.close()


def _run_id(content: bytes) -> str:
    try:
        body = json.loads(content)
    except ValueError:
        return ""
    return str(body.get("run_id", "")) if isinstance(body, dict) else ""


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    concurrency: int = spec["concurrency"]
    requests: list[dict[str, Any]] = spec["requests"]
    connections = [await Connection.open(spec["base_url"]) for _ in range(concurrency)]
    warm = {"method": "GET", "path": "/healthz"}
    await asyncio.gather(*(c.send(warm) for c in connections))
    queue = iter(requests)
    results: list[tuple[float, int, bytes]] = []

    async def worker(connection: Connection) -> None:
        for request in queue:  # one shared iterator: each request is sent once
            results.append(await connection.send(request))

    started, cpu = time.perf_counter(), time.process_time()
    if spec.get("rate"):
        results = await _paced(connections, requests, float(spec["rate"]), started)
    else:
        await asyncio.gather(*(worker(c) for c in connections))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    for connection in connections:
        connection.close()
    return {
        "wall_s": wall,
        "client_cpu_s": cpu,
        "latencies_s": [r[0] for r in results],
        "statuses": dict(Counter(str(r[1]) for r in results)),
        "run_ids": sorted({run_id for r in results if (run_id := _run_id(r[2]))}),
    }


async def _paced(connections: list[Connection], requests: list[dict[str, Any]], rate: float,
                 started: float) -> list[tuple[float, int, bytes]]:  # fmt: skip
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for connection in connections:
        idle.put_nowait(connection)

    async def one(request: dict[str, Any], due: float) -> tuple[float, int, bytes]:
        connection = await idle.get()
        try:
            _, status, content = await connection.send(request)
        finally:
            idle.put_nowait(connection)
        return time.perf_counter() - due, status, content

    sent = []
    for n, request in enumerate(requests):
        due = started + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        sent.append(asyncio.ensure_future(one(request, due)))
    return list(await asyncio.gather(*sent))


def main() -> None:
    spec = json.load(sys.stdin)
    json.dump(asyncio.run(run(spec)), sys.stdout)


if __name__ == "__main__":
    main()
