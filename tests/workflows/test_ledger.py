"""Every paid call is counted: against a strict stand-in for the Messages API that bills every
answer, a run's usage is what the server billed — answers that did not parse, answers cut off
at their token limit, a learn step that failed, an investigation's fix run — and no request is
refused. With a repository of a few thousand tokens, later agent turns read from the cache."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import SecretStr
from temporalio.client import Client

from tests.conftest import TOKEN, make_settings, serve_app
from tests.utils.fake_anthropic import Answer, FakeMessagesApi, message, text_message, tool_use
from tests.utils.history import CALC, planted
from tests.utils.repos import PY_REPO, make_repo
from tests.workflows.helpers import wait_for_end
from worker import build_worker

EDITOR = "str_replace_based_edit_tool"
MUL = "    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
TEST_MUL = "from calc import mul\n\n\ndef test_mul():\n    assert mul(3, 4) == 12\n"
# A module of a few thousand tokens, so the repository is worth caching.
BIG = "".join(f'def helper_{n}(x):\n    """Helper number {n}."""\n    return x + {n}\n\n\n'
              for n in range(200))  # fmt: skip


def draft(lens: str) -> str:
    return json.dumps({"lens": lens, "plan": [f"{lens}: add mul"], "objections": []})


SYNTHESIS = json.dumps({
    "plan": ["add mul(a, b) to calc.py", "test it"],
    "contributions": [{"lens": "correctness", "contribution": "a test"}],
    "overruled": [],
})  # fmt: skip


def cut_off(text: str) -> Answer:
    return message([{"type": "text", "text": text}], "max_tokens")


def coding() -> list[Answer]:
    return [
        tool_use(EDITOR, {"command": "str_replace", "path": "calc.py",
                          "old_str": "    return a + b\n", "new_str": MUL}, call_id="toolu_a"),
        tool_use(EDITOR, {"command": "create", "path": "tests/test_mul.py",
                          "file_text": TEST_MUL}, call_id="toolu_b"),
        tool_use("run_tests", {"select": ["tests/test_mul.py"]}, call_id="toolu_c"),
        tool_use("submit", {"summary": "mul with a test"}, call_id="toolu_d"),
    ]  # fmt: skip


@asynccontextmanager
async def served(
    tmp_path: Path, temporal_target: str, client: Client, monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider, answers: list[Answer],
) -> AsyncIterator[tuple[FakeMessagesApi, httpx.AsyncClient]]:  # fmt: skip
    from api.main import create_app

    fake = FakeMessagesApi(answers, simulate_cache=True)
    settings = make_settings(tmp_path / "home", temporal_target,
                             anthropic_api_key=SecretStr("sk-test"))  # fmt: skip
    with fake.serve() as url:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        app = create_app(settings, client=client, tracer_provider=tracer_provider)
        async with (
            build_worker(client, settings),
            serve_app(app) as base,
            httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=30) as api,
        ):  # fmt: skip
            yield fake, api


def billed_as(usage: dict[str, Any], fake: FakeMessagesApi) -> None:
    bill = fake.billed
    assert fake.refused == [], fake.refused
    assert fake.answers == [], "every scripted answer was asked for"
    assert (usage["turns"], usage["input_tokens"], usage["output_tokens"],
            usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"]) == (
        bill.calls, bill.input_tokens, bill.output_tokens, bill.cache_creation_input_tokens,
        bill.cache_read_input_tokens)  # fmt: skip


async def test_a_task_with_perspectives_and_learning_is_billed_call_for_call(
    tmp_path: Path, temporal_target: str, client: Client, monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
) -> None:  # fmt: skip
    repo = make_repo(tmp_path / "calc", {**PY_REPO, "helpers.py": BIG})
    answers = [
        text_message("this is not json"),
        text_message(draft("correctness")),  # asked again
        text_message(draft("simplicity")),
        cut_off('{"plan": ["add mul"'),
        text_message(SYNTHESIS),  # cut off: more room, again
        *coding(),
        tool_use("submit", {"summary": "nothing to refactor"}, call_id="toolu_e"),
        # Learning: cut off at the limit, and again with more room: the step fails for good,
        # the run keeps its outcome, and both answers are still paid for.
        cut_off('{"entries": [{"kind": "decision", "text": "mul'),
        cut_off('{"entries": ['),
    ]
    async with served(tmp_path, temporal_target, client, monkeypatch, tracer_provider,
                      answers) as (fake, api):  # fmt: skip
        response = await api.post("/tasks", json={
            "repo": str(repo), "goal": "add mul(a, b)", "policy": "anthropic",
            "perspectives": 2, "memory": True,
        })  # fmt: skip
        assert response.status_code == 202, response.text
        run = await wait_for_end(api, response.json()["run_id"])
    assert run["status"] == "completed", run
    learn = next(s for s in run["steps"] if s["name"] == "learn")
    assert learn["status"] == "failed" and "cut off" in learn["detail"]
    billed_as(run["usage"], fake)
    assert run["usage"]["turns"] == 12 and run["usage"]["cost_usd"] > 0
    # The synthesis was cut off and asked again with more room (as much as goes unstreamed).
    limits = [body["max_tokens"] for body, _ in fake.bills]
    assert limits[3] < limits[4] == 21_333 and "stream" not in fake.bills[4][0]
    # The perspectives share the repository: the first writes it to the cache, the others
    # (and the first one's second try) read it.
    first, again, second = (usage for _, usage in fake.bills[:3])
    assert first["cache_creation_input_tokens"] > 2000 and first["cache_read_input_tokens"] == 0
    assert again["cache_read_input_tokens"] == second["cache_read_input_tokens"] > 2000
    # From the second agent turn on, most input tokens are cache reads.
    for body, usage in fake.bills[6:9]:
        prompt = sum(usage[k] for k in ("input_tokens", "cache_creation_input_tokens",
                                        "cache_read_input_tokens"))  # fmt: skip
        assert usage["cache_read_input_tokens"] > prompt / 2, usage
        assert sum("cache_control" in b for m in body["messages"] for b in m["content"]
                   if isinstance(b, dict)) <= 4  # fmt: skip
    assert run["usage"]["cache_read_share"] > 0.3


async def test_an_investigation_counts_its_fix_run_and_shows_it_apart(
    tmp_path: Path, temporal_target: str, client: Client, monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
) -> None:  # fmt: skip
    from tests.utils.history import CALC_BROKEN

    repo = tmp_path / "calc"
    planted(repo, CALC, commits=6, bad_at=4, breaking=CALC_BROKEN)
    fix = {"command": "str_replace", "path": "calc.py",
           "old_str": "a + b + (1 if b > 2 else 0)", "new_str": "a + b"}  # fmt: skip
    answers = [
        text_message("1. remove the off-by-one"),  # the fix run's plan
        tool_use(EDITOR, fix, call_id="toolu_f"),
        tool_use("submit", {"summary": "fixed"}, call_id="toolu_g"),
        tool_use("submit", {"summary": "nothing to refactor"}, call_id="toolu_h"),
    ]
    async with served(tmp_path, temporal_target, client, monkeypatch, tracer_provider,
                      answers) as (fake, api):  # fmt: skip
        response = await api.post("/investigations", json={
            "repo": str(repo), "policy": "anthropic",
            "reproduce": {"test_command": "python -m pytest -q"},
        })  # fmt: skip
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        run = await wait_for_end(api, run_id, timeout_s=240)
    assert run["status"] == "completed", run
    billed_as(run["usage"], fake)
    assert run["usage"]["turns"] == 4
    assert run["usage"]["children"][f"{run_id}-fix"]["turns"] == 4


async def test_a_drift_check_without_specs_asks_no_model(
    tmp_path: Path, temporal_target: str, client: Client, monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
) -> None:  # fmt: skip
    repo = make_repo(tmp_path / "calc", {"calc.py": "def add(a, b):\n    return a + b\n"})
    async with served(tmp_path, temporal_target, client, monkeypatch, tracer_provider,
                      []) as (fake, api):  # fmt: skip
        response = await api.post("/drift", json={"repo": str(repo), "policy": "anthropic"})
        assert response.status_code == 202, response.text
        run = await wait_for_end(api, response.json()["run_id"])
    assert run["status"] == "completed", run
    assert fake.requests == [] and run["usage"]["turns"] == 0
