"""Sentry integration-platform webhooks: verify the signature over the raw body, then read what
Ratchet needs from the payload. Everything read is data, truncated and never trusted as a path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from contracts.sentry import Frame, SentryEvent
from gym.tracebacks import parse_traceback

MAX_FRAMES = 50
MAX_TEXT = 2000
MAX_VARS = 20
_ISSUE_ID = re.compile(r"^\d{1,20}$")
_PROJECT_IN_URL = re.compile(r"/projects/[^/]+/([^/]+)/")


class WebhookRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def verify_signature(raw: bytes, signature: str | None, secret: str) -> None:
    if not signature:
        raise WebhookRefused(
            401, "unsigned webhook: send Sentry-Hook-Signature (the legacy webhooks plugin is "
            "refused; use an integration-platform app)",
        )  # fmt: skip
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise WebhookRefused(401, "bad Sentry-Hook-Signature: not signed with this client secret")


def _obj(value: object, key: str) -> dict[str, Any]:
    inner = value.get(key) if isinstance(value, dict) else None
    return inner if isinstance(inner, dict) else {}


def _text(value: object, limit: int = MAX_TEXT) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _lines(value: object, most: int = 10) -> list[str]:
    return [_text(v, 300) for v in value[-most:] if isinstance(v, str)] if isinstance(
        value, list) else []  # fmt: skip


def _vars(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {
        _text(k, 100): _short(v) for k, v in list(value.items())[:MAX_VARS] if isinstance(k, str)
    }


def _short(value: object, limit: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:limit]


def _frames(event: dict[str, Any]) -> list[Frame]:
    values = _obj(event, "exception").get("values") or []
    if not isinstance(values, list) or not values or not isinstance(values[-1], dict):
        return []
    frames = ((values[-1].get("stacktrace") or {}).get("frames")) or []
    out = []
    for raw in frames[-MAX_FRAMES:] if isinstance(frames, list) else []:
        if not isinstance(raw, dict):
            continue
        lineno = raw.get("lineno")
        out.append(Frame(
            filename=_text(raw.get("filename"), 500), abs_path=_text(raw.get("abs_path"), 500),
            function=_text(raw.get("function"), 200),
            lineno=lineno if isinstance(lineno, int) else None,
            in_app=raw.get("in_app") is True, context_line=_text(raw.get("context_line"), 500),
            pre_context=_lines(raw.get("pre_context")),
            post_context=_lines(raw.get("post_context"))[:10], vars=_vars(raw.get("vars")),
        ))  # fmt: skip
    return out


def _tags(value: object) -> dict[str, str]:
    """Sentry sends tags as [[key, value], ...] or [{"key", "value"}, ...] (or a dict)."""
    pairs: list[tuple[object, object]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        for tag in value:
            if isinstance(tag, list | tuple) and len(tag) == 2:
                pairs.append((tag[0], tag[1]))
            elif isinstance(tag, dict):
                pairs.append((tag.get("key"), tag.get("value")))
    return {_text(k, 100): _short(v, 200) for k, v in pairs[:50] if isinstance(k, str)}


def event_from(event: dict[str, Any], issue_id: str = "") -> SentryEvent:
    """An event in Sentry's shape (from a webhook or POST /investigations) as data."""
    return _from_event("error", "created", {"issue_id": issue_id, **event}).event or SentryEvent("")


def event_from_traceback(text: str) -> SentryEvent | None:
    """A Python traceback as printed, as an event: its last exception and its frames (in the
    application unless they are in an installed package or the interpreter)."""
    parsed = parse_traceback(text)
    if parsed is None:
        return None
    frames = [
        Frame(filename=f.filename[:500], abs_path=f.filename[:500], function=f.function[:200],
              lineno=f.lineno, in_app=_in_app(f.filename), context_line=f.line[:500])
        for f in parsed.frames[-MAX_FRAMES:]
    ]  # fmt: skip
    return SentryEvent(
        issue_id="", title=f"{parsed.exception_type}: {parsed.exception_value}"[:MAX_TEXT],
        exception_type=parsed.exception_type[:200],
        exception_value=parsed.exception_value[:MAX_TEXT], frames=frames,
    )  # fmt: skip


def _in_app(filename: str) -> bool:
    outside = ("site-packages", "dist-packages", "/lib/python", "<")
    return not any(part in filename for part in outside)


@dataclass(frozen=True)
class Delivery:
    resource: str
    action: str
    event: SentryEvent | None
    """None for resources that start nothing (installation, issue resolved/ignored)."""
    issue_id: str
    project: str


def parse(resource: str, raw: bytes) -> Delivery:
    try:
        body = json.loads(raw)
    except ValueError:
        raise WebhookRefused(400, "the body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise WebhookRefused(400, "not a Sentry webhook: no data object")
    action, data = _text(body.get("action"), 50), body["data"]
    if resource == "installation":
        return Delivery(resource, action, None, "", "")
    if resource == "issue":
        issue = _obj(data, "issue")
        project = _obj(issue, "project")
        issue_id = str(issue.get("id") or "")
        slug = _text(project.get("slug"), 200) or str(project.get("id") or "")
        metadata = _obj(issue, "metadata")
        event = SentryEvent(
            issue_id=issue_id, project=slug, title=_text(issue.get("title")),
            culprit=_text(issue.get("culprit")), exception_type=_text(metadata.get("type"), 200),
            exception_value=_text(metadata.get("value")), web_url=_text(issue.get("web_url"), 500),
            frames=[Frame(filename=_text(metadata.get("filename"), 500),
                          function=_text(metadata.get("function"), 200), in_app=True)]
            if metadata.get("filename") else [],
        )  # fmt: skip
        return _checked(Delivery(resource, action, event, issue_id, slug))
    if resource in ("event_alert", "error"):
        raw_event = data.get("event" if resource == "event_alert" else "error")
        if not isinstance(raw_event, dict):
            raise WebhookRefused(400, f"{resource} webhook without its event")
        return _checked(_from_event(resource, action, raw_event))
    raise WebhookRefused(422, f"unsupported Sentry-Hook-Resource {resource[:50]!r}")


def _from_event(resource: str, action: str, event: dict[str, Any]) -> Delivery:
    issue_id = str(event.get("issue_id") or event.get("group_id") or "")
    match = _PROJECT_IN_URL.search(_text(event.get("url"), 500))
    project = match.group(1) if match else str(event.get("project") or "")
    values = _obj(event, "exception").get("values") or [{}]
    last = (
        values[-1] if isinstance(values, list) and values and isinstance(values[-1], dict) else {}
    )
    trace = _obj(_obj(event, "contexts"), "trace")
    parsed = SentryEvent(
        issue_id=issue_id, event_id=_text(event.get("event_id"), 64), project=project,
        title=_text(event.get("title")), culprit=_text(event.get("culprit")),
        release=_text(event.get("release"), 200), exception_type=_text(last.get("type"), 200),
        exception_value=_text(last.get("value")), frames=_frames(event),
        trace_id=_text(trace.get("trace_id"), 32),
        span_id=_text(trace.get("span_id"), 16),
        web_url=_text(event.get("web_url"), 500),
        environment=_text(event.get("environment"), 200), tags=_tags(event.get("tags")),
    )  # fmt: skip
    return Delivery(resource, action, parsed, issue_id, project)


def _checked(delivery: Delivery) -> Delivery:
    if not _ISSUE_ID.match(delivery.issue_id):
        raise WebhookRefused(422, "the payload has no numeric issue id")
    return delivery
