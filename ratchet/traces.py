"""Read a run's spans back from $RATCHET_HOME/traces.jsonl and print them as a tree."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ratchet.jsonl import read_jsonl
from ratchet.telemetry import RUN_ID_ATTRIBUTE

Span = dict[str, Any]


def load_spans(path: Path) -> list[Span]:
    return read_jsonl(path)


def trace_id_for_run(spans: list[Span], run_id: str) -> str | None:
    """The trace a run belongs to: the one whose spans carry its run id (API and activities
    set ratchet.run_id; Temporal's own spans carry temporalWorkflowID)."""
    best: dict[str, int] = defaultdict(int)
    for span in spans:
        attrs = span.get("attributes", {})
        if run_id in (attrs.get(RUN_ID_ATTRIBUTE), attrs.get("temporalWorkflowID")):
            best[span["trace_id"]] += 1
    return max(best, key=lambda t: best[t]) if best else None


def span_tree(spans: list[Span], trace_id: str) -> list[tuple[int, Span]]:
    """Depth-first (depth, span) pairs of one trace, children ordered by start time."""
    mine = [s for s in spans if s.get("trace_id") == trace_id]
    ids = {s["span_id"] for s in mine}
    children: dict[str | None, list[Span]] = defaultdict(list)
    for span in mine:
        parent = span.get("parent_span_id")
        children[parent if parent in ids else None].append(span)
    out: list[tuple[int, Span]] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.get("start_ns") or 0):
            out.append((depth, span))
            walk(span["span_id"], depth + 1)

    walk(None, 0)
    return out


def duration_ms(span: Span) -> float:
    start, end = span.get("start_ns") or 0, span.get("end_ns") or 0
    return max(end - start, 0) / 1e6


def render_tree(tree: list[tuple[int, Span]]) -> str:
    lines = []
    for depth, span in tree:
        status = "" if span.get("status") in ("UNSET", "OK") else f"  [{span.get('status')}]"
        service = span.get("service") or "?"
        lines.append(
            f"{'  ' * depth}{span['name']}  {duration_ms(span):.1f} ms  ({service}){status}"
            + _notes(span.get("attributes") or {})
        )
    return "\n".join(lines)


def _notes(attrs: dict[str, Any]) -> str:
    """What a reader looks for on a span: retries, model use, exit codes, foreign spans."""
    notes = []
    if step := attrs.get("ratchet.step"):
        notes.append(f"step {step}" + (f" #{attrs['ratchet.round']}" if "ratchet.round" in attrs
                                       else ""))  # fmt: skip
    if (attempt := attrs.get("temporal.activity.attempt")) and attempt > 1:
        notes.append(f"attempt {attempt}")
    if model := attrs.get("gen_ai.response.model"):
        tokens = sum(int(attrs.get(f"gen_ai.usage.{k}") or 0) for k in (
            "input_tokens", "output_tokens", "cache_creation.input_tokens",
            "cache_read.input_tokens"))  # fmt: skip
        notes.append(f"{model}, {tokens} tokens, ${float(attrs.get('ratchet.cost_usd') or 0):.4f}")
    if "process.exit_code" in attrs:
        killed = attrs.get("ratchet.killed_by") or []
        notes.append(f"exit {attrs['process.exit_code']}"
                     + (f", killed by {', '.join(killed)}" if killed else ""))  # fmt: skip
    if attrs.get("ratchet.source") == "repository-tests":
        notes.append("from the repository's tests")
    return f"  - {'; '.join(notes)}" if notes else ""
