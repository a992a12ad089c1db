"""The API under load while Temporal is down: /healthz stays up, writes answer 503 at once with
the reason and Retry-After, and once Temporal is back the same requests all start their runs."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
from opentelemetry.sdk.trace import TracerProvider

from api.main import create_app
from tests.conftest import TOKEN, free_port, make_settings, serve_app
from tests.faults.harness import connect, start_dev_server
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import FIX_MUL, write_script

CALLERS = 60


def _p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def _timed(call: asyncio.Future[httpx.Response] | object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await call  # type: ignore[misc]
    return response, time.monotonic() - started


async def _as_told(api: httpx.AsyncClient, body: dict[str, object]) -> httpx.Response:
    """POST /tasks the way a caller told to retry does: after Retry-After, a few times (the
    API remembers a failed connect for a moment, and a loaded machine stretches it)."""
    for _ in range(5):
        response = await api.post("/tasks", json=body)
        if response.status_code != 503:
            return response
        await asyncio.sleep(float(response.headers["retry-after"]))
    return response


async def test_writes_are_refused_quickly_and_nothing_is_lost_when_temporal_returns(
    tmp_path: Path, tracer_provider: TracerProvider
) -> None:
    ports = (free_port(), free_port(), free_port())
    target = f"127.0.0.1:{ports[0]}"
    settings = make_settings(tmp_path / "home", target)
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "s.toml", [FIX_MUL])
    bodies = [
        {"repo": str(repo), "goal": f"change {i}", "policy": "scripted",
         "policy_script": str(script)}
        for i in range(CALLERS)
    ]  # fmt: skip
    app = create_app(settings, tracer_provider=tracer_provider)  # no client: Temporal is down
    server = None
    async with (
        serve_app(app) as base,
        httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
        ) as api,
    ):
        writes = [_timed(api.post("/tasks", json=b)) for b in bodies]
        health = [_timed(api.get("/healthz")) for _ in range(CALLERS)]
        answered = await asyncio.gather(*writes, *health)
        refused, alive = answered[:CALLERS], answered[CALLERS:]

        took = sorted(t for _, t in refused)
        print(f"healthz p99 {_p99([t for _, t in alive]):.3f}s; 503s median "
              f"{took[CALLERS // 2]:.3f}s, p99 {_p99(took):.3f}s")  # fmt: skip
        assert all(r.status_code == 200 for r, _ in alive)
        assert _p99([t for _, t in alive]) < 2.0
        for response, _ in refused:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
            detail = response.json()["detail"]
            assert f"Temporal is not reachable at {target}" in detail
            assert "nothing was started" in detail
        # The first caller waits for the connection to fail; the others share that one attempt
        # or are told at once: none waits for an attempt of its own after it. (Measured against
        # the first answer, not the clock: a loaded machine takes longer to fail a connect.)
        assert _p99([t for _, t in refused]) < 6.0
        assert took[CALLERS // 2] - took[0] < 0.5, took
        ready = await api.get("/readyz")
        assert ready.status_code == 503

        # Temporal comes back: the callers retry as told, and every run is started, once.
        server = start_dev_server(tmp_path / "temporal.db", ports, tmp_path / "temporal.log")
        try:
            client = await connect(target)
            retried = await asyncio.gather(*(_as_told(api, b) for b in bodies))
            assert all(r.status_code == 202 for r in retried), [r.text for r in retried][:3]
            run_ids = {r.json()["run_id"] for r in retried}
            assert len(run_ids) == CALLERS
            for run_id in run_ids:  # each exists in Temporal (visibility lags; describe does not)
                described = await client.get_workflow_handle(run_id).describe()
                assert described.workflow_type == "ForwardPlanningWorkflow"
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
