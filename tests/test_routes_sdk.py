"""Every route under every prefix, driven by the official openai SDK against a live gateway.

The gateway runs under uvicorn and forwards to an upstream-shaped server over loopback; bodies are
checked against the seed pages' schemas.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.schemas import (
    assert_valid,
    bifrost_error_validator,
    completions_validator,
    count_tokens_validator,
    responses_validator,
)
from tests.test_count_tokens_http import expected_messages
from tests.upstream import ANSWER, Upstream
from tests.upstream import GPT_4O_MINI_COST as COST

PREFIXES = ["", "/openai", "/litellm", "/langchain", "/pydanticai"]


def client(gateway_url: str, prefix: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway_url}{prefix}/v1", api_key="sk-anything", max_retries=0)


def model_for(prefix: str) -> str:
    # Under /openai a bare model means openai; elsewhere the provider prefix routes it.
    return "gpt-4o-mini" if prefix == "/openai" else "openai/gpt-4o-mini"


def _dump(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.model_dump(mode="json", exclude_unset=False)
    return data


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_responses_create(gateway_url: str, prefix: str, upstream: Upstream) -> None:
    async with client(gateway_url, prefix) as c:
        resp = await c.responses.create(model=model_for(prefix), input="Say hello")
    assert resp.output_text == ANSWER
    body = _dump(resp)
    assert_valid(responses_validator(), body)
    extra = body["extra_fields"]
    assert extra["provider"] == "openai"
    assert extra["request_type"] == "responses"
    assert extra["model_requested"] == "gpt-4o-mini"
    assert isinstance(extra["latency"], int)
    assert body["usage"]["cost"]["total_cost"] == pytest.approx(COST)  # from the shipped catalog
    # The body reached the upstream untouched apart from the provider prefix.
    sent = upstream.state.requests[-1]
    assert sent.path == "/v1/responses"
    assert sent.body == {"model": "gpt-4o-mini", "input": "Say hello"}
    assert sent.headers["authorization"] == "Bearer sk-test-primary"


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_responses_stream(gateway_url: str, prefix: str) -> None:
    async with client(gateway_url, prefix) as c:
        stream = await c.responses.create(model=model_for(prefix), input="Say hello", stream=True)
        events = [e async for e in stream]
    types = [e.type for e in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == ANSWER
    completed = _dump(events[-1])
    assert completed["response"]["usage"]["cost"]["total_cost"] == pytest.approx(COST)
    indexes = [_dump(e)["extra_fields"]["chunk_index"] for e in events]
    assert indexes == list(range(len(events)))


async def test_responses_stream_helper(gateway_url: str) -> None:
    async with client(gateway_url, "") as c, c.responses.stream(model="openai/gpt-4o", input="hi") as stream:
        final = await stream.get_final_response()
    assert final.output_text == ANSWER


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_chat_completions(gateway_url: str, prefix: str) -> None:
    async with client(gateway_url, prefix) as c:
        resp = await c.chat.completions.create(
            model=model_for(prefix), messages=[{"role": "user", "content": "hi"}]
        )
        hi: Any = [{"role": "user", "content": "hi"}]
        stream = await c.chat.completions.create(
            model=model_for(prefix), messages=hi, stream=True, stream_options={"include_usage": True}
        )
        chunks = [ch async for ch in stream]
        unasked = await c.chat.completions.create(model=model_for(prefix), messages=hi, stream=True)
        plain = [ch async for ch in unasked]
    assert resp.choices[0].message.content == ANSWER
    assert _dump(resp)["extra_fields"]["request_type"] == "chat_completion"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == ANSWER
    last = _dump(chunks[-1])
    assert last["usage"]["cost"]["total_cost"] == pytest.approx(COST)
    assert last["extra_fields"]["request_type"] == "chat_completion_stream"
    # Without include_usage, no choice-less usage chunk (code reading choices[0] must not crash).
    assert (
        all(ch.choices for ch in plain)
        and "".join(ch.choices[0].delta.content or "" for ch in plain) == ANSWER
    )


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_text_completions(gateway_url: str, prefix: str) -> None:
    async with client(gateway_url, prefix) as c:
        resp = await c.completions.create(model=model_for(prefix), prompt="Once upon")
        stream = await c.completions.create(model=model_for(prefix), prompt="Once upon", stream=True)
        chunks = [ch async for ch in stream]
    assert resp.choices[0].text == ANSWER
    assert_valid(completions_validator(), _dump(resp))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == ANSWER
    assert _dump(chunks[-1])["extra_fields"]["request_type"] == "text_completion_stream"


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_models_list(gateway_url: str, prefix: str) -> None:
    async with client(gateway_url, prefix) as c:
        models = [m.id async for m in c.models.list()]
    assert "openai/gpt-4o-mini" in models
    assert "mock/mock-1" in models
    assert all("/" in m for m in models)


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_count_tokens_route(gateway_url: str, prefix: str) -> None:
    async with client(gateway_url, prefix) as c:
        counted = await c.responses.input_tokens.count(model=model_for(prefix), input="Hello world")
    body = _dump(counted)
    assert_valid(count_tokens_validator(), body)
    assert body["object"] == "response.input_tokens"
    assert body["input_tokens"] == expected_messages("o200k_base", ("user", "Hello world"))[0]
    assert body["extra_fields"]["request_type"] == "count_tokens"


@pytest.mark.parametrize("path", ["/openai/responses", "/openai/chat/completions", "/litellm/completions"])
async def test_integration_paths_without_v1(gateway_url: str, path: str) -> None:
    body: dict[str, Any] = {"model": "openai/gpt-4o-mini"}
    if path.endswith("responses"):
        body["input"] = "hi"
    elif path.endswith("chat/completions"):
        body["messages"] = [{"role": "user", "content": "hi"}]
    else:
        body["prompt"] = "hi"
    async with httpx.AsyncClient() as h:
        r = await h.post(gateway_url + path, json=body)
    assert r.status_code == 200, r.text


async def test_compat_provider_translates_responses(gateway_url: str, upstream: Upstream) -> None:
    """groq only speaks chat: a Responses request goes upstream as chat and comes back as Responses."""
    async with client(gateway_url, "") as c:
        resp = await c.responses.create(
            model="groq/llama-3.1-8b-instant", input="hi", instructions="Be brief"
        )
        stream = await c.responses.create(model="groq/llama-3.1-8b-instant", input="hi", stream=True)
        events = [e async for e in stream]
    assert resp.output_text == ANSWER
    assert _dump(resp)["extra_fields"]["provider"] == "groq"
    sent = upstream.state.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert [e.type for e in events][:2] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == ANSWER


async def test_mock_provider_is_labelled(gateway_url: str) -> None:
    async with client(gateway_url, "") as c:
        resp = await c.responses.create(model="mock/mock-1", input="ping")
        chat = await c.chat.completions.create(model="mock-1", messages=[{"role": "user", "content": "ping"}])
    assert resp.output_text.startswith("[mock]")
    assert "ping" in resp.output_text
    assert chat.system_fingerprint == "bifrost-asgi-mock"


async def test_response_headers(gateway_url: str) -> None:
    async with httpx.AsyncClient() as h:
        r = await h.post(
            gateway_url + "/v1/chat/completions",
            json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-request-id": "my-req-1"},
        )
    assert r.headers["x-bifrost-provider"] == "openai"
    assert r.headers["x-bifrost-original-model"] == "openai/gpt-4o-mini"
    assert r.headers["x-bifrost-resolved-model"] == "gpt-4o-mini"
    assert r.headers["x-bifrost-request-type"] == "chat_completion"
    assert float(r.headers["x-bifrost-cost-usd"]) == pytest.approx(COST)
    assert r.headers["x-request-id"] == "my-req-1"
    assert r.headers["x-ratelimit-remaining-requests"] == "99"  # forwarded from the provider
    assert "x-bifrost-fallback-index" not in r.headers


async def test_error_body_matches_seed_schema(gateway_url: str) -> None:
    async with httpx.AsyncClient() as h:
        r = await h.post(gateway_url + "/v1/responses", json={"model": "openai/gpt-4o-mini"})
    assert r.status_code == 400
    body = orjson.loads(r.content)
    assert_valid(bifrost_error_validator(), body)
    assert body["error"]["message"] == "input is required for responses"
    assert body["is_bifrost_error"] is False
