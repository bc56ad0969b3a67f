"""Fallbacks, retries, key rotation, timeouts, broken streams, disconnects and the error table.

Driven over real HTTP against the live gateway and the upstream-shaped server (see tests/upstream.py
for the scenario model names).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.schemas import assert_valid, bifrost_error_validator
from tests.upstream import ANSWER, Upstream


async def post(gateway_url: str, path: str, body: dict[str, Any] | bytes) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as h:
        if isinstance(body, bytes):
            return await h.post(
                gateway_url + path, content=body, headers={"content-type": "application/json"}
            )
        return await h.post(gateway_url + path, json=body)


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def error_of(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(r.content)
    assert_valid(bifrost_error_validator(), body)
    return body


async def test_fallback_serves_when_primary_fails(gateway_url: str, upstream: Upstream) -> None:
    r = await post(
        gateway_url, "/v1/chat/completions", chat("openai/status-500", fallbacks=["groq/llama-3.1-8b"])
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == ANSWER
    assert body["extra_fields"]["provider"] == "groq"
    routing = body["extra_fields"]["routing_info"]
    assert routing["is_fallback"] is True
    assert (routing["primary_provider"], routing["primary_model"]) == ("openai", "status-500")
    assert r.headers["x-bifrost-fallback-index"] == "1"
    assert r.headers["x-bifrost-routing-info-is-fallback"] == "true"
    # The fallback's body names its own model and carries no gateway-only fields.
    assert upstream.state.requests[-1].body == {
        "model": "llama-3.1-8b",
        "messages": [{"role": "user", "content": "hi"}],
    }


async def test_all_fallbacks_fail_returns_primary_error(gateway_url: str) -> None:
    r = await post(
        gateway_url, "/v1/chat/completions", chat("openai/status-503", fallbacks=["groq/status-500"])
    )
    assert r.status_code == 503
    body = error_of(r)
    assert body["extra_fields"]["provider"] == "openai"
    assert body["extra_fields"]["model_requested"] == "status-503"


async def test_unconfigured_and_unknown_fallbacks_are_skipped(gateway_url: str) -> None:
    fallbacks = ["nonsense/model", "anthropic/claude-3", "groq/llama"]
    r = await post(gateway_url, "/v1/chat/completions", chat("openai/status-500", fallbacks=fallbacks))
    assert r.status_code == 200
    # "nonsense/model" is dropped at parse time (unknown prefix); anthropic (index 1) has no config.
    assert r.headers["x-bifrost-fallback-index"] == "2"


async def test_caller_fault_does_not_fall_back(gateway_url: str, upstream: Upstream) -> None:
    r = await post(gateway_url, "/v1/chat/completions", chat("openai/status-400", fallbacks=["groq/llama"]))
    assert r.status_code == 400
    assert error_of(r)["error"]["code"] == "invalid_value"
    assert [q.body["model"] for q in upstream.state.requests] == ["status-400"]


async def test_retries_then_succeeds(gateway_url: str, upstream: Upstream) -> None:
    r = await post(gateway_url, "/v1/chat/completions", chat("openai/flaky-a-2"))
    assert r.status_code == 200
    assert len(upstream.state.requests) == 3  # two 503s, then success (max_retries 2)


async def test_retries_exhausted(gateway_url: str, upstream: Upstream) -> None:
    r = await post(gateway_url, "/v1/chat/completions", chat("openai/flaky-b-9"))
    assert r.status_code == 503
    assert len(upstream.state.requests) == 3


async def test_rate_limited_key_is_retried_then_429(gateway_url: str, upstream: Upstream) -> None:
    r = await post(gateway_url, "/v1/chat/completions", chat("limited/gpt-4o"))
    assert r.status_code == 429
    assert error_of(r)["error"]["code"] == "rate_limit_exceeded"
    assert len(upstream.state.requests) == 3


async def test_dead_key_rotates_to_a_good_one(gateway_url: str, upstream: Upstream) -> None:
    attempts: list[list[str]] = []
    for _ in range(6):
        before = len(upstream.state.requests)
        r = await post(gateway_url, "/v1/chat/completions", chat("rotator/gpt-4o"))
        assert r.status_code == 200
        assert r.json()["extra_fields"]["routing_info"]["key"] == "good"
        attempts.append([q.headers["authorization"] for q in upstream.state.requests[before:]])
    # Within a request the dead key is tried at most once, then retired; it costs no retry either.
    assert all(a in (["Bearer sk-good"], ["Bearer bad-key", "Bearer sk-good"]) for a in attempts), attempts
    assert sum(a.count("Bearer bad-key") for a in attempts) >= 1  # weighted 1000:1, it is met


async def test_all_keys_dead_is_credentials_exhausted(gateway_url: str) -> None:
    r = await post(gateway_url, "/v1/chat/completions", chat("allbad/gpt-4o"))
    assert r.status_code == 502
    body = error_of(r)
    assert body["error"]["type"] == "upstream_credentials_exhausted"
    assert "bad-key" not in r.text  # secrets never appear in errors


async def test_timeout_is_504_and_not_retried(gateway_url: str, upstream: Upstream) -> None:
    r = await post(gateway_url, "/v1/chat/completions", chat("shorttimeout/slow-2000"))
    assert r.status_code == 504
    body = error_of(r)
    assert body["error"]["type"] == "request_timed_out"
    assert body["is_bifrost_error"] is True
    assert len(upstream.state.requests) == 1


async def test_connection_refused_is_502(gateway_url: str) -> None:
    r = await post(gateway_url, "/v1/chat/completions", chat("refused/gpt-4o"))
    assert r.status_code == 502
    assert error_of(r)["error"]["type"] == "provider_connection_failed"


async def test_upstream_error_passes_through_verbatim(gateway_url: str) -> None:
    r = await post(gateway_url, "/v1/responses", {"model": "openai/status-404", "input": "x"})
    assert r.status_code == 404
    err = error_of(r)["error"]
    assert (err["type"], err["code"], err["message"]) == (
        "invalid_request_error",
        "model_not_found",
        "upstream says 404",
    )


async def test_stream_error_before_first_chunk_is_json(gateway_url: str) -> None:
    r = await post(gateway_url, "/v1/responses", {"model": "openai/status-500", "input": "x", "stream": True})
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert error_of(r)["extra_fields"]["request_type"] == "responses_stream"


async def test_stream_fallback_before_first_chunk(gateway_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key="x", max_retries=0) as c:
        stream = await c.chat.completions.create(
            model="openai/status-503",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_body={"fallbacks": ["groq/llama"]},
        )
        text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert text == ANSWER


async def test_broken_chat_stream_ends_with_error_line(gateway_url: str) -> None:
    r = await post(gateway_url, "/v1/chat/completions", chat("openai/broken-stream", stream=True))
    assert r.status_code == 200
    lines = [line for line in r.text.split("\n\n") if line]
    assert "data: [DONE]" not in lines
    last = orjson.loads(lines[-1].removeprefix("data: "))
    assert last["error"]["type"] == "provider_connection_failed"
    async with openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key="x", max_retries=0) as c:
        stream = await c.chat.completions.create(
            model="openai/broken-stream", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass


async def test_broken_responses_stream_ends_with_error_event(gateway_url: str) -> None:
    r = await post(
        gateway_url, "/v1/responses", {"model": "openai/broken-stream", "input": "x", "stream": True}
    )
    blocks = [b for b in r.text.split("\n\n") if b]
    assert blocks[-1].startswith("event: error\ndata: ")
    assert orjson.loads(blocks[-1].split("data: ", 1)[1])["is_bifrost_error"] is True


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/chat/completions", "openai/slow-stream"),
        ("/openai_passthrough/v1/chat/completions", "slow-stream"),
    ],
)
async def test_client_disconnect_cancels_upstream(
    gateway_url: str, upstream: Upstream, path: str, model: str
) -> None:
    """The upstream stream is read as the client reads (never buffered whole) and closed when it leaves."""
    async with httpx.AsyncClient(timeout=10) as h:
        req = h.build_request("POST", gateway_url + path, json=chat(model, stream=True))
        resp = await h.send(req, stream=True)
        async for _ in resp.aiter_bytes():
            break
        assert upstream.state.open_streams == 1
        await resp.aclose()
    for _ in range(50):
        if upstream.state.open_streams == 0:
            break
        await asyncio.sleep(0.1)
    assert upstream.state.open_streams == 0
    assert upstream.state.cancelled_streams == 1


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/responses", b"{not json", "invalid request format"),
        ("/v1/responses", b"[1, 2]", "invalid request format: the body must be a JSON object"),
        ("/v1/responses", b'{"input": "x"}', "model is required"),
        ("/v1/responses", b'{"model": "openai/gpt-4o"}', "input is required for responses"),
        ("/v1/responses", b'{"model": "openai/gpt-4o", "input": 5}', "input must be a string or an array"),
        ("/v1/chat/completions", b'{"model": "openai/gpt-4o"}', "messages is required for chat completion"),
        ("/v1/completions", b'{"model": "openai/gpt-4o"}', "prompt is required for text completion"),
        (
            "/v1/chat/completions",
            b'{"model": "foo/gpt-4o", "messages": [1]}',
            "provider is required in model field",
        ),
        (
            "/v1/chat/completions",
            b'{"model": "unknown-model", "messages": [1]}',
            "no providers found for model",
        ),
        (
            "/v1/chat/completions",
            b'{"model": "anthropic/claude", "messages": [1]}',
            "failed to get config for provider",
        ),
        (
            "/v1/responses",
            b'{"model": "openai/gpt-4o", "input": "x", "stream": "yes"}',
            "stream must be a boolean",
        ),
        (
            "/v1/responses",
            b'{"model": "openai/gpt-4o", "input": "x", "fallbacks": "groq/x"}',
            "fallbacks must be",
        ),
    ],
)
async def test_bad_input_is_a_clear_400(gateway_url: str, path: str, body: bytes, message: str) -> None:
    r = await post(gateway_url, path, body)
    assert r.status_code == 400
    err = error_of(r)
    assert message in err["error"]["message"]
    assert err["is_bifrost_error"] is False


async def test_unknown_route_and_method(gateway_url: str) -> None:
    async with httpx.AsyncClient() as h:
        missing = await h.post(gateway_url + "/v1/nothing-here", json={})
        wrong = await h.get(gateway_url + "/v1/responses")
    assert missing.status_code == 404
    assert wrong.status_code == 405
    error_of(missing)
    error_of(wrong)


async def test_health(gateway_url: str) -> None:
    async with httpx.AsyncClient() as h:
        r = await h.get(gateway_url + "/health")
    assert r.json() == {"status": "ok"}
