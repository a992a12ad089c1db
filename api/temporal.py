"""One Temporal client per API process, connected on first use so the API starts without it."""

from __future__ import annotations

import asyncio

from opentelemetry.trace import Tracer
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

from api.deps import TemporalUnavailable
from ratchet.settings import Settings

CONNECT_TIMEOUT_S = 5.0


class TemporalConnection:
    def __init__(self, settings: Settings, tracer: Tracer, client: Client | None = None) -> None:
        self.settings = settings
        self.tracer = tracer
        self._client = client
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        Client.connect(
                            self.settings.temporal_target,
                            namespace=self.settings.namespace,
                            interceptors=[TracingInterceptor(self.tracer)],
                        ),
                        timeout=CONNECT_TIMEOUT_S,
                    )
                except (TimeoutError, RuntimeError, OSError) as err:
                    raise TemporalUnavailable(
                        f"Temporal is not reachable at {self.settings.temporal_target}: {err}"
                    ) from None
            return self._client
