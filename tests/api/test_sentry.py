"""Reading Sentry webhooks: the signature is checked over the raw bytes, then only what Ratchet
needs is read from the payload, bounded. Payloads are the project's own (tests/fixtures/sentry).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import traceback
from typing import Any

import pytest

from api.sentry import (
    MAX_FRAMES,
    MAX_TEXT,
    MAX_VARS,
    WebhookRefused,
    event_from,
    event_from_traceback,
    parse,
    verify_signature,
)
from contracts.sentry import Frame
from tests.utils.sentry_fixtures import OWN

SIGNATURES: dict[str, Any] = json.loads((OWN / "_signatures.json").read_text())
SECRET: str = SIGNATURES["secret"]
SIGNED = [
    name for name, entry in SIGNATURES["fixtures"].items()
    if "Sentry-Hook-Signature" in entry["headers"] and (OWN / name).is_file()
]  # fmt: skip


def payload(name: str) -> bytes:
    return (OWN / name).read_bytes()


def header(name: str, key: str) -> str:
    value: str = SIGNATURES["fixtures"][name]["headers"][key]
    return value


def sign(raw: bytes) -> str:
    return hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()


def refusal(status: int, call: Any, *args: Any) -> str:
    with pytest.raises(WebhookRefused) as refused:
        call(*args)
    assert refused.value.status == status
    return str(refused.value)


@pytest.mark.parametrize("name", [n for n in SIGNED if n != "event_alert_tampered.json"])
def test_every_signed_fixture_verifies_over_its_raw_bytes_only(name: str) -> None:
    raw, signature = payload(name), header(name, "Sentry-Hook-Signature")
    verify_signature(raw, signature, SECRET)
    verify_signature(raw, f" {signature.upper()} ", SECRET)  # hex, however it is written
    reserialized = json.dumps(json.loads(raw)).encode()
    assert "not signed with this client secret" in refusal(
        401, verify_signature, reserialized, signature, SECRET
    )
    assert "not signed" in refusal(401, verify_signature, raw, signature, "another-secret")


def test_the_tampered_and_the_unsigned_fixtures_are_refused() -> None:
    name = "event_alert_tampered.json"
    signature = header(name, "Sentry-Hook-Signature")
    assert "bad Sentry-Hook-Signature" in refusal(
        401, verify_signature, payload(name), signature, SECRET
    )
    unsigned = refusal(401, verify_signature, payload("legacy_webhooks_plugin.json"), None, SECRET)
    assert "unsigned webhook" in unsigned and "legacy webhooks plugin" in unsigned


def test_an_issue_webhook_is_read_from_its_issue_and_metadata() -> None:
    delivery = parse("issue", payload("issue_created.json"))
    assert (delivery.resource, delivery.action) == ("issue", "created")
    assert (delivery.issue_id, delivery.project) == ("6543210987", "billing-api")
    event = delivery.event
    assert event is not None
    assert (event.exception_type, event.exception_value) == (
        "ZeroDivisionError",
        "division by zero",
    )
    assert event.web_url == "https://sentry.io/organizations/acme/issues/6543210987/"
    assert event.frames == [
        Frame(filename="app/billing/totals.py", function="compute_total", in_app=True)
    ]


def test_an_event_alert_is_read_with_frames_trace_and_tags() -> None:
    delivery = parse("event_alert", payload("event_alert_triggered.json"))
    event = delivery.event
    assert event is not None
    assert delivery.project == "billing-api"  # from the event's URL, not its numeric project
    assert event.event_id == "9c1f8d3e2b7a4e0f8a6b5c4d3e2f1a0b"
    assert event.release == "billing-api@2.14.3+9f3c2ab"
    assert event.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event.span_id == "00f067aa0ba902b7"
    # Oldest first: the crashing frame is the last.
    assert [(f.function, f.lineno, f.in_app) for f in event.frames] == [
        ("run_endpoint_function", 212, False),
        ("get_invoice", 48, True),
        ("compute_total", 17, True),
    ]
    assert event.frames[-1].vars == {"lines": "[]"}
    assert event.frames[0].vars == {}  # null in the payload
    assert event.tags["environment"] == "production"
    assert event.tags["transaction"] == "/invoices/{invoice_id}"
    # The error resource carries the same event under data.error.
    assert parse("error", payload("error_created.json")).event == event


def test_an_installation_starts_nothing() -> None:
    delivery = parse("installation", payload("installation_created.json"))
    assert (delivery.action, delivery.event, delivery.issue_id) == ("created", None, "")


@pytest.mark.parametrize(
    ("resource", "raw", "status", "message"),
    [
        ("issue", b"{not json", 400, "the body is not JSON"),
        ("issue", b'{"action": "created"}', 400, "not a Sentry webhook: no data object"),
        ("comment", b'{"data": {}}', 422, "unsupported Sentry-Hook-Resource 'comment'"),
        ("event_alert", b'{"data": {"event": []}}', 400, "event_alert webhook without its event"),
        (
            "error",
            b'{"data": {"error": {"issue_id": "../x"}}}',
            422,
            "the payload has no numeric issue id",
        ),
        (
            "issue",
            b'{"data": {"issue": {"id": "12; rm"}}}',
            422,
            "the payload has no numeric issue id",
        ),
    ],
)
def test_a_payload_without_what_ratchet_needs_is_refused(
    resource: str, raw: bytes, status: int, message: str
) -> None:
    assert refusal(status, parse, resource, raw) == message


def test_what_is_read_from_an_event_is_bounded() -> None:
    frames = [{"filename": f"app/f{i}.py", "lineno": i, "vars": {f"v{j}": j for j in range(30)}}
              for i in range(MAX_FRAMES + 10)] + ["not a frame"]  # fmt: skip
    event = event_from({
        "title": "T" * (MAX_TEXT + 5),
        "exception": {"values": [{"stacktrace": {"frames": frames}}]},
        "tags": [{"key": "k", "value": {"nested": True}}, ["pair", "v"], "junk"],
    }, issue_id="42")  # fmt: skip
    assert (event.issue_id, len(event.title)) == ("42", MAX_TEXT)
    assert len(event.frames) == MAX_FRAMES - 1  # the last fifty, of which one is not a frame
    assert event.frames[-1].filename == f"app/f{MAX_FRAMES + 9}.py"
    assert len(event.frames[0].vars) == MAX_VARS and event.frames[0].vars["v1"] == "1"
    assert event.tags == {"k": '{"nested": true}', "pair": "v"}


def test_a_printed_traceback_becomes_an_event_with_the_application_s_frames() -> None:
    try:
        json.loads("{")
    except ValueError:
        text = traceback.format_exc()
    event = event_from_traceback(text)
    assert event is not None
    assert event.exception_type == "json.decoder.JSONDecodeError"
    assert event.title == f"{event.exception_type}: {event.exception_value}"
    assert event.exception_value.startswith("Expecting property name")
    ours, *library = event.frames
    this_test = test_a_printed_traceback_becomes_an_event_with_the_application_s_frames.__name__
    assert (ours.filename, ours.function, ours.in_app) == (__file__, this_test, True)
    assert library and not any(f.in_app for f in library)  # the interpreter's json package
    assert ours.context_line == 'json.loads("{")'
    assert event_from_traceback("ValueError: no traceback above me") is None
