"""Starting runs: the policy a request may use, the run ids minted, the 202 answer, and the starts
themselves on a real Temporal server (an investigation joined by a repeat of its event)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import HTTPException
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType

from api.deps import check_run_id
from api.starting import accepted, choose_policy, new_run_id, run_queues, start_investigation
from contracts.investigation import InvestigationInput
from contracts.runs import RUN_PREFIXES, PolicyChoice
from contracts.sentry import SentryEvent
from ratchet import search_keys as search
from ratchet.artifacts import FilesystemArtifactStore
from ratchet.settings import Settings
from ratchet.telemetry import RUN_ID_ATTRIBUTE
from tests.api.conftest import Gate
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import ADD_MUL_WRONG, write_script
from tests.utils.settings import make_settings

NO_TEMPORAL = "127.0.0.1:1"
KEY = SecretStr("sk-ant-test-0123456789")
ONLY_SCRIPTED = 'policy_script is only for "policy": "scripted"'


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return make_settings(tmp_path / "home", NO_TEMPORAL, **overrides)


def stored(settings: Settings) -> list[Path]:
    return [p for p in settings.artifacts_dir.rglob("*") if p.is_file()]


def refused(status: int, name: str | None, script: str | None, settings: Settings) -> str:
    with pytest.raises(HTTPException) as err:
        choose_policy(name, script, settings, FilesystemArtifactStore(settings.artifacts_dir))
    assert err.value.status_code == status
    assert stored(settings) == []  # a refused choice stores nothing
    return str(err.value.detail)


def test_a_model_policy_needs_its_server_configuration(tmp_path: Path) -> None:
    bare = settings(tmp_path)
    assert "no policy chosen and ANTHROPIC_API_KEY is not set" in refused(422, None, None, bare)
    assert 'policy "anthropic" needs ANTHROPIC_API_KEY' in refused(422, "anthropic", None, bare)
    assert "needs RATCHET_OPENAI_BASE_URL" in refused(422, "openai-compatible", None, bare)
    configured = settings(tmp_path, anthropic_api_key=KEY, openai_base_url="http://127.0.0.1:9/v1")
    store = FilesystemArtifactStore(configured.artifacts_dir)
    assert choose_policy(None, None, configured, store) == PolicyChoice("anthropic")
    assert choose_policy("anthropic", None, configured, store) == PolicyChoice("anthropic")
    assert choose_policy("openai-compatible", None, configured, store) == PolicyChoice(
        "openai-compatible"
    )
    for name in ("anthropic", "openai-compatible"):
        assert refused(422, name, "/srv/script.toml", configured) == ONLY_SCRIPTED


def test_the_scripted_policy_needs_a_readable_valid_script_and_stores_it(tmp_path: Path) -> None:
    small = settings(tmp_path, max_script_bytes=200)
    assert '"policy_script": "<path to script>"' in refused(422, "scripted", None, small)
    for where in ("script.toml", str(tmp_path)):  # relative; a directory
        detail = refused(422, "scripted", where, small)
        assert detail == f"policy_script must be an absolute path to a file: {where}"
    big = write_script(tmp_path / "big.toml", [ADD_MUL_WRONG])
    assert refused(413, "scripted", str(big), small) == "policy_script is over 200 bytes"
    invalid = tmp_path / "invalid.toml"
    invalid.write_text("plan = 'no patches'\n")
    assert "[[patch]]" in refused(422, "scripted", str(invalid), small)
    roomy = settings(tmp_path)
    store = FilesystemArtifactStore(roomy.artifacts_dir)
    choice = choose_policy("scripted", str(big), roomy, store)
    assert choice.name == "scripted" and choice.script_ref is not None
    assert store.get_text(choice.script_ref) == big.read_text()


def test_run_ids_are_minted_per_kind_and_tagged_on_the_request_s_span(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("request") as span:
        minted = {kind: new_run_id(kind) for kind in RUN_PREFIXES}
        answer = accepted(settings(tmp_path), minted["task"], "", "scripted", "task-x@base")
    for kind, run_id in minted.items():
        assert re.fullmatch(rf"{RUN_PREFIXES[kind]}-[0-9a-f]{{12}}", run_id), run_id
        assert check_run_id(run_id) == run_id  # every id minted is one a URL may name
    assert len(set(minted.values())) == len(minted)
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes is not None
    assert finished.attributes[RUN_ID_ATTRIBUTE] == minted["drift"]  # the last one minted
    # The 202 answer: the run id is the workflow id; no trace id given, the request's is used.
    assert answer.workflow_id == answer.run_id == minted["task"]
    assert answer.status_url == f"/runs/{minted['task']}"
    assert answer.temporal_ui_url.endswith(f"/namespaces/default/workflows/{minted['task']}")
    assert answer.trace_id == format(span.get_span_context().trace_id, "032x")
    assert (answer.policy, answer.forked_from) == ("scripted", "task-x@base")


async def test_a_scripted_task_starts_tagged_and_labelled_a_test_double(
    gate: Gate, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "calc", PY_REPO)
    script = write_script(tmp_path / "script.toml", [ADD_MUL_WRONG])
    response = await gate.http.post("/tasks", json={
        "repo": str(repo), "goal": "add mul", "policy": "scripted", "policy_script": str(script),
    })  # fmt: skip
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    assert re.fullmatch(r"task-[0-9a-f]{12}", run_id)
    described = await gate.client.get_workflow_handle(run_id).describe()
    assert described.task_queue == gate.settings.task_queue
    assert await described.static_summary() == "[scripted policy: TEST DOUBLE] add mul"
    tags = described.typed_search_attributes
    assert (tags.get(search.KIND), tags.get(search.REPO)) == ("task", str(repo))
    assert (tags.get(search.POLICY), tags.get(search.STATUS)) == ("scripted", "running")


async def test_a_repeated_event_joins_the_investigation_already_running(gate: Gate) -> None:
    event = SentryEvent("6543210987", title="ZeroDivisionError: division by zero")
    inp = InvestigationInput(
        run_id=new_run_id("investigation"), kind="regression", repo="/srv/billing", event=event,
        queues=run_queues(gate.settings),
    )  # fmt: skip
    answers = [
        await start_investigation(gate.client, gate.settings, inp, join=True),
        await start_investigation(gate.client, gate.settings, inp, join=True),
        await start_investigation(gate.client, gate.settings, inp),  # already started: no signal
    ]
    assert {a.run_id for a in answers} == {inp.run_id}
    assert {a.policy for a in answers} == {"none"}
    assert await gate.started(expected=1) == 1
    handle = gate.client.get_workflow_handle(inp.run_id)
    history = await handle.fetch_history()
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]  # fmt: skip
    assert signals == ["event", "event"]  # the joins signalled; the plain start did not
    # The event travels once, in the run's input; a join signals only its id.
    payloads = [
        e.workflow_execution_signaled_event_attributes.input.payloads[0].data.decode()
        for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]  # fmt: skip
    assert all(event.event_id in p and event.title not in p for p in payloads), payloads
    described = await handle.describe()
    assert await described.static_summary() == f"[investigation] {event.title}"
    assert described.typed_search_attributes.get(search.SENTRY_ISSUE) == event.issue_id
