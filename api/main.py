"""Builds the app: routers, auth, limits, tracing and error shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from temporalio.client import Client
from temporalio.service import RPCError

from api.deps import TemporalUnavailable
from api.limits import BodySizeLimit
from api.routers import (
    control,
    drift,
    health,
    investigations,
    listing,
    repos,
    runs,
    tasks,
    webhooks,
)
from api.routers.webhooks import RecentDeliveries
from api.temporal import TemporalConnection
from ratchet.artifacts import ArtifactStore
from ratchet.settings import Settings, load_settings
from ratchet.stores import artifact_store
from ratchet.telemetry import install

MAX_BODY_BYTES = 2 * 1024 * 1024


def create_app(
    settings: Settings | None = None,
    *,
    client: Client | None = None,
    tracer_provider: TracerProvider | None = None,
    store: ArtifactStore | None = None,
) -> FastAPI:
    settings = settings or load_settings()
    owns_provider = tracer_provider is None
    meters: MeterProvider | None = None
    if tracer_provider is None:
        # A process of its own (uvicorn's factory): install telemetry for the whole process.
        tracer_provider, meters = install(settings, "ratchet-api")
    provider = tracer_provider

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_provider:
            provider.shutdown()
        if meters is not None:
            meters.shutdown()

    app = FastAPI(title="Ratchet", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.recent_sentry = RecentDeliveries()
    app.state.store = store or artifact_store(settings)
    app.state.temporal = TemporalConnection(settings, provider.get_tracer("ratchet.api"), client)
    _ = settings.token  # make or read the token now, not on the first request

    for module in (health, tasks, listing, runs, control, investigations, webhooks, drift, repos):
        app.include_router(module.router)
    _error_answers(app)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls="healthz,readyz",
        exclude_spans=["receive", "send"],
    )
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    return app


def _error_answers(app: FastAPI) -> None:
    """What a caller gets when Temporal is away or the request is invalid: a status and a
    message, never a stack trace."""

    @app.exception_handler(TemporalUnavailable)
    async def _unavailable(_: Request, err: TemporalUnavailable) -> JSONResponse:
        # Retry-After: the caller is told to send the same request again; nothing is lost.
        return JSONResponse(
            status_code=503, content={"detail": f"{err}; nothing was started"},
            headers={"Retry-After": "5"},
        )  # fmt: skip

    @app.exception_handler(RPCError)
    async def _rpc(_: Request, err: RPCError) -> JSONResponse:
        return JSONResponse(
            status_code=503, content={"detail": f"Temporal error: {err.message}"},
            headers={"Retry-After": "5"},
        )  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = []
        for e in err.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return JSONResponse(status_code=422, content={"detail": "; ".join(problems)})
