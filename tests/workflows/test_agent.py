"""Claude as the policy, end to end: the real anthropic SDK against a fake Messages API on
loopback, through the API, the workflow, one activity per model turn and per tool call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from temporalio.client import Client

from contracts.runs import RunState
from gym.git import git
from ratchet.settings import Settings
from tests.conftest import make_settings
from tests.utils.fake_anthropic import Answer, FakeMessagesApi, error, text_message, tool_use
from tests.utils.repos import PY_REPO, make_repo
from tests.workflows.helpers import wait_for_end
from worker import build_worker

MUL = "    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
EDITOR = "str_replace_based_edit_tool"
TEST_MUL = "from calc import mul\n\n\ndef test_mul():\n    assert mul(3, 4) == 12\n"


def happy_path() -> list[Answer]:
    return [
        text_message("1. add mul to calc.py\n2. test it"),  # plan
        # Claude's own text editor tool, as its models are trained to use it.
        tool_use(EDITOR, {"command": "view", "path": "calc.py"}, call_id="toolu_1"),
        tool_use(
            EDITOR,
            {
                "command": "str_replace",
                "path": "calc.py",
                "old_str": "    return a + b\n",
                "new_str": MUL,
            },
            call_id="toolu_2",
        ),
        tool_use(
            EDITOR,
            {"command": "create", "path": "tests/test_mul.py", "file_text": TEST_MUL},
            call_id="toolu_3",
        ),
        tool_use("run_tests", {}, call_id="toolu_4"),
        tool_use("submit", {"summary": "added mul with a test"}, call_id="toolu_5"),
        tool_use("submit", {"summary": "nothing to refactor"}, call_id="toolu_6"),  # refactor
    ]


class Harness:
    def __init__(self, fake: FakeMessagesApi, api: httpx.AsyncClient, repo: Path) -> None:
        self.fake, self.api, self.repo = fake, api, repo

    async def submit(self, **extra: Any) -> str:
        # memory off: each test scripts exactly the model calls it is about.
        body = {"repo": str(self.repo), "goal": "add mul(a, b)", "policy": "anthropic",
                "memory": False} | extra  # fmt: skip
        response = await self.api.post("/tasks", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["run_id"])


@pytest_asyncio.fixture
async def harness(
    tmp_path: Path, temporal_target: str, client: Client, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Harness]:  # fmt: skip
    from api.main import create_app
    from tests.conftest import TOKEN, serve_app

    # The parameter, when given, is the scripted answers, settings to change, or both (a pair).
    param = getattr(request, "param", None)
    scripted, changes = param if isinstance(param, tuple) else (param, param)
    answers: list[Answer] = scripted if isinstance(scripted, list) else happy_path()
    fake = FakeMessagesApi(answers, headers={"retry-after": "0"})
    overrides = {"model_retry_initial_s": 0.1, "agent_turns_per_execution": 2}
    overrides |= changes if isinstance(changes, dict) else {}
    settings: Settings = make_settings(
        tmp_path / "home", temporal_target, anthropic_api_key=SecretStr("sk-test"), **overrides
    )
    with fake.serve() as url:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)  # honoured by the SDK in the worker
        worker = build_worker(client, settings)
        app = create_app(
            settings, client=client, tracer_provider=request.getfixturevalue("tracer_provider")
        )
        async with (
            worker,
            serve_app(app) as base_url,
            httpx.AsyncClient(
                base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
            ) as api,
        ):
            yield Harness(fake, api, make_repo(tmp_path / "calc", PY_REPO))


async def test_claude_reaches_a_verified_patch_through_the_sdk(
    harness: Harness, span_exporter: InMemorySpanExporter, client: Client
) -> None:
    run_id = await harness.submit()
    run = await wait_for_end(harness.api, run_id)
    assert run["status"] == "completed", run
    assert all(g["passed"] for g in run["result"]["gates"])
    assert "return a * b" in git("show", f"ratchet/{run_id}:calc.py", cwd=harness.repo)
    # 7 turns: plan, 5 in the coding loop (continued-as-new every 2 turns), 1 refactor.
    # Priced by the exact id of the default model (claude-sonnet-5-5: $2 in, $10 out, $2.50
    # cache write per million tokens).
    assert run["usage"] == {
        "turns": 7, "input_tokens": 700, "output_tokens": 140,
        "cache_creation_input_tokens": 350, "cache_read_input_tokens": 0,
        "cost_usd": pytest.approx(7 * (100 * 2 + 20 * 10 + 50 * 2.5) / 1e6, rel=1e-6),
        "cache_read_share": 0.0, "unpriced_turns": 0, "price_unknown": False, "children": {},
    }  # fmt: skip
    assert harness.fake.refused == []
    assert harness.fake.billed.calls == 7
    requests = harness.fake.requests
    assert len(requests) == 7
    turn = requests[2]["body"]
    # Claude gets its own schema-less client tools by type, then Ratchet's run_tests and submit.
    assert [(t.get("type"), t["name"]) for t in turn["tools"]] == [
        ("text_editor_20250728", EDITOR), ("bash_20250124", "bash"), (None, "run_tests"),
        (None, "submit"),
    ]  # fmt: skip
    assert "input_schema" not in turn["tools"][0]
    # One breakpoint after the stable prefix (tools, system, the repository's files), one on
    # the newest turn: not on the tools or the system prompt, which come before it anyway.
    assert all("cache_control" not in t for t in turn["tools"])
    assert "cache_control" not in turn["system"][0]
    assert turn["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert turn["messages"][0]["content"][0]["text"].startswith("<files>")
    # The read_file result went back to the model as a tool_result, numbered lines of calc.py.
    result = turn["messages"][-1]["content"][-1]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_1"
    assert "def add(a, b):" in result["content"] and result["cache_control"]
    tests_result = requests[5]["body"]["messages"][-1]["content"][-1]["content"]
    assert tests_result.startswith("PASSED: 2 passed")
    turn_spans = [
        s
        for s in span_exporter.get_finished_spans()
        if s.name == "RunActivity:ratchet.model_turn"
        and s.attributes.get("ratchet.run_id") == run_id
    ]
    assert len(turn_spans) == 6
    assert turn_spans[0].attributes["gen_ai.usage.cache_creation.input_tokens"] == 50
    assert turn_spans[0].attributes["gen_ai.request.model"] == "claude-sonnet-5-5"
    # The loop's turns and tool calls are steps of its own: its state query lists them (its
    # last execution's: it continued as new every 2 turns).
    loop = await client.get_workflow_handle(f"{run_id}-patch-1-0").query(
        "state", result_type=RunState
    )
    assert loop.steps and all(s.status == "completed" for s in loop.steps), loop.steps
    assert loop.steps[0].name.startswith("model turn ") and loop.steps[0].name.endswith("(code)")
    assert loop.usage.turns == 6  # the plan's turn and the loop's 5, counted where they ran


STORM = [happy_path()[0], *[error(529, "overloaded_error", "Overloaded")] * 4, *happy_path()[1:]]


@pytest.mark.parametrize("harness", [STORM], indirect=True)
async def test_a_529_storm_delays_the_run_but_does_not_fail_it(harness: Harness) -> None:
    run = await wait_for_end(harness.api, await harness.submit())
    assert run["status"] == "completed", run
    assert len(harness.fake.requests) == 7 + 4
    assert run["usage"]["turns"] == 7  # failed attempts are not turns and cost nothing


RATE_LIMITED = [
    happy_path()[0],
    (*error(429, "rate_limit_error", "slow down"), {"retry-after": "2"}),
    *happy_path()[1:],
]


@pytest.mark.parametrize("harness", [RATE_LIMITED], indirect=True)
async def test_a_429_waits_as_long_as_retry_after_says(harness: Harness) -> None:
    run = await wait_for_end(harness.api, await harness.submit())
    assert run["status"] == "completed", run
    limited, retried = harness.fake.requests[1], harness.fake.requests[2]
    # The workflow's own backoff starts at 0.1 s; the API asked for 2 s and got them.
    assert retried["at"] - limited["at"] >= 2.0


AUTH = [happy_path()[0], error(401, "authentication_error", "invalid x-api-key")]


@pytest.mark.parametrize("harness", [AUTH], indirect=True)
async def test_a_401_fails_the_run_at_once_with_the_message(harness: Harness) -> None:
    run = await wait_for_end(harness.api, await harness.submit())
    assert run["status"] == "failed"
    assert run["error"]["type"] == "ModelRequestRejected"
    assert "invalid x-api-key" in run["error"]["message"]
    assert len(harness.fake.requests) == 2  # no retry of a permanent error


async def test_a_turn_budget_pauses_with_the_work_kept_and_resumes_after_a_raise(
    harness: Harness,
) -> None:
    run_id = await harness.submit(budget={"max_turns": 3})
    for _ in range(300):
        run = (await harness.api.get(f"/runs/{run_id}")).json()
        if run["status"] != "running":
            break
        await asyncio.sleep(0.1)
    assert run["status"] == "paused", run
    assert "turn budget spent (3 of 3)" in run["pause_reason"]
    assert run["usage"]["turns"] == 3 and len(harness.fake.requests) == 3
    assert run["result"]["draft"] is True
    partial = await harness.api.get(f"/runs/{run_id}/patch")
    assert "+def mul(a, b):" in partial.text  # the edit made before the pause is kept
    too_small = await harness.api.post(f"/runs/{run_id}/budget", json={"max_turns": 3})
    assert too_small.json()["phase"] == "paused" and "still paused" in too_small.json()["message"]
    raised = await harness.api.post(f"/runs/{run_id}/budget", json={"max_turns": 50})
    assert raised.status_code == 200 and raised.json()["message"] == "resuming"
    run = await wait_for_end(harness.api, run_id)
    assert run["status"] == "completed", run
    assert len(harness.fake.requests) == 7  # no turn was paid for twice
    assert run["budget"]["max_turns"] == 50


async def test_cancel_while_paused_delivers_a_draft(harness: Harness) -> None:
    run_id = await harness.submit(budget={"max_turns": 3})
    for _ in range(300):
        run = (await harness.api.get(f"/runs/{run_id}")).json()
        if run["status"] == "paused":
            break
        await asyncio.sleep(0.1)
    response = await harness.api.post(f"/runs/{run_id}/cancel", json={"reason": "enough"})
    assert response.status_code == 202, response.text
    run = await wait_for_end(harness.api, run_id)
    assert run["status"] == "cancelled", run
    assert run["result"]["draft"] is True
    assert "def mul" in git("show", f"ratchet/{run_id}:calc.py", cwd=harness.repo)
    again = await harness.api.post(f"/runs/{run_id}/cancel", json={})
    assert again.status_code == 409


def looping() -> list[Answer]:
    bad = {"path": "calc.py", "search": "no such text", "replace": "x"}
    return [happy_path()[0], *[tool_use("edit_file", bad, call_id=f"toolu_{i}") for i in range(3)]]


@pytest.mark.parametrize("harness", [looping()], indirect=True)
async def test_the_loop_detector_stops_a_policy_repeating_a_failing_action(
    harness: Harness,
) -> None:
    run = await wait_for_end(harness.api, await harness.submit())
    assert run["status"] == "failed"
    assert run["error"]["type"] == "LoopDetected"
    assert "3 times" in run["error"]["message"]
    assert len(harness.fake.requests) == 4


async def test_budget_and_cancel_refuse_bad_requests(harness: Harness) -> None:
    assert (
        await harness.api.post("/runs/task-nope/budget", json={"max_turns": 1})
    ).status_code == 404
    assert (await harness.api.post("/runs/task-nope/cancel", json={})).status_code == 404
    run_id = await harness.submit()
    assert (await harness.api.post(f"/runs/{run_id}/budget", json={})).status_code == 422
    response = await harness.api.post(f"/runs/{run_id}/budget", json={"max_turns": -1})
    assert response.status_code == 422
    await wait_for_end(harness.api, run_id)
    late = await harness.api.post(f"/runs/{run_id}/budget", json={"max_turns": 5})
    assert late.status_code == 409


DRAFT = text_message('{"lens": "any", "plan": ["add mul to calc.py"], "objections": []}')
SHARED = [DRAFT, DRAFT, DRAFT, *happy_path()]


@pytest.mark.parametrize("harness", [SHARED], indirect=True)
async def test_a_pattern_stops_when_its_budget_share_is_spent_and_the_run_goes_on(
    harness: Harness,
) -> None:
    # 3 drafts cost 3 x 170 tokens, past a 2% share of 10,000: no synthesis, a plain plan.
    run_id = await harness.submit(perspectives=3, budget={"max_tokens": 10_000}, pattern_share=0.02)
    run = await wait_for_end(harness.api, run_id)
    assert run["status"] == "completed", run
    names = [s["name"] for s in run["steps"]]
    assert sum(n.startswith("perspective (") for n in names) == 3
    assert "synthesis" not in names and "plan" in names
    assert len(harness.fake.requests) == 10 and run["usage"]["turns"] == 10
