"""Ratchet's metrics, on the OpenTelemetry API.

Instruments are made once at import from the global meter provider; each process installs a
real provider at start-up (`install_meter_provider`), and until then (or in a process without
one) they record nothing. Names follow OpenTelemetry's conventions: dotted, with units.
"""

from __future__ import annotations

from opentelemetry import metrics

_meter = metrics.get_meter("ratchet")

RUNS_STARTED = _meter.create_counter(
    "ratchet.runs.started", unit="{run}", description="Runs started, by kind"
)
RUNS_ENDED = _meter.create_counter(
    "ratchet.runs.ended", unit="{run}", description="Runs ended, by kind and outcome"
)
STEP_DURATION = _meter.create_histogram(
    "ratchet.step.duration", unit="s", description="Step (activity) durations, by step and outcome"
)
GATE_OUTCOMES = _meter.create_counter(
    "ratchet.gate.outcomes", unit="{gate}", description="Gate results, by gate and outcome"
)
MODEL_TOKENS = _meter.create_counter(
    "gen_ai.client.token.usage", unit="{token}", description="Model tokens, by model and type"
)
MODEL_COST = _meter.create_counter(
    "ratchet.model.cost", unit="USD", description="Model spend, by model"
)
SANDBOX_KILLS = _meter.create_counter(
    "ratchet.sandbox.kills", unit="{process}", description="Sandboxed processes killed, by reason"
)
WEBHOOK_DELIVERIES = _meter.create_counter(
    "ratchet.webhook.deliveries", unit="{delivery}", description="Webhook deliveries, by result"
)
