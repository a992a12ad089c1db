from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from ratchet.telemetry import JsonlSpanExporter
from ratchet.traces import load_spans, render_tree, span_tree, trace_id_for_run


def test_spans_written_as_jsonl_read_back_as_a_tree(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(path)))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("POST /tasks") as root:
        root.set_attribute("ratchet.run_id", "task-1")
        with (
            tracer.start_as_current_span("RunWorkflow"),
            tracer.start_as_current_span("RunActivity:ratchet.model_turn") as turn,
        ):
            turn.set_attributes({"ratchet.step": "refactor", "ratchet.round": 1})
    with tracer.start_as_current_span("unrelated"):
        pass
    with path.open("a") as f:
        f.write("{truncated\n")  # a line cut short by a crash is skipped
    spans = load_spans(path)
    trace_id = trace_id_for_run(spans, "task-1")
    assert trace_id == format(root.get_span_context().trace_id, "032x")
    tree = span_tree(spans, trace_id)
    assert [(d, s["name"]) for d, s in tree] == [
        (0, "POST /tasks"), (1, "RunWorkflow"), (2, "RunActivity:ratchet.model_turn"),
    ]  # fmt: skip
    line = render_tree(tree).splitlines()[2]
    assert line.startswith("    RunActivity:ratchet.model_turn") and "step refactor #1" in line
    assert trace_id_for_run(spans, "task-2") is None
