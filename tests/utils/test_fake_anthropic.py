"""The fake Messages API is as strict as the real one, bills what it answers, and simulates
prompt caching: checked through the real anthropic SDK, over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import Message

from tests.utils.fake_anthropic import (
    KNOWN_MODELS,
    NO_PREFILL,
    NO_PREFILL_MESSAGE,
    NO_TEMPERATURE,
    Answer,
    Bill,
    FakeMessagesApi,
    check_request,
    error,
    text_message,
    tool_use,
)

EDITOR = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
SCHEMA = {"type": "object", "properties": {}}
CACHED = {"cache_control": {"type": "ephemeral"}}
HI = {"role": "user", "content": "hi"}
MISSING = (
    "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
    "toolu_1. Each `tool_use` block must have a corresponding `tool_result` block in the next "
    "message."
)


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def use(call_id: str) -> dict[str, Any]:
    block = {"type": "tool_use", "id": call_id, "name": "run_tests", "input": {}}
    return {"role": "assistant", "content": [block]}


def result(call_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": "ok"}


def text(value: str, cached: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": value}
    return block | (CACHED if cached else {})


def request(**changes: Any) -> dict[str, Any]:
    """A valid request (a turn the way Ratchet sends it), with `changes`; None drops a key."""
    body: dict[str, Any] = {
        "model": "claude-fake",
        "max_tokens": 100,
        "system": [text("You are terse.", cached=True)],
        "tools": [EDITOR, {"type": "bash_20250124", "name": "bash"},
                  {"name": "run_tests", "input_schema": SCHEMA} | CACHED],
        "messages": [
            user(text("context", cached=True), text("ask")),
            use("toolu_1"),
            user(result("toolu_1") | CACHED),
        ],
    }  # fmt: skip
    return {k: v for k, v in (body | changes).items() if v is not None}


@contextmanager
def served(
    answers: list[Answer], **options: Any
) -> Iterator[tuple[FakeMessagesApi, anthropic.Anthropic]]:
    fake = FakeMessagesApi(answers, **options)
    with fake.serve() as url, anthropic.Anthropic(base_url=url, api_key="test") as client:
        yield fake, client.with_options(max_retries=0)


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[FakeMessagesApi, anthropic.Anthropic]]:
    """One server for the many cases below, each of which scripts its own answers."""
    with served([]) as both:
        yield both


def send(client: anthropic.Anthropic, body: dict[str, Any]) -> Message:
    required = {"model", "max_tokens", "messages"}
    if required <= body.keys() and isinstance(body["max_tokens"], int):
        rest = {k: v for k, v in body.items() if k not in required}  # temperature is no argument
        return client.messages.create(
            model=body["model"], max_tokens=body["max_tokens"], messages=body["messages"],
            extra_body=rest,
        )  # fmt: skip
    # The SDK itself insists on these three (and an int max_tokens); its raw post sends any body.
    return client.post("/v1/messages", body=body, cast_to=Message)


REFUSALS: list[tuple[dict[str, Any], int, str]] = [
    ({"model": "claude-nope"}, 404, "model: claude-nope"),
    ({"model": None}, 400, "model: Field required"),
    ({"max_tokens": None}, 400, "max_tokens: Field required"),
    ({"max_tokens": 0}, 400, "max_tokens: Input should be greater than or equal to 1"),
    ({"max_tokens": "100"}, 400, "max_tokens: Input should be a valid integer"),
    ({"messages": []}, 400, "messages: at least one message is required"),
    ({"model": "claude-sonnet-4-5", "messages": [{"role": "assistant", "content": "hi"}]}, 400,
     'messages: first message must use the "user" role'),
    ({"messages": [{"role": "system", "content": "hi"}]}, 400,
     "messages.0.role: Input should be 'user' or 'assistant'"),
    ({"messages": [{"role": "user", "content": ""}]}, 400,
     "messages.0: all messages must have non-empty content except for the optional final "
     "assistant message"),
    ({"messages": [HI, {"role": "assistant", "content": []}, HI]}, 400,
     "messages.1: all messages must have non-empty content except for the optional final "
     "assistant message"),
    ({"messages": [{"role": "user", "content": [text("")]}]}, 400,
     "messages: text content blocks must be non-empty"),
    ({"messages": [{"role": "user", "content": [text(" \n")]}]}, 400,
     "messages: text content blocks must contain non-whitespace text"),
    ({"messages": [HI, {"role": "assistant", "content": "Sure"}]}, 400, NO_PREFILL_MESSAGE),
    ({"model": "claude-opus-4-6", "messages": [HI, {"role": "assistant", "content": ""}]}, 400,
     NO_PREFILL_MESSAGE),
    ({"model": "claude-sonnet-4-5", "messages": [HI, {"role": "assistant", "content": "So "}]},
     400, "messages: final assistant content cannot end with trailing whitespace"),
    ({"messages": [HI, use("toolu_1"), HI]}, 400, MISSING),
    ({"messages": [HI, use("toolu_1"), user(text("x"), result("toolu_1"))]}, 400, MISSING),
    ({"model": "claude-sonnet-4-5", "messages": [HI, use("toolu_1")]}, 400, MISSING),
    ({"messages": [HI, use("toolu_1"), user(result("toolu_1"), result("toolu_2"))]}, 400,
     "messages.2.content.1: unexpected `tool_use_id` found in `tool_result` blocks: toolu_2. "
     "Each `tool_result` block must have a corresponding `tool_use` block in the "
     "previous message."),
    ({"messages": [user(result("toolu_1"))]}, 400,
     "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1. "
     "Each `tool_result` block must have a corresponding `tool_use` block in the previous "
     "message."),
    ({"messages": [HI, use("toolu 1"), user(result("toolu 1"))]}, 400,
     "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"),
    ({"system": [text("a", cached=True), text("b", cached=True)]}, 400,
     "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    ({"temperature": 0.5}, 400, "`temperature` is deprecated for this model."),
    ({"model": "claude-opus-4-7", "temperature": 0.0}, 400,
     "`temperature` is deprecated for this model."),
    ({"model": "claude-sonnet-4-6", "temperature": 1.5}, 400,
     "temperature: Input should be less than or equal to 1"),
    ({"tools": [EDITOR, EDITOR]}, 400, "tools: Tool names must be unique."),
    ({"tools": [{"name": "run_tests"}]}, 400, "tools.0.custom.input_schema: Field required"),
    ({"tools": [{"name": "bad name", "input_schema": SCHEMA}]}, 400,
     "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"),
    ({"tools": [{"type": "bash_20250124", "name": "shell"}]}, 400,
     "tools.0.bash_20250124.name: Input should be 'bash'"),
    ({"tools": [{"type": "text_editor_20250124", "name": "str_replace_based_edit_tool"}]}, 400,
     "tools.0.text_editor_20250124.name: Input should be 'str_replace_editor'"),
    ({"tools": [{"type": "shell_20990101", "name": "shell"}]}, 400,
     "tools.0: Input tag 'shell_20990101' found using 'type' does not match any of the expected "
     "tags"),
    ({"system": [text("")]}, 400, "system: text content blocks must be non-empty"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "status", "refusal"), REFUSALS)
def test_a_request_the_real_api_refuses_is_refused_and_uses_no_answer(
    shared: tuple[FakeMessagesApi, anthropic.Anthropic],
    changes: dict[str, Any], status: int, refusal: str,
) -> None:  # fmt: skip
    fake, client = shared
    answer = text_message("never sent")
    fake.answers, fake.refused, fake.billed, fake.requests = [answer], [], Bill(), []
    with pytest.raises(anthropic.APIStatusError) as caught:
        send(client, request(**changes))
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["message"] == refusal
    assert fake.answers == [answer] and fake.billed == Bill()
    assert [(r["status"], r["message"]) for r in fake.refused] == [(status, refusal)]
    assert len(fake.requests) == 1  # recorded all the same
    # The next, valid, request gets the scripted answer.
    assert send(client, request()).content[0].text == "never sent"  # type: ignore[union-attr]
    assert len(fake.refused) == 1 and fake.billed.calls == 1


ACCEPTED: list[dict[str, Any]] = [
    {},  # Ratchet's own turn: 4 breakpoints, Claude's tools by type, a tool_result answering
    {"model": "claude-sonnet-4-5", "messages": [HI, {"role": "assistant", "content": ""}]},
    {"model": "claude-haiku-4-5", "messages": [HI, {"role": "assistant", "content": "Sure"}]},
    {"model": "claude-sonnet-4-6", "temperature": 1},
    {"system": "a plain string", "tools": None, "messages": [HI]},
    {"messages": [HI, use("toolu_1"), user(result("toolu_1"), text("and"))]},
    {"tools": [{"type": "text_editor_20250124", "name": "str_replace_editor"},
               {"type": "custom", "name": "a-b_c", "input_schema": SCHEMA}]},
]  # fmt: skip


@pytest.mark.parametrize("changes", ACCEPTED)
def test_a_request_the_real_api_takes_is_answered(
    shared: tuple[FakeMessagesApi, anthropic.Anthropic], changes: dict[str, Any]
) -> None:
    fake, client = shared
    fake.answers, fake.refused = [text_message("done")], []
    assert send(client, request(**changes)).content[0].text == "done"  # type: ignore[union-attr]
    assert fake.refused == [] and fake.answers == []


def test_the_models_are_the_sdks_and_recent_ones_take_no_prefill_nor_temperature() -> None:
    assert {"claude-opus-4-6", "claude-haiku-4-5", "claude-opus-4-1", "claude-fake"} <= KNOWN_MODELS
    assert {
        "claude-opus-4-6",
        "claude-sonnet-4-6",
        "claude-fake",
        "claude-mythos-preview",
    } <= NO_PREFILL
    assert not {"claude-haiku-4-5", "claude-opus-4-5-20251101", "claude-sonnet-4-5"} & NO_PREFILL
    assert {"claude-opus-4-7", "claude-sonnet-5", "claude-fable-5", "claude-fake"} <= NO_TEMPERATURE
    assert not {"claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"} & NO_TEMPERATURE
    assert check_request(request(model="mine"), {"mine"}) is None
    assert check_request(request(), {"mine"}) == "model: claude-fake"
    assert check_request([]) is not None
    with served([text_message("ok")], models={"mine"}) as (_, client):
        with pytest.raises(anthropic.NotFoundError):
            send(client, request())
        assert send(client, request(model="mine")).content


def test_other_paths_are_answered_unchecked_and_unbilled() -> None:
    # The OpenAI-compatible fake rides the same server.
    fake = FakeMessagesApi([(200, {"choices": []})])
    with fake.serve() as url:
        response = httpx.post(f"{url}/v1/chat/completions", json={"model": "qwen", "messages": []})
    assert response.json() == {"choices": []}
    assert fake.refused == [] and fake.billed == Bill()


def test_every_200_answer_is_billed_even_one_the_client_cannot_read() -> None:
    small = {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 11}
    answers = [
        text_message("one"),
        (0, {}),  # dropped: not billed
        error(529, "overloaded_error", "Overloaded"),  # not billed
        tool_use("run_tests", {}, usage=small),
        (200, b"this is not json"),  # billed (one call, no usage to read)
    ]
    with served(answers) as (fake, client):
        send(client, request())
        with pytest.raises(anthropic.APIConnectionError):
            send(client, request())
        with pytest.raises(anthropic.APIStatusError):
            send(client, request())
        with pytest.raises(anthropic.BadRequestError):
            send(client, request(max_tokens=0))  # refused: not billed, uses no answer
        send(client, request())
        with pytest.raises(ValueError):
            send(client, request())
    assert fake.billed == Bill(
        input_tokens=107, output_tokens=23, cache_creation_input_tokens=50,
        cache_read_input_tokens=11, calls=3,
    )  # fmt: skip


LONG = "All the rules of the house, at length. " * 120  # about 1,200 tokens


def cached_turn(*messages: dict[str, Any], system: str = LONG) -> dict[str, Any]:
    """A turn with breakpoints on the system prompt and on the newest block."""
    out = [dict(m) for m in messages]
    out[-1] = out[-1] | {"content": [text(out[-1]["content"], cached=True)]}
    return request(system=[text(system, cached=True)], tools=None, messages=out)


def test_a_long_prefix_is_written_once_then_read_from_cache() -> None:
    answers = [text_message("first"), text_message("second"), text_message("third")]
    with served(answers, simulate_cache=True) as (fake, client):
        first = send(client, cached_turn(HI))
        reply = {"role": "assistant", "content": "first"}
        second = send(client, cached_turn(HI, reply, {"role": "user", "content": "more"}))
        other = send(client, cached_turn(HI) | {"model": "claude-opus-4-6"})
    assert first.model == "claude-fake" and other.model == "claude-opus-4-6"  # echoed
    assert first.usage.cache_read_input_tokens == 0
    assert (first.usage.cache_creation_input_tokens or 0) >= 1024
    assert first.usage.input_tokens == 0  # all of it is before the last breakpoint
    # The second turn reads all the first wrote (its breakpoint moved on: the blocks did not
    # change) and writes only its new messages.
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert 0 < (second.usage.cache_creation_input_tokens or 0) < 40
    assert other.usage.cache_read_input_tokens == 0  # a cache is per model
    assert first.usage.output_tokens == 20  # the scripted answer's
    written = sum(m.usage.cache_creation_input_tokens or 0 for m in (first, second, other))
    assert fake.billed == Bill(
        input_tokens=0, output_tokens=60, cache_creation_input_tokens=written,
        cache_read_input_tokens=second.usage.cache_read_input_tokens or 0, calls=3,
    )  # fmt: skip


def test_a_prefix_below_the_minimum_is_not_cached() -> None:
    answers = [text_message("a"), text_message("b"), text_message("c"), text_message("d")]
    with served(answers, simulate_cache=True) as (fake, client):
        short = [send(client, cached_turn(HI, system="Be terse.")) for _ in range(2)]
        fake.cache.min_tokens = 10
        small = [send(client, cached_turn(HI, system="Be terse.")) for _ in range(2)]
    for message in short:
        assert message.usage.cache_creation_input_tokens == 0
        assert message.usage.cache_read_input_tokens == 0
        assert message.usage.input_tokens > 10
    # With a lower minimum the same prefix is written, then read.
    assert small[0].usage.cache_creation_input_tokens == short[0].usage.input_tokens
    assert small[1].usage.cache_read_input_tokens == short[0].usage.input_tokens


def test_what_follows_the_last_breakpoint_is_plain_input() -> None:
    body = cached_turn(HI)
    body["messages"][-1]["content"].append(text("uncached tail " * 10))
    answer = text_message("x", usage={"input_tokens": 1, "output_tokens": 0})
    with served([answer, text_message("y")], simulate_cache=True) as (_, client):
        first = send(client, body)
        again = send(client, body)
    assert first.usage.output_tokens == 0
    assert 30 < first.usage.input_tokens < 50
    assert again.usage.input_tokens == first.usage.input_tokens
    assert again.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert again.usage.cache_creation_input_tokens == 0
