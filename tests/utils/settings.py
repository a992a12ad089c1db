"""Settings for a test or a benchmark: a home of its own, a fresh task queue, a known token, no
model key, spans to $home/traces.jsonl only, the default sandbox."""

from __future__ import annotations

import uuid
from pathlib import Path

from pydantic import SecretStr

from ratchet.settings import Settings

TOKEN = "test-token-0123456789"


def make_settings(
    home: Path, temporal_target: str, *, queue_prefix: str = "tq", **overrides: object
) -> Settings:
    values: dict[str, object] = {
        "home": home,
        "temporal_address": temporal_target,
        "task_queue": f"{queue_prefix}-{uuid.uuid4()}",
        "api_token": SecretStr(TOKEN),
        "anthropic_api_key": None,
        "otlp_endpoint": None,
        "heartbeat_timeout_s": 10.0,
        "test_timeout_s": 60.0,
        "max_repair_rounds": 2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
