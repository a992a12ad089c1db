"""POST /webhooks/sentry without a worker: what is refused before anything starts, and how one
investigation takes a delivery, its redeliveries and its resolution. Payloads are the project's
own (tests/fixtures/sentry); tests/api/routers/test_sentry_webhooks.py runs them to the end."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType

from api.routers.webhooks import RecentDeliveries, _environment
from contracts.runs import EnvironmentSpec
from tests.api.conftest import Gate
from tests.utils.sentry_fixtures import OWN

SIGNATURES: dict[str, Any] = json.loads((OWN / "_signatures.json").read_text())
SECRET: str = SIGNATURES["secret"]
RUN_ID = "sentry-6543210987"
NEEDS_KEY = 'policy "anthropic" needs ANTHROPIC_API_KEY on the server'
ON = {
    "sentry_client_secret": SecretStr(SECRET),
    "sentry_projects": {"billing-api": {"repo": "/srv/billing"}},
}


async def deliver(
    gate: Gate, name: str, body: bytes | AsyncIterator[bytes] | None = None, **headers: str
) -> httpx.Response:
    """A fixture as Sentry sends it, with a fresh Request-ID; `body` replaces (and is sent as
    signed by) the fixture's bytes."""
    sent = dict(SIGNATURES["fixtures"][name]["headers"]) | {"Request-ID": uuid.uuid4().hex}
    content = (OWN / name).read_bytes() if body is None else body
    return await gate.http.post("/webhooks/sentry", content=content, headers=sent | headers)


def signed(raw: bytes) -> dict[str, str]:
    return {"Sentry-Hook-Signature": hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()}


async def in_chunks(raw: bytes, size: int = 512) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def refused(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["detail"]


@pytest.mark.parametrize("gate", [{}], indirect=True)
async def test_without_a_client_secret_webhooks_are_off(gate: Gate) -> None:
    response = await deliver(gate, "issue_created.json")
    assert refused(response) == (
        401, "Sentry webhooks are off: RATCHET_SENTRY_CLIENT_SECRET is unset"
    )  # fmt: skip


@pytest.mark.parametrize("gate", [ON | {"sentry_max_body_bytes": 2048}], indirect=True)
async def test_a_delivery_is_checked_before_it_is_read(gate: Gate) -> None:
    raw = (OWN / "event_alert_triggered.json").read_bytes()
    assert len(raw) > 2048
    over = "body over the 2048-byte limit"
    assert refused(await deliver(gate, "event_alert_triggered.json")) == (413, over)
    streamed = await deliver(gate, "event_alert_triggered.json", in_chunks(raw))
    assert "content-length" not in streamed.request.headers
    assert refused(streamed) == (413, over)
    unnamed = await deliver(gate, "issue_created.json", **{"Sentry-Hook-Resource": ""})
    assert refused(unnamed) == (400, "no Sentry-Hook-Resource header")
    installed = await deliver(gate, "installation_created.json")
    assert (installed.status_code, installed.json()) == (
        202, {"status": "acknowledged", "action": "created"}
    )  # fmt: skip
    assert await gate.started() == 0


@pytest.mark.parametrize(
    ("gate", "name", "change", "answer"),
    [
        (ON | {"sentry_projects": {"shop": {"repo": "/srv/shop"}}}, "issue_created.json", {},
         (422, "Sentry project 'billing-api' is not mapped (RATCHET_SENTRY_PROJECTS)")),
        (ON | {"sentry_projects": {"billing-api": {"repo": "/srv/b", "policy": "anthropic"}}},
         "issue_created.json", {},
         (422, f"RATCHET_SENTRY_PROJECTS: {NEEDS_KEY}")),
        (ON, "issue_created.json", {"action": "assigned"},
         (422, "issue action 'assigned' starts nothing")),
    ],
    indirect=["gate"],
)  # fmt: skip
async def test_a_delivery_that_names_no_work_starts_nothing(
    gate: Gate, name: str, change: dict[str, str], answer: tuple[int, str]
) -> None:
    raw = json.dumps(json.loads((OWN / name).read_bytes()) | change).encode()
    response = await deliver(gate, name, raw, **signed(raw))
    assert refused(response) == answer
    assert await gate.started() == 0


async def signals(gate: Gate) -> int:
    history = await gate.client.get_workflow_handle(RUN_ID).fetch_history()
    signaled = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    return sum(1 for e in history.events if e.event_type == signaled)


@pytest.mark.parametrize("gate", [ON], indirect=True)
async def test_redeliveries_are_answered_as_before_until_the_issue_is_resolved(gate: Gate) -> None:
    nothing = await deliver(gate, "issue_resolved.json")
    assert nothing.json() == {"status": "nothing to cancel", "run_id": RUN_ID}
    first = await deliver(gate, "issue_created.json")
    assert first.status_code == 202, first.text
    assert first.json()["run_id"] == RUN_ID and first.json()["policy"] == "none"
    again = await deliver(gate, "issue_created.json")
    assert again.json() == first.json()
    assert await signals(gate) == 1  # the redelivery added nothing to the run's history
    resolved = await deliver(gate, "issue_resolved.json")
    assert resolved.json() == {"status": "cancelling", "run_id": RUN_ID}
    reopened = await deliver(gate, "issue_created.json")  # forgotten: it reaches the run
    assert reopened.status_code == 202
    assert await signals(gate) == 2
    assert await gate.started(expected=1) == 1


def test_recent_deliveries_expire_are_forgotten_by_run_and_keep_the_newest() -> None:
    recent = RecentDeliveries(ttl_s=0.2, most=10)
    recent.put(("sentry-1", "e1"), {"n": 1})
    recent.put(("sentry-1", "e2"), {"n": 2})
    recent.put(("sentry-2", "e1"), {"n": 3})
    assert recent.get(("sentry-1", "e1")) == {"n": 1}
    recent.forget("sentry-1")
    assert recent.get(("sentry-1", "e1")) is recent.get(("sentry-1", "e2")) is None
    assert recent.get(("sentry-2", "e1")) == {"n": 3}
    for n in range(9):  # ten kept at most: the eleventh put drops the oldest tenth
        recent.put(("sentry-3", f"e{n}"), {"n": n})
    recent.put(("sentry-4", "e"), {"n": 99})
    assert recent.get(("sentry-2", "e1")) is None
    assert recent.get(("sentry-3", "e0")) == {"n": 0}
    time.sleep(0.25)
    assert recent.get(("sentry-4", "e")) is None  # expired


@pytest.mark.parametrize(
    ("configured", "spec"),
    [
        ({"setup": ["pip install -e .", " "], "key_files": ["requirements.txt"]},
         EnvironmentSpec(["pip install -e ."], ["requirements.txt"])),
        ({"setup": ["make deps"]}, EnvironmentSpec(["make deps"], [])),
        ({"setup": ["  "]}, None),
        ({"setup": "make deps"}, None),
        ("make deps", None),
        (None, None),
    ],
)  # fmt: skip
def test_a_mapping_s_environment_is_read_leniently(configured: object, spec: object) -> None:
    assert _environment(configured) == spec
