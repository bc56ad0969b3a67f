"""Anthropic end to end: the official SDKs against a live gateway, upstreams on loopback.

The gateway (uvicorn) serves ``anthropic`` from the Anthropic-shaped server in tests/anthropic_upstream.py,
``openai`` from the OpenAI-shaped one in tests/upstream.py, and ``mock``. The anthropic SDK talks to
``{gateway}/anthropic``; the openai SDK to ``{gateway}/v1`` with ``anthropic/...`` models.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from bifrost_asgi import GatewayConfig, create_app
from tests.anthropic_upstream import (
    ANSWER,
    CITED_TEXT,
    SEARCH_URL,
    SIGNATURE,
    THINKING,
    TOOL_ANSWER,
    TOOL_ID,
    AnthropicUpstream,
    count_tokens,
    message_body,
)
from tests.conftest import serve
from tests.test_count_tokens_http import expected_messages
from tests.upstream import ANSWER as OPENAI_ANSWER
from tests.upstream import GPT_4O_MINI_COST, Upstream

MODEL = "claude-sonnet-4-6"
# claude-sonnet-4-6 in the shipped catalog: $3/M input, $0.30/M cache reads, $3.75/M cache writes, $15/M
# output; the upstream reports 20 fresh input, 100 cache-read, 50 cache-write and 10 output tokens.
COST = 20 * 3e-6 + 100 * 0.3e-6 + 50 * 3.75e-6 + 10 * 15e-6
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
OPENAI_WEATHER: Any = {
    "type": "function",
    "name": WEATHER["name"],
    "description": WEATHER["description"],
    "parameters": WEATHER["input_schema"],
}
FAST_RETRY = {"max_retries": 2, "retry_backoff_initial": 1, "retry_backoff_max": 5}


@pytest.fixture(scope="module")
def anthropic_app() -> AnthropicUpstream:
    return AnthropicUpstream()


@pytest.fixture(scope="module")
def gateway(anthropic_app: AnthropicUpstream, upstream_url: str) -> Iterator[str]:
    claude = serve(anthropic_app)
    config = {
        "providers": {
            "anthropic": {
                "keys": [{"name": "ant", "value": "sk-ant-test"}],
                "network_config": {"base_url": claude.url, **FAST_RETRY},
            },
            "openai": {
                "keys": [{"name": "primary", "value": "sk-test-primary"}],
                "network_config": {"base_url": upstream_url, **FAST_RETRY},
            },
            "mock": {"keys": [{"value": "unused", "models": ["mock-1"]}]},
        }
    }
    live = serve(create_app(GatewayConfig.from_dict(config)))
    yield live.url
    live.stop()
    claude.stop()


@pytest.fixture
def claude(anthropic_app: AnthropicUpstream) -> AnthropicUpstream:
    anthropic_app.state.reset()
    return anthropic_app


@pytest.fixture
async def ant(gateway: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=gateway + "/anthropic", api_key="sk-any", max_retries=0
    ) as c:
        yield c


@pytest.fixture
async def oai(gateway: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gateway + "/v1", api_key="sk-any", max_retries=0) as c:
        yield c


HI: Any = [{"role": "user", "content": "Hi"}]


# =========================================================================================================
# /anthropic with the anthropic SDK
# =========================================================================================================


async def test_messages_create_passes_the_body_through(
    ant: anthropic.AsyncAnthropic, claude: AnthropicUpstream
) -> None:
    raw = await ant.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=100,
        messages=HI,
        extra_body={"fallbacks": ["openai/gpt-4o"]},
        extra_headers={"anthropic-beta": "some-beta-2025"},
    )
    message = await raw.parse()
    assert message == anthropic.types.Message.model_validate(message_body({"model": MODEL, "messages": HI}))
    assert message.content[0].type == "text" and message.content[0].text == ANSWER
    sent = claude.state.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.body == {"model": MODEL, "max_tokens": 100, "messages": HI}
    assert sent.headers["x-api-key"] == "sk-ant-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "some-beta-2025"
    assert raw.headers["x-bifrost-provider"] == "anthropic"
    assert float(raw.headers["x-bifrost-cost-usd"]) == pytest.approx(COST)
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "49"


async def test_messages_stream_with_thinking_and_tools(
    ant: anthropic.AsyncAnthropic, claude: AnthropicUpstream
) -> None:
    async with ant.messages.stream(
        model=MODEL,
        max_tokens=4000,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert [block.model_dump(exclude_none=True) for block in final.content] == [
        {"type": "thinking", "thinking": THINKING, "signature": SIGNATURE},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": TOOL_ID, "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (
        20,
        10,
        100,
    )
    assert claude.state.requests[-1].body["stream"] is True


async def test_beta_messages_as_claude_code_sends_them(
    ant: anthropic.AsyncAnthropic, claude: AnthropicUpstream
) -> None:
    """The SDK's beta.messages (what Claude Code uses): betas travel as anthropic-beta, thinking and the
    body pass untouched, streams and counts too."""
    betas: Any = ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    message = await ant.beta.messages.create(
        model=MODEL, max_tokens=2000, messages=HI, betas=betas, thinking=thinking
    )
    assert message.content[0].type == "thinking" and message.content[-1].type == "text"
    sent = claude.state.requests[-1]
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,context-1m-2025-08-07"
    assert sent.body["thinking"] == thinking
    async with ant.beta.messages.stream(
        model=MODEL, max_tokens=2000, messages=HI, betas=betas, thinking=thinking
    ) as stream:
        final = await stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert claude.state.requests[-1].headers["anthropic-beta"].startswith("interleaved-thinking")
    counted = await ant.beta.messages.count_tokens(model=MODEL, messages=HI, betas=betas)
    assert counted.input_tokens == 100
    assert claude.state.requests[-1].headers["anthropic-beta"].startswith("interleaved-thinking")


async def test_count_tokens_native(ant: anthropic.AsyncAnthropic, claude: AnthropicUpstream) -> None:
    body: Any = {"model": MODEL, "messages": HI, "system": "Be brief.", "tools": [WEATHER]}
    counted = await ant.messages.count_tokens(**body)
    assert counted.input_tokens == count_tokens(body) == 111
    sent = claude.state.requests[-1]
    assert (sent.path, sent.body) == ("/v1/messages/count_tokens", body)


async def test_openai_model_through_anthropic_sdk(ant: anthropic.AsyncAnthropic, upstream: Upstream) -> None:
    raw = await ant.messages.with_raw_response.create(
        model="openai/gpt-4o-mini",
        max_tokens=100,
        system="Be brief.",
        messages=HI,
        metadata={"user_id": "u-1"},
    )
    message = await raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == OPENAI_ANSWER
    assert message.model == "openai/gpt-4o-mini" and message.stop_reason == "end_turn"
    # OpenAI's 12 input tokens (2 cached) in Anthropic's terms.
    assert (
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
        message.usage.output_tokens,
    ) == (
        10,
        2,
        5,
    )
    assert float(raw.headers["x-bifrost-cost-usd"]) == pytest.approx(GPT_4O_MINI_COST)
    sent = upstream.state.requests[-1]
    assert sent.path == "/v1/responses"
    assert sent.body == {
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": "Hi"}],
        "instructions": "Be brief.",
        "max_output_tokens": 100,
        "safety_identifier": "u-1",
    }


async def test_openai_model_stream_through_anthropic_sdk(ant: anthropic.AsyncAnthropic) -> None:
    async with ant.messages.stream(model="openai/gpt-4o-mini", max_tokens=100, messages=HI) as stream:
        text = "".join([chunk async for chunk in stream.text_stream])
        final = await stream.get_final_message()
    assert text == OPENAI_ANSWER
    assert final.content[0].type == "text" and final.content[0].text == OPENAI_ANSWER
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 5)


async def test_mock_model_through_anthropic_sdk(ant: anthropic.AsyncAnthropic) -> None:
    message = await ant.messages.create(model="mock/mock-1", max_tokens=50, messages=HI)
    assert message.content[0].type == "text" and message.content[0].text.startswith("[mock]")


async def test_count_tokens_for_other_providers_is_a_local_count(
    ant: anthropic.AsyncAnthropic, gateway: str
) -> None:
    counted = await ant.messages.count_tokens(model="openai/gpt-4o", messages=HI)
    async with httpx.AsyncClient() as h:
        r = await h.post(
            gateway + "/v1/responses/input_tokens",
            json={"model": "openai/gpt-4o", "input": [{"role": "user", "content": "Hi"}]},
        )
    assert (
        counted.input_tokens == r.json()["input_tokens"] == expected_messages("o200k_base", ("user", "Hi"))[0]
    )


async def test_fallback_from_openai_to_anthropic_under_anthropic(
    ant: anthropic.AsyncAnthropic, claude: AnthropicUpstream
) -> None:
    raw = await ant.messages.with_raw_response.create(
        model="openai/status-500",
        max_tokens=64,
        messages=HI,
        extra_body={"fallbacks": [f"anthropic/{MODEL}"]},
    )
    assert (await raw.parse()).content[0].type == "text"
    assert raw.headers["x-bifrost-provider"] == "anthropic"
    assert raw.headers["x-bifrost-fallback-index"] == "1"
    # The fallback got the client's own Messages body, not a translation.
    assert claude.state.requests[-1].body == {"model": MODEL, "max_tokens": 64, "messages": HI}


async def test_errors_use_anthropic_shape(ant: anthropic.AsyncAnthropic, claude: AnthropicUpstream) -> None:
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        await ant.messages.create(model="status-529", max_tokens=10, messages=HI)
    assert overloaded.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "anthropic says 529"},
    }
    assert len(claude.state.requests) == 3  # the first try and both retries
    with pytest.raises(anthropic.BadRequestError) as bad:
        await ant.messages.create(model="groq/llama", max_tokens=10, messages=HI)
    assert bad.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "failed to get config for provider: groq is not configured in this gateway",
        },
    }
    with pytest.raises(anthropic.BadRequestError, match="top_k cannot be sent"):
        await ant.messages.create(model="openai/gpt-4o", max_tokens=10, messages=HI, extra_body={"top_k": 3})


async def test_mid_stream_error_event(ant: anthropic.AsyncAnthropic, gateway: str) -> None:
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        async with ant.messages.stream(model="error-mid-stream", max_tokens=10, messages=HI) as stream:
            async for _ in stream:
                pass
    async with httpx.AsyncClient() as h:
        r = await h.post(
            gateway + "/anthropic/v1/messages",
            json={"model": "truncated-stream", "max_tokens": 10, "messages": HI, "stream": True},
        )
    last = [b for b in r.text.split("\n\n") if b][-1]
    assert last.startswith("event: error\ndata: ")
    assert orjson.loads(last.split("data: ", 1)[1])["error"]["type"] == "api_error"


async def test_invalid_json_and_missing_model(gateway: str) -> None:
    async with httpx.AsyncClient() as h:
        broken = await h.post(
            gateway + "/anthropic/v1/messages", content=b"{", headers={"content-type": "application/json"}
        )
        missing = await h.post(gateway + "/anthropic/v1/messages/count_tokens", json={"messages": HI})
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    assert missing.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "model is required"},
    }


# =========================================================================================================
# /v1 with the openai SDK and anthropic/... models
# =========================================================================================================


async def test_responses_create_with_cache_pricing(
    oai: openai.AsyncOpenAI, claude: AnthropicUpstream
) -> None:
    resp = await oai.responses.create(
        model=f"anthropic/{MODEL}", input="Hi", instructions="Be brief.", max_output_tokens=300
    )
    assert resp.output_text == ANSWER and resp.status == "completed"
    body = resp.model_dump(mode="json")
    usage = body["usage"]
    assert usage["input_tokens"] == 170 and usage["output_tokens"] == 10
    assert usage["input_tokens_details"]["cached_tokens"] == 100
    assert usage["input_tokens_details"]["cached_write_tokens"] == 50
    assert usage["cost"]["total_cost"] == pytest.approx(COST)
    assert body["extra_fields"]["provider"] == "anthropic"
    assert claude.state.requests[-1].body == {
        "model": MODEL,
        "max_tokens": 300,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }


async def test_responses_stream_with_reasoning(oai: openai.AsyncOpenAI, claude: AnthropicUpstream) -> None:
    stream = await oai.responses.create(
        model=f"anthropic/{MODEL}", input="Hi", stream=True, reasoning={"effort": "low"}
    )
    events = [event async for event in stream]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    final = events[-1].response
    assert final.output_text == ANSWER
    reasoning = final.output[0]
    assert reasoning.type == "reasoning" and reasoning.encrypted_content == SIGNATURE
    usage = final.model_dump(mode="json")["usage"]
    assert usage["output_tokens_details"]["reasoning_tokens"] == 4
    assert usage["cost"]["total_cost"] == pytest.approx(COST)
    assert claude.state.requests[-1].body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_responses_tool_call_round_trip_keeps_thinking(
    oai: openai.AsyncOpenAI, claude: AnthropicUpstream
) -> None:
    first = await oai.responses.create(
        model=f"anthropic/{MODEL}",
        input="Weather in Paris?",
        tools=[OPENAI_WEATHER],
        reasoning={"effort": "low"},
    )
    call = next(item for item in first.output if item.type == "function_call")
    assert (call.call_id, call.name, orjson.loads(call.arguments)) == (
        TOOL_ID,
        "get_weather",
        {"city": "Paris"},
    )
    history: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 22C"},
    ]
    second = await oai.responses.create(
        model=f"anthropic/{MODEL}", input=history, tools=[OPENAI_WEATHER], reasoning={"effort": "low"}
    )
    assert second.output_text == TOOL_ANSWER
    assistant, results = claude.state.requests[-1].body["messages"][1:]
    assert assistant["content"][0] == {"type": "thinking", "thinking": THINKING, "signature": SIGNATURE}
    assert assistant["content"][-1] == {
        "type": "tool_use",
        "id": TOOL_ID,
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert results == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": TOOL_ID, "content": "Sunny, 22C"}],
    }


def _cited(parts: list[Any]) -> list[tuple[str, str]]:
    return [(a.url, part.text[a.start_index : a.end_index]) for part in parts for a in part.annotations]


async def test_web_search_answers_keep_the_search_and_its_citations(oai: openai.AsyncOpenAI) -> None:
    whole = await oai.responses.create(model="anthropic/web-search", input="Tallest building?")
    async with oai.responses.stream(model="anthropic/web-search", input="Tallest building?") as stream:
        events = [event async for event in stream]
        streamed = await stream.get_final_response()
    for answer in (whole, streamed):
        search, message = answer.output
        assert search.type == "web_search_call" and search.status == "completed"
        assert search.action.model_dump(exclude_none=True) == {
            "type": "search",
            "query": "tallest building",
            "sources": [{"type": "url", "url": SEARCH_URL}],
        }
        assert message.type == "message" and answer.output_text == CITED_TEXT
        assert _cited(message.content) == [(SEARCH_URL, "the Burj Khalifa")]
    kinds = [e.type for e in events]
    assert "response.web_search_call.completed" in kinds and "response.output_text.annotation.added" in kinds


async def test_chat_web_search_answers_carry_annotations(oai: openai.AsyncOpenAI) -> None:
    chat = await oai.chat.completions.create(model="anthropic/web-search", messages=HI)
    message = chat.choices[0].message
    assert message.content == CITED_TEXT
    assert message.annotations is not None
    cited = [(a.url_citation.url, CITED_TEXT[a.url_citation.start_index : a.url_citation.end_index])
             for a in message.annotations]  # fmt: skip
    assert cited == [(SEARCH_URL, "the Burj Khalifa")]
    stream = await oai.chat.completions.create(model="anthropic/web-search", messages=HI, stream=True)
    deltas = [chunk.choices[0].delta async for chunk in stream if chunk.choices]
    assert "".join(d.content or "" for d in deltas) == CITED_TEXT
    # The SDK keeps the field it does not declare, as it does for OpenAI's own searched answers.
    annotations = [a for d in deltas for a in (d.model_extra or {}).get("annotations", [])]
    assert annotations == [a.model_dump() for a in message.annotations]


async def test_cache_breakpoints_from_openai_clients_reach_anthropic(
    oai: openai.AsyncOpenAI, claude: AnthropicUpstream
) -> None:
    breakpoint_ = {"type": "ephemeral"}
    manual: Any = {"type": "text", "text": "A long manual.", "cache_control": breakpoint_}
    await oai.chat.completions.create(
        model=f"anthropic/{MODEL}", messages=[{"role": "system", "content": [manual]}, *HI]
    )
    assert claude.state.requests[-1].body["system"] == [manual]
    part: Any = {"type": "input_text", "text": "A long document.", "cache_control": breakpoint_}
    await oai.responses.create(model=f"anthropic/{MODEL}", input=[{"role": "user", "content": [part]}])
    assert claude.state.requests[-1].body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "A long document.", "cache_control": breakpoint_}],
        }
    ]


async def test_chat_completions_with_and_without_stream(oai: openai.AsyncOpenAI) -> None:
    chat = await oai.chat.completions.create(model=f"anthropic/{MODEL}", messages=HI)
    assert chat.choices[0].message.content == ANSWER and chat.choices[0].finish_reason == "stop"
    assert chat.model_dump(mode="json")["usage"]["cost"]["total_cost"] == pytest.approx(COST)
    stream = await oai.chat.completions.create(
        model=f"anthropic/{MODEL}", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    usage = chunks[-1].model_dump(mode="json")["usage"]
    assert usage["prompt_tokens"] == 170 and usage["cost"]["total_cost"] == pytest.approx(COST)


async def test_chat_tool_call_round_trip(oai: openai.AsyncOpenAI, claude: AnthropicUpstream) -> None:
    tools: Any = [{"type": "function", "function": {k: v for k, v in OPENAI_WEATHER.items() if k != "type"}}]
    stream = await oai.chat.completions.create(
        model=f"anthropic/{MODEL}",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=tools,
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert (
        calls[0].id == TOOL_ID and calls[0].function is not None and calls[0].function.name == "get_weather"
    )
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function is not None)
    assert orjson.loads(arguments) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    messages: Any = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": TOOL_ID,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": TOOL_ID, "content": "Sunny"},
    ]
    answer = await oai.chat.completions.create(model=f"anthropic/{MODEL}", messages=messages, tools=tools)
    assert answer.choices[0].message.content == TOOL_ANSWER
    assert claude.state.requests[-1].body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": TOOL_ID, "content": "Sunny"}],
    }


async def test_text_completions(oai: openai.AsyncOpenAI) -> None:
    done = await oai.completions.create(model=f"anthropic/{MODEL}", prompt="Say hi", max_tokens=20)
    assert done.choices[0].text == ANSWER
    stream = await oai.completions.create(
        model=f"anthropic/{MODEL}", prompt="Say hi", max_tokens=20, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == ANSWER


async def test_input_tokens_count_for_an_anthropic_model(
    oai: openai.AsyncOpenAI, claude: AnthropicUpstream
) -> None:
    counted = await oai.responses.input_tokens.count(
        model=f"anthropic/{MODEL}", input="Hi", instructions="Brief."
    )
    assert counted.input_tokens == 101
    sent = claude.state.requests[-1]
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.body == {
        "model": MODEL,
        "system": "Brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }


async def test_529_is_retried_on_the_same_provider(
    oai: openai.AsyncOpenAI, claude: AnthropicUpstream
) -> None:
    resp = await oai.responses.create(model="anthropic/flaky-once-1", input="Hi")
    assert resp.output_text == ANSWER
    assert len(claude.state.requests) == 2


async def test_failing_openai_model_falls_back_to_anthropic(
    oai: openai.AsyncOpenAI, upstream: Upstream
) -> None:
    resp = await oai.responses.create(
        model="openai/status-500", input="Hi", extra_body={"fallbacks": [f"anthropic/{MODEL}"]}
    )
    assert resp.output_text == ANSWER
    extra = resp.model_dump(mode="json")["extra_fields"]
    assert extra["provider"] == "anthropic" and extra["routing_info"]["is_fallback"] is True
    assert resp.model_dump(mode="json")["usage"]["cost"]["total_cost"] == pytest.approx(COST)
    assert len(upstream.state.requests) == 3  # openai: the first try and both retries of its 500


async def test_mid_stream_error_reaches_the_openai_sdk(oai: openai.AsyncOpenAI) -> None:
    stream = await oai.chat.completions.create(model="anthropic/error-mid-stream", messages=HI, stream=True)
    with pytest.raises(openai.APIError, match="Overloaded"):
        async for _ in stream:
            pass


@pytest.mark.parametrize("status", [529, 429])
async def test_overloaded_and_rate_limited_anthropic_falls_back(
    oai: openai.AsyncOpenAI, claude: AnthropicUpstream, status: int
) -> None:
    resp = await oai.responses.create(
        model=f"anthropic/status-{status}", input="Hi", extra_body={"fallbacks": ["openai/gpt-4o-mini"]}
    )
    assert resp.output_text == OPENAI_ANSWER
    assert resp.model_dump(mode="json")["extra_fields"]["routing_info"]["primary_provider"] == "anthropic"
    assert len(claude.state.requests) == 3  # retried before falling back


async def test_rate_limit_keeps_anthropic_error_type(ant: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        await ant.messages.create(model="status-429", max_tokens=10, messages=HI)
    assert info.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "anthropic says 429"},
    }
