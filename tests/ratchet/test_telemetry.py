"""Nothing secret leaves in a span, a log line or an artifact; logs are JSON with trace and run
ids; spans go to the local file and, when configured, to an OTLP collector as well."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
from opentelemetry.sdk.trace import TracerProvider
from pydantic import SecretStr
from temporalio.client import Client

from ratchet.artifacts import FilesystemArtifactStore
from ratchet.logs import JsonFormatter
from ratchet.scrub import REDACTED, Scrubber
from ratchet.settings import Settings
from ratchet.telemetry import RUN_ID_ATTRIBUTE, build_tracer_provider
from tests.conftest import TOKEN
from tests.utils.repos import PY_REPO, make_repo
from tests.utils.scripts import write_script
from tests.workflows.helpers import wait_for_end
from tests.workflows.test_forward import submit
from worker import build_worker

ANTHROPIC_KEY = "sk-ant-api03-" + "K" * 40
SENTRY_SECRET = "sentry-client-secret-" + "s" * 20
GITHUB_TOKEN = "ghp_" + "g" * 36


def _secret_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "anthropic_api_key": SecretStr(ANTHROPIC_KEY),
        "sentry_client_secret": SecretStr(SENTRY_SECRET),
        "github_token": SecretStr(GITHUB_TOKEN),
    })  # fmt: skip


def test_spans_in_the_trace_file_carry_no_secret(settings: Settings) -> None:
    settings = _secret_settings(settings)
    provider = build_tracer_provider(settings, "test")
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span(f"call with {ANTHROPIC_KEY}") as span:
        span.set_attribute("http.request.header.authorization", f"Bearer {TOKEN}")
        span.set_attribute("argv", ["git", "push", f"https://x:{GITHUB_TOKEN}@github.com/a/b"])
        span.add_event("signed", {"secret": SENTRY_SECRET})
        span.set_attribute("unknown.key", "sk-ant-api03-" + "U" * 30)  # a key Ratchet never held
        span.set_attribute("harmless", "task-abc123def456-patch-1-0")
    provider.shutdown()
    text = settings.traces_file.read_text()
    for secret in (ANTHROPIC_KEY, SENTRY_SECRET, GITHUB_TOKEN, TOKEN, "U" * 30):
        assert secret not in text
    record = json.loads(text.splitlines()[0])
    assert record["name"] == f"call with {REDACTED}"
    assert record["attributes"]["harmless"] == "task-abc123def456-patch-1-0"
    assert REDACTED in record["attributes"]["argv"][2]


def test_log_lines_are_json_with_ids_and_no_secret(settings: Settings) -> None:
    settings = _secret_settings(settings)
    formatter = JsonFormatter(Scrubber(settings.secret_values()), "ratchet-worker")
    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("step") as span:
        span.set_attribute(RUN_ID_ATTRIBUTE, "task-0123456789ab")
        record = logging.LogRecord("ratchet", logging.WARNING, __file__, 1,
                                   "calling with key %s", (ANTHROPIC_KEY,), None)  # fmt: skip
        line = json.loads(formatter.format(record))
        context = span.get_span_context()
    assert line["message"] == f"calling with key {REDACTED}"
    assert line["level"] == "warning" and line["service"] == "ratchet-worker"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["run_id"] == "task-0123456789ab"


def test_exporting_to_a_collector_keeps_the_local_file(settings: Settings) -> None:
    settings = settings.model_copy(update={"otlp_endpoint": "http://127.0.0.1:9"})
    provider = build_tracer_provider(settings, "test")
    with provider.get_tracer("t").start_as_current_span("both"):
        pass
    provider.shutdown()  # the collector is down: its export fails, the file's does not
    assert json.loads(settings.traces_file.read_text())["name"] == "both"


async def test_a_run_whose_tests_print_a_key_stores_no_artifact_with_it(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path, client: Client
) -> None:
    secret_settings = _secret_settings(settings)
    # The repository's test prints the key it was (wrongly) given; the log is an artifact.
    files = PY_REPO | {
        "tests/test_leak.py": f"def test_leak():\n    print('{ANTHROPIC_KEY}')\n    assert False\n"
    }
    repo = make_repo(tmp_path / "leaky", files)
    noop = (
        "calc.py\n<<<<<<< SEARCH\ndef add(a, b):\n=======\n# ok\ndef add(a, b):\n>>>>>>> REPLACE\n"
    )
    script = write_script(tmp_path / "s.toml", [noop])
    # The worker holds the secrets (the API fixture shares its home and artifact store).
    async with build_worker(client, secret_settings):
        run_id = await submit(api, repo, script, max_repair_rounds=0)
        await wait_for_end(api, run_id)
    stored = [p for p in secret_settings.artifacts_dir.rglob("*") if p.is_file()]
    assert stored
    blobs = b"".join(p.read_bytes() for p in stored)
    assert ANTHROPIC_KEY.encode() not in blobs
    assert REDACTED.encode() in blobs  # the test log was kept, with the key redacted


def test_the_artifact_store_redacts_only_exact_secrets(tmp_path: Path) -> None:
    store = FilesystemArtifactStore(tmp_path, Scrubber([GITHUB_TOKEN]))
    ref = store.put_text(f"token={GITHUB_TOKEN} fixture=ghp_{'f' * 36}")
    assert store.get_text(ref) == f"token={REDACTED} fixture=ghp_{'f' * 36}"
