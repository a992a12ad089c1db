"""One Temporal client per API process, connected on first use so the API starts without it.

While Temporal is down, a failed connection is remembered for a moment: requests in that window
are told at once (503, Retry-After) instead of each waiting out its own connect timeout.
"""

from __future__ import annotations

import asyncio
import time

from opentelemetry.trace import Tracer
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor

from api.deps import TemporalUnavailable
from ratchet.settings import Settings

CONNECT_TIMEOUT_S = 5.0
REMEMBER_FAILURE_S = 2.0


class TemporalConnection:
    def __init__(self, settings: Settings, tracer: Tracer, client: Client | None = None) -> None:
        self.settings = settings
        self.tracer = tracer
        self._client = client
        self._lock = asyncio.Lock()
        self._failed: tuple[float, str] | None = None

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        if self._failed and time.monotonic() - self._failed[0] < REMEMBER_FAILURE_S:
            raise TemporalUnavailable(self._failed[1])
        async with self._lock:
            if self._failed and time.monotonic() - self._failed[0] < REMEMBER_FAILURE_S:
                raise TemporalUnavailable(self._failed[1])
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
                    reason = f"Temporal is not reachable at {self.settings.temporal_target}: {err}"
                    self._failed = (time.monotonic(), reason)
                    raise TemporalUnavailable(reason) from None
                self._failed = None
            return self._client
