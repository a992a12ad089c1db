"""The contracts of Sentry's events (stdlib only): what Ratchet keeps of one, and the signals
that bring a repeat or a resolution of its issue to the investigation it started."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Frame:
    filename: str
    abs_path: str = ""
    function: str = ""
    lineno: int | None = None
    in_app: bool = False
    context_line: str = ""
    pre_context: list[str] = field(default_factory=list)
    post_context: list[str] = field(default_factory=list)
    vars: dict[str, str] = field(default_factory=dict)
    """Local variables as the event reported them (each value as short text)."""


@dataclass(frozen=True)
class SentryEvent:
    """What Ratchet keeps of a Sentry event: data to reason about, never instructions."""

    issue_id: str
    event_id: str = ""
    project: str = ""
    title: str = ""
    culprit: str = ""
    release: str = ""
    exception_type: str = ""
    exception_value: str = ""
    frames: list[Frame] = field(default_factory=list)
    trace_id: str = ""
    span_id: str = ""
    web_url: str = ""
    environment: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventSignal:
    """A delivery of the issue to its investigation: the event's id is all a repeat adds (the
    event itself travels once, in the input of the run it starts)."""

    event: SentryEvent | None = None
    """Only in signals recorded before the id alone was sent."""
    event_id: str = ""

    def id(self) -> str:
        return self.event_id or (self.event.event_id if self.event else "")


@dataclass(frozen=True)
class ResolveSignal:
    reason: str = ""
