"""What every activity shares (activities/common.py): the run's workspaces, reused from step to
step and attempt to attempt but always clean; the run id and a model call's usage on the step's
span (OpenTelemetry's gen_ai attributes and OpenInference's)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from contracts.runs import PolicyChoice
from contracts.steps import PlanInput
from contracts.steps import TestInput as StepInput
from ratchet.telemetry import RUN_ID_ATTRIBUTE
from tests.activities.conftest import World
from tests.utils.fake_anthropic import FakeMessagesApi, text_message
from tests.utils.repos import PY_REPO, make_repo

LEAVES_A_FILE = PY_REPO | {
    "tests/test_once.py": "import os\n\n\ndef test_once():\n"
    "    assert not os.path.exists('leftover'), 'an earlier attempt left this behind'\n"
    "    open('leftover', 'w').close()\n",
}


async def test_a_step_tried_again_finds_its_workspace_as_the_snapshot_has_it(
    make_world: Callable[..., World], tmp_path: Path
) -> None:
    world = make_world(flaky_reruns=0)
    run = await world.prepare(make_repo(tmp_path / "calc", LEAVES_A_FILE))
    arg = StepInput(run, run.base_sha, "python -m pytest -q", 60, "baseline")
    first = await world.run(world.tests.run_tests, arg)
    workspace = world.settings.home / "workspaces" / run.run_id / "tests"
    assert first.passed and (workspace / "leftover").exists()  # the suite wrote it there
    again = await world.run(world.tests.run_tests, arg)  # a retry, or the next round's test step
    assert again.passed, again.summary


async def test_a_model_call_is_recorded_on_the_steps_span(
    make_world: Callable[..., World], tmp_path: Path, anthropic_fake: FakeMessagesApi,
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter,
) -> None:  # fmt: skip
    usage = {"input_tokens": 300, "output_tokens": 40, "cache_read_input_tokens": 1000,
             "cache_creation_input_tokens": 0}  # fmt: skip
    anthropic_fake.answers = [text_message("1. add mul", usage)]
    world = make_world(anthropic_api_key=SecretStr("sk-test"))
    run = await world.prepare(make_repo(tmp_path / "calc", PY_REPO))
    with tracer_provider.get_tracer("tests").start_as_current_span("RunActivity:plan") as span:
        out = await world.run(
            world.forward.plan, PlanInput(run, "add mul", PolicyChoice("anthropic"))
        )
    (finished,) = [s for s in span_exporter.get_finished_spans()
                   if s.context.span_id == span.get_span_context().span_id]  # fmt: skip
    attrs = dict(finished.attributes or {})
    requested = anthropic_fake.requests[0]["body"]["model"]
    assert attrs[RUN_ID_ATTRIBUTE] == run.run_id
    assert (attrs["gen_ai.system"], attrs["gen_ai.request.model"]) == ("anthropic", requested)
    assert attrs["gen_ai.response.model"] == "claude-fake"  # the model that answered
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (300, 40)
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 1000
    assert attrs["llm.token_count.prompt"] == 1300 and attrs["llm.token_count.total"] == 1340
    assert attrs["ratchet.cost_usd"] == out.usage.cost_usd > 0
    assert attrs["ratchet.price_known"] is True
