"""Gemini and Azure OpenAI end to end: the official openai SDK against a live gateway under uvicorn.

The gateway forwards ``gemini/...`` to a Gemini-shaped server (tests/gemini_upstream.py) and
``azure/...`` to Azure-shaped paths in front of the OpenAI-shaped server (tests/upstream.py), both over
loopback; what reached them is checked from their request records.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import orjson
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.config import ConfigError
from bifrost_asgi.providers.azure import AzureProvider
from bifrost_asgi.providers.gemini import gemini_error
from tests.conftest import serve
from tests.gemini_upstream import ANSWER, THOUGHT, GeminiUpstream, error_body, signature
from tests.schemas import assert_valid, bifrost_error_validator, count_tokens_validator, responses_validator
from tests.test_count_tokens_http import expected_messages
from tests.upstream import ANSWER as OPENAI_ANSWER
from tests.upstream import GPT_4O_COST, Upstream

Obj = dict[str, Any]
FLASH = "gemini-2.5-flash"
# Typed loosely: the SDK wants its TypedDicts, and these are their plain-dict equivalents.
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
CHAT_WEATHER: Any = {
    "type": "function",
    "function": {k: WEATHER[k] for k in ("name", "description", "parameters")},
}
# gemini/gemini-2.5-flash in the shipped catalog: input 3e-7, cache read 3e-8, output and reasoning 2.5e-6.
# USAGE is 120 prompt tokens (100 cached), 8 answer and 5 thought tokens.
GEMINI_COST = 20 * 3e-7 + 100 * 3e-8 + 8 * 2.5e-6 + 5 * 2.5e-6


# -- Azure's paths in front of the OpenAI-shaped upstream ---------------------------------------------

_AZURE_PATHS = re.compile(r"^/openai/deployments/([^/]+)/(chat/completions|completions)$")


@dataclass
class AzureSeen:
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class AzureShim:
    """Answers Azure OpenAI's URLs by rewriting them to the OpenAI-shaped app's ``/v1/...`` paths."""

    app: Upstream
    seen: list[AzureSeen] = field(default_factory=list)

    async def __call__(self, scope: Obj, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        query = scope["query_string"].decode()
        self.seen.append(AzureSeen(scope["path"], query, headers))
        target = _openai_path(scope["path"])
        if target is None or "api-version=" not in query:
            await _azure_error(
                send, 404, "DeploymentNotFound", "The API deployment for this resource does not exist."
            )
        elif headers.get("api-key") != "az-key" or "authorization" in headers:
            await _azure_error(send, 401, "401", "Access denied due to invalid subscription key.")
        else:
            await self.app({**scope, "path": target, "raw_path": target.encode()}, receive, send)


def _openai_path(path: str) -> str | None:
    if path == "/openai/v1/responses":
        return "/v1/responses"
    match = _AZURE_PATHS.match(path)
    return f"/v1/{match.group(2)}" if match else None


async def _azure_error(send: Any, status: int, code: str, message: str) -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
    )
    await send(
        {"type": "http.response.body", "body": orjson.dumps({"error": {"code": code, "message": message}})}
    )


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemini_app() -> GeminiUpstream:
    return GeminiUpstream()


@pytest.fixture(scope="module")
def gemini_url(gemini_app: GeminiUpstream) -> Iterator[str]:
    live = serve(gemini_app)
    yield live.url
    live.stop()


@pytest.fixture(scope="module")
def azure_shim(upstream_app: Upstream) -> AzureShim:
    return AzureShim(upstream_app)


@pytest.fixture(scope="module")
def azure_url(azure_shim: AzureShim) -> Iterator[str]:
    live = serve(azure_shim)
    yield live.url
    live.stop()


def _config(upstream_url: str, gemini_url: str, azure_url: str) -> Obj:
    fast = {"retry_backoff_initial": 1, "retry_backoff_max": 5}
    gemini_net = {"base_url": gemini_url, "max_retries": 2, **fast}
    azure_key = {"endpoint": azure_url, "deployments": {"gpt-4o": "gpt4o-prod"}, "api_version": "2024-10-21"}
    return {
        "providers": {
            "openai": {"keys": [{"value": "sk-test"}], "network_config": {"base_url": upstream_url, **fast}},
            "gemini": {"keys": [{"name": "g", "value": "gm-key"}], "network_config": gemini_net},
            # The dead key is all but certain to be picked first, so the rotation is exercised.
            "gemrotate": {
                "kind": "gemini",
                "keys": [
                    {"name": "dead", "value": "bad-gemini-key", "weight": 1e9},
                    {"name": "live", "value": "gm-key", "weight": 1e-9},
                ],
                "network_config": gemini_net,
            },
            "gembad": {"kind": "gemini", "keys": [{"value": "bad-gemini-key"}], "network_config": gemini_net},
            "gemlimited": {
                "kind": "gemini",
                "keys": [{"value": "limited-gemini-key"}],
                "network_config": {**gemini_net, "max_retries": 1},
            },
            "azure": {"keys": [{"name": "az", "value": "az-key", "azure_key_config": azure_key}]},
        }
    }


@pytest.fixture(scope="module")
def gateway(upstream_url: str, gemini_url: str, azure_url: str) -> Iterator[str]:
    live = serve(create_app(GatewayConfig.from_dict(_config(upstream_url, gemini_url, azure_url))))
    yield live.url
    live.stop()


@pytest.fixture
def gemini(gemini_app: GeminiUpstream) -> GeminiUpstream:
    gemini_app.state.reset()
    return gemini_app


@pytest.fixture
def azure(azure_shim: AzureShim, upstream: Upstream) -> AzureShim:
    azure_shim.seen.clear()
    return azure_shim


@pytest.fixture
async def client(gateway: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{gateway}/v1", api_key="sk-anything", max_retries=0) as c:
        yield c


def dump(obj: Any) -> Obj:
    data: Obj = obj.model_dump(mode="json")
    return data


async def post(gateway: str, path: str, body: Obj) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as h:
        return await h.post(gateway + path, json=body)


# -- Gemini: Responses ----------------------------------------------------------------------------------


async def test_gemini_responses_create(client: openai.AsyncOpenAI, gemini: GeminiUpstream) -> None:
    resp = await client.responses.create(
        model=f"gemini/{FLASH}", input="Say hello", instructions="Be brief.", max_output_tokens=64
    )
    assert resp.output_text == ANSWER
    body = dump(resp)
    assert_valid(responses_validator(), body)
    assert body["extra_fields"]["provider"] == "gemini"
    assert body["extra_fields"]["model_requested"] == FLASH
    usage = body["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (120, 13, 133)
    assert usage["input_tokens_details"]["cached_tokens"] == 100
    assert usage["output_tokens_details"]["reasoning_tokens"] == 5
    assert usage["cost"]["total_cost"] == pytest.approx(GEMINI_COST)
    assert usage["cost"]["reasoning_tokens_cost"] == pytest.approx(5 * 2.5e-6)
    (sent,) = gemini.state.requests
    assert sent.path == f"/v1beta/models/{FLASH}:generateContent"
    assert sent.headers["x-goog-api-key"] == "gm-key"
    assert "authorization" not in sent.headers
    assert sent.body == {
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 64},
    }


async def test_gemini_responses_stream_with_reasoning(
    client: openai.AsyncOpenAI, gemini: GeminiUpstream
) -> None:
    stream = await client.responses.create(
        model=f"gemini/{FLASH}",
        input="Say hello",
        reasoning={"effort": "low", "summary": "auto"},
        stream=True,
    )
    events = [event async for event in stream]
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == ANSWER
    summary = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    assert summary == [THOUGHT]
    completed = dump(events[-1])
    assert completed["response"]["status"] == "completed"
    assert completed["response"]["usage"]["cost"]["total_cost"] == pytest.approx(GEMINI_COST)
    assert [dump(e)["extra_fields"]["chunk_index"] for e in events] == list(range(len(events)))
    (sent,) = gemini.state.requests
    assert (sent.path, sent.query) == (f"/v1beta/models/{FLASH}:streamGenerateContent", "alt=sse")
    assert sent.body["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True}
    }


async def test_gemini_reasoning_effort_alone_returns_a_reasoning_item(
    client: openai.AsyncOpenAI, gemini: GeminiUpstream
) -> None:
    resp = await client.responses.create(
        model=f"gemini/{FLASH}", input="Say hello", reasoning={"effort": "low"}
    )
    reasoning = next(item for item in resp.output if item.type == "reasoning")
    assert [s.text for s in reasoning.summary] == [THOUGHT]
    assert gemini.state.requests[-1].body["generationConfig"]["thinkingConfig"]["includeThoughts"] is True


async def test_gemini_responses_tool_call_round_trip(
    client: openai.AsyncOpenAI, gemini: GeminiUpstream
) -> None:
    first = await client.responses.create(model=f"gemini/{FLASH}", input="Weather in Paris?", tools=[WEATHER])
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert (call.name, call.arguments) == ("get_weather", '{"city":"Paris"}')
    history: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        *[dump(item) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "clear"}'},
    ]
    second = await client.responses.create(model=f"gemini/{FLASH}", input=history, tools=[WEATHER])
    assert second.output_text == 'Weather report: [{"name":"get_weather","response":{"sky":"clear"}}]'
    sent = gemini.state.requests[-1].body
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]
    # Gemini's thought signature came back with the call it belongs to.
    assert sent["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": signature("Paris"),
                }
            ],
        },
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "clear"}}}],
        },
    ]


# -- Gemini: chat and text completions --------------------------------------------------------------------


async def test_gemini_chat_completions(client: openai.AsyncOpenAI, gemini: GeminiUpstream) -> None:
    messages: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    resp = await client.chat.completions.create(model=f"gemini/{FLASH}", messages=messages, temperature=0.3)
    stream = await client.chat.completions.create(
        model=f"gemini/{FLASH}", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert resp.choices[0].message.content == ANSWER
    assert resp.choices[0].finish_reason == "stop"
    body = dump(resp)
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 100
    assert body["usage"]["cost"]["total_cost"] == pytest.approx(GEMINI_COST)
    assert body["extra_fields"]["request_type"] == "chat_completion"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    last = dump(chunks[-1])
    assert last["usage"]["completion_tokens"] == 13
    assert last["usage"]["cost"]["total_cost"] == pytest.approx(GEMINI_COST)
    assert last["extra_fields"]["request_type"] == "chat_completion_stream"
    assert gemini.state.requests[0].body["generationConfig"] == {"temperature": 0.3}
    assert gemini.state.requests[0].body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}


async def test_gemini_chat_parallel_tool_calls_streamed(
    client: openai.AsyncOpenAI, gemini: GeminiUpstream
) -> None:
    question: Any = {"role": "user", "content": "Weather in Paris and Tokyo?"}
    stream = await client.chat.completions.create(
        model=f"gemini/{FLASH}", messages=[question], tools=[CHAT_WEATHER], stream=True
    )
    chunks = [chunk async for chunk in stream]
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [(tc.index, tc.function.arguments) for tc in calls if tc.function] == [
        (0, '{"city":"Paris"}'),
        (1, '{"city":"Tokyo"}'),
    ]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assistant: Any = {
        "role": "assistant",
        "tool_calls": [
            {
                "id": tc.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": tc.function.arguments},
            }
            for tc in calls
            if tc.function
        ],
    }
    results: Any = [
        {"role": "tool", "tool_call_id": calls[1].id, "content": "rain"},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sun"},
    ]
    final = await client.chat.completions.create(
        model=f"gemini/{FLASH}", messages=[question, assistant, *results], tools=[CHAT_WEATHER]
    )
    assert final.choices[0].message.content is not None
    assert '"rain"' in final.choices[0].message.content and '"sun"' in final.choices[0].message.content
    history = gemini.state.requests[-1].body["contents"]
    assert [p["thoughtSignature"] for p in history[1]["parts"]] == [signature("Paris"), signature("Tokyo")]
    assert [p["functionResponse"]["response"] for p in history[2]["parts"]] == [
        {"output": "rain"},
        {"output": "sun"},
    ]


async def test_gemini_call_arguments_streamed_in_parts_arrive_as_one_call(
    client: openai.AsyncOpenAI, gemini: GeminiUpstream
) -> None:
    model = "gemini/gemini-3-pro-partial-args"
    question: Any = {"role": "user", "content": "Weather in Paris and Tokyo?"}
    stream = await client.chat.completions.create(
        model=model, messages=[question], tools=[CHAT_WEATHER], stream=True
    )
    calls: dict[int, list[str]] = {}
    async for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            entry = calls.setdefault(tc.index, ["", ""])
            entry[0] += tc.function.name or "" if tc.function else ""
            entry[1] += tc.function.arguments or "" if tc.function else ""
    assert calls == {0: ["get_weather", '{"city":"Paris"}'], 1: ["get_weather", '{"city":"Tokyo"}']}
    async with client.responses.stream(
        model=model, input="Weather in Paris and Tokyo?", tools=[WEATHER]
    ) as s:
        final = await s.get_final_response()
    assert [(i.type, getattr(i, "arguments", None)) for i in final.output] == [
        ("function_call", '{"city":"Paris"}'),
        ("function_call", '{"city":"Tokyo"}'),
    ]


async def test_gemini_text_completions(client: openai.AsyncOpenAI, gemini: GeminiUpstream) -> None:
    resp = await client.completions.create(model=f"gemini/{FLASH}", prompt="Once upon", max_tokens=20)
    stream = await client.completions.create(model=f"gemini/{FLASH}", prompt="Once upon", stream=True)
    chunks = [chunk async for chunk in stream]
    assert resp.choices[0].text == ANSWER
    assert "".join(c.choices[0].text for c in chunks if c.choices) == ANSWER
    assert dump(chunks[-1])["extra_fields"]["request_type"] == "text_completion_stream"
    assert gemini.state.requests[0].body == {
        "contents": [{"role": "user", "parts": [{"text": "Once upon"}]}],
        "generationConfig": {"maxOutputTokens": 20},
    }


# -- Gemini: count tokens -------------------------------------------------------------------------------


async def test_gemini_count_tokens_uses_count_tokens(
    client: openai.AsyncOpenAI, gemini: GeminiUpstream
) -> None:
    counted = await client.responses.input_tokens.count(
        model=f"gemini/{FLASH}",
        input="How is the weather in Paris today",
        instructions="Be brief.",
        tools=[WEATHER],
    )
    body = counted.model_dump(mode="json", exclude_unset=True)
    assert_valid(count_tokens_validator(), body)
    assert body["object"] == "response.input_tokens"
    assert "tokens" not in body  # Gemini counts; it does not tokenize for us
    # 7 + 2 words, plus 3 for the one function declaration.
    assert body["input_tokens"] == 12
    assert body["input_tokens_details"]["cached_read_tokens"] == 0
    assert body["extra_fields"]["provider"] == "gemini"
    assert body["extra_fields"]["is_estimate"] is False
    (sent,) = gemini.state.requests
    assert sent.path == f"/v1beta/models/{FLASH}:countTokens"
    request = sent.body["generateContentRequest"]
    assert request["model"] == f"models/{FLASH}"
    assert request["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert len(request["tools"][0]["functionDeclarations"]) == 1


# -- Gemini: errors, keys, fallbacks --------------------------------------------------------------------


async def test_gemini_invalid_argument_is_the_callers_and_skips_fallbacks(
    gateway: str, gemini: GeminiUpstream
) -> None:
    body = {"model": "gemini/status-400", "input": "x", "fallbacks": ["openai/gpt-4o"]}
    r = await post(gateway, "/v1/responses", body)
    assert r.status_code == 400
    error = r.json()
    assert_valid(bifrost_error_validator(), error)
    assert error["error"] == {
        "message": "Invalid JSON payload received.",
        "type": "INVALID_ARGUMENT",
        "code": "400",
    }
    assert error["extra_fields"]["provider"] == "gemini"
    assert len(gemini.state.requests) == 1


async def test_gemini_503_is_retried_then_returned(gateway: str, gemini: GeminiUpstream) -> None:
    r = await post(
        gateway,
        "/v1/chat/completions",
        {"model": "gemini/status-503", "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status_code == 503
    assert r.json()["error"]["type"] == "UNAVAILABLE"
    assert len(gemini.state.requests) == 3  # the first try and max_retries (2) more


async def test_gemini_429_is_retried_then_returned(gateway: str, gemini: GeminiUpstream) -> None:
    r = await post(gateway, "/v1/responses", {"model": "gemlimited/gemini-2.5-flash", "input": "x"})
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "RESOURCE_EXHAUSTED"
    assert len(gemini.state.requests) == 2


async def test_gemini_bad_key_is_retired_and_the_next_key_serves(
    gateway: str, gemini: GeminiUpstream
) -> None:
    r = await post(gateway, "/v1/responses", {"model": "gemrotate/gemini-2.5-flash", "input": "x"})
    assert r.status_code == 200, r.text
    assert r.json()["extra_fields"]["routing_info"]["key"] == "live"
    assert [req.headers["x-goog-api-key"] for req in gemini.state.requests] == ["bad-gemini-key", "gm-key"]


async def test_gemini_bad_key_everywhere_falls_back(gateway: str, gemini: GeminiUpstream) -> None:
    alone = await post(gateway, "/v1/responses", {"model": "gembad/gemini-2.5-flash", "input": "x"})
    assert alone.status_code == 502
    assert alone.json()["error"]["type"] == "upstream_credentials_exhausted"
    assert "API key not valid" in alone.json()["error"]["message"]
    body = {"model": "gembad/gemini-2.5-flash", "input": "x", "fallbacks": ["gemini/gemini-2.5-flash"]}
    r = await post(gateway, "/v1/responses", body)
    assert r.status_code == 200, r.text
    assert r.json()["extra_fields"]["provider"] == "gemini"


async def test_fallback_from_failing_openai_to_gemini(
    client: openai.AsyncOpenAI, upstream: Upstream, gemini: GeminiUpstream
) -> None:
    resp = await client.chat.completions.create(
        model="openai/status-500",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"fallbacks": [f"gemini/{FLASH}"]},
    )
    assert resp.choices[0].message.content == ANSWER
    extra = dump(resp)["extra_fields"]
    assert extra["provider"] == "gemini"
    assert extra["routing_info"]["is_fallback"] is True
    assert (extra["routing_info"]["primary_provider"], extra["routing_info"]["primary_model"]) == (
        "openai",
        "status-500",
    )
    assert [r.body["model"] for r in upstream.state.requests] == ["status-500"]
    assert "fallbacks" not in gemini.state.requests[0].body
    stream = await client.responses.create(
        model="openai/status-500", input="hi", stream=True, extra_body={"fallbacks": [f"gemini/{FLASH}"]}
    )
    events = [event async for event in stream]
    assert events[-1].type == "response.completed"
    assert dump(events[-1])["extra_fields"]["provider"] == "gemini"


# -- Azure --------------------------------------------------------------------------------------------------


async def test_azure_responses_use_the_v1_api_with_the_deployment(
    client: openai.AsyncOpenAI, azure: AzureShim, upstream: Upstream
) -> None:
    resp = await client.responses.create(model="azure/gpt-4o", input="Say hello")
    assert resp.output_text == OPENAI_ANSWER
    body = dump(resp)
    assert body["extra_fields"]["model_deployment"] == "gpt4o-prod"
    assert body["extra_fields"]["provider"] == "azure"
    # azure/gpt-4o in the catalog: input 2.5e-6, cache read 1.25e-6, output 1e-5; 12 in (2 cached), 5 out.
    assert body["usage"]["cost"]["total_cost"] == pytest.approx(GPT_4O_COST)
    (seen,) = azure.seen
    assert (seen.path, seen.query) == ("/openai/v1/responses", "api-version=preview")
    assert seen.headers["api-key"] == "az-key"
    assert upstream.state.requests[-1].body == {"model": "gpt4o-prod", "input": "Say hello"}
    stream = await client.responses.create(model="azure/gpt-4o", input="Say hello", stream=True)
    events = [event async for event in stream]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == OPENAI_ANSWER
    assert dump(events[-1])["extra_fields"]["model_deployment"] == "gpt4o-prod"


async def test_azure_chat_goes_to_the_deployment_path(
    client: openai.AsyncOpenAI, azure: AzureShim, upstream: Upstream
) -> None:
    resp = await client.chat.completions.create(
        model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    stream = await client.chat.completions.create(
        model="azure/gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert resp.choices[0].message.content == OPENAI_ANSWER
    assert dump(resp)["extra_fields"]["model_deployment"] == "gpt4o-prod"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == OPENAI_ANSWER
    assert dump(resp)["usage"]["cost"]["total_cost"] == pytest.approx(GPT_4O_COST)
    assert dump(chunks[-1])["usage"]["cost"]["total_cost"] == pytest.approx(GPT_4O_COST)
    assert [(s.path, s.query) for s in azure.seen] == [
        ("/openai/deployments/gpt4o-prod/chat/completions", "api-version=2024-10-21"),
        ("/openai/deployments/gpt4o-prod/chat/completions", "api-version=2024-10-21"),
    ]
    assert upstream.state.requests[-1].body["stream_options"] == {"include_usage": True}


async def test_azure_unmapped_model_is_its_own_deployment_and_text_completions(
    client: openai.AsyncOpenAI, azure: AzureShim
) -> None:
    resp = await client.completions.create(model="azure/gpt-35-turbo-instruct", prompt="Once upon")
    assert resp.choices[0].text == OPENAI_ANSWER
    assert dump(resp)["extra_fields"]["model_deployment"] == "gpt-35-turbo-instruct"
    assert azure.seen[0].path == "/openai/deployments/gpt-35-turbo-instruct/completions"


async def test_azure_tool_call_round_trip_passes_through(
    client: openai.AsyncOpenAI, azure: AzureShim, upstream: Upstream
) -> None:
    messages: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    await client.chat.completions.create(
        model="azure/gpt-4o", messages=messages, tools=[CHAT_WEATHER], tool_choice="auto"
    )
    sent = upstream.state.requests[-1].body
    assert sent == {
        "model": "gpt4o-prod",
        "messages": messages,
        "tools": [CHAT_WEATHER],
        "tool_choice": "auto",
    }


async def test_azure_count_tokens_is_local(client: openai.AsyncOpenAI, azure: AzureShim) -> None:
    counted = await client.responses.input_tokens.count(model="azure/gpt-4o", input="Hello world")
    assert counted.input_tokens == expected_messages("o200k_base", ("user", "Hello world"))[0]
    assert azure.seen == []


# -- units: error mapping and Azure configuration ---------------------------------------------------------


def test_gemini_error_mapping() -> None:
    bad_key = error_body(400, "API_KEY_INVALID")
    err = gemini_error(400, orjson.dumps(bad_key), "gemini")
    assert (err.code, err.error_type) == ("API_KEY_INVALID", "INVALID_ARGUMENT")
    assert err.dead_key and err.allow_fallbacks
    caller = gemini_error(400, orjson.dumps(error_body(400)), "gemini")
    assert not caller.dead_key and not caller.allow_fallbacks
    region = {
        "error": {"code": 400, "message": "User location is not supported", "status": "FAILED_PRECONDITION"}
    }
    assert gemini_error(400, orjson.dumps(region), "gemini").allow_fallbacks
    limited = gemini_error(429, orjson.dumps([error_body(429)]), "gemini")
    assert limited.rotate_key and limited.retryable and limited.code == "429"
    opaque = gemini_error(502, b"<html>bad gateway</html>", "gemini")
    assert opaque.retryable and "bad gateway" in opaque.message


def _azure(key: Obj, base_url: str = "") -> AzureProvider:
    config = GatewayConfig.from_dict({"providers": {"azure": {"keys": [key]}}}).providers["azure"]
    return AzureProvider("azure", config, httpx.AsyncHTTPTransport(), base_url)


def test_azure_endpoint_from_env_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZ_ENDPOINT_TEST", "https://res.openai.azure.com/")
    provider = _azure(
        {"value": "k", "azure_key_config": {"endpoint": "env.AZ_ENDPOINT_TEST", "deployments": {"m": "d"}}}
    )
    assert provider.models() == ["m"]
    with pytest.raises(ConfigError, match="AZ_MISSING"):
        _azure({"value": "k", "azure_key_config": {"endpoint": "env.AZ_MISSING"}})
    with pytest.raises(ConfigError, match="http"):
        _azure({"value": "k", "azure_key_config": {"endpoint": "res.openai.azure.com"}})


async def test_azure_without_endpoint_is_a_configuration_error(gateway: str) -> None:
    app = create_app(GatewayConfig.from_dict({"providers": {"azure": {"keys": [{"value": "k"}]}}}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as h:
        r = await h.post(
            "/v1/chat/completions",
            json={"model": "azure/gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        )
    assert r.status_code == 500
    assert r.json()["error"]["type"] == "configuration_error"
    assert "endpoint" in r.json()["error"]["message"]
