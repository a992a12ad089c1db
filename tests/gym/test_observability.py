"""Spans emitted by a repository's own tests reach a collector inside the sandbox."""

from __future__ import annotations

from pathlib import Path

from gym.gates import observability_gate
from gym.runner import Limits
from gym.sandbox import BwrapSandbox
from gym.testing import run_tests
from tests.utils.repos import make_repo

INSTRUMENTED = {
    "pyproject.toml": '[project]\nname = "shop"\nversion = "0"\n',
    "tests/test_shop.py": (
        "from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n\n\n"
        "def test_checkout():\n"
        "    provider = TracerProvider()\n"
        "    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))\n"
        "    tracer = provider.get_tracer('shop')\n"
        "    with tracer.start_as_current_span('checkout'):\n"
        "        with tracer.start_as_current_span('charge-card'):\n"
        "            pass\n"
        "    provider.shutdown()\n"
    ),
}


async def test_spans_from_the_tests_are_collected_in_the_sandbox(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "shop", INSTRUMENTED)
    run = await run_tests(
        "python -m pytest -q", repo, limits=Limits(timeout_s=60), sandbox=BwrapSandbox(),
        collect_spans=True,
    )  # fmt: skip
    assert run.passed, run.result.output.decode()
    assert run.spans is not None
    names = {s["name"] for s in run.spans}
    assert names == {"checkout", "charge-card"}
    child = next(s for s in run.spans if s["name"] == "charge-card")
    parent = next(s for s in run.spans if s["name"] == "checkout")
    assert child["parent_span_id"] == parent["span_id"] and child["trace_id"] == parent["trace_id"]


async def test_without_collection_there_are_no_spans(tmp_path: Path) -> None:
    run = await run_tests("true", tmp_path, limits=Limits(timeout_s=60))
    assert run.spans is None


def test_observability_gate() -> None:
    assert observability_gate((), None).passed
    assert observability_gate(("checkout",), ["checkout", "x"]).passed
    missing = observability_gate(("checkout", "refund"), ["checkout"])
    assert not missing.passed and "refund" in missing.detail and "checkout," not in missing.detail
    assert not observability_gate(("checkout",), None).passed
