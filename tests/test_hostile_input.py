"""Hostile client input never makes the gateway fail (issue 11).

Property-based: whatever body and headers a client sends to any route, the answer is never a 500 of
ours, every 4xx is a BifrostError (Anthropic's error shape on /anthropic), and the server still answers
afterwards. Plus the header-injection cases that once killed a response after charging for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.gateway import Gateway
from tests.conftest import LiveServer, serve
from tests.schemas import assert_valid, bifrost_error_validator
from tests.upstream import Upstream

KEY = "sk-bf-" + "h" * 43
POST_ROUTES = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/responses/input_tokens",
    "/openai/v1/chat/completions",
    "/litellm/responses",
    "/anthropic/v1/messages",
    "/anthropic/v1/messages/count_tokens",
    "/v1/embeddings",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/audio/speech",
    "/openai/v1/audio/transcriptions",
    "/v1/audio/translations",
]
FIELDS = ["model", "input", "messages", "prompt", "stream", "fallbacks", "max_tokens", "tools",
          "return_tokens", "instructions", "system", "stream_options", "reasoning", "text", "tool_choice",
          "temperature", "voice", "stream_format", "response_format", "dimensions", "encoding_format", "n",
          "size", "quality"]  # fmt: skip
MODELS = ["mock/mock-1", "mock-1", "openai/gpt-4o-mini", "anthropic/claude", "nope/x", "", "mock/fail-429"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(
    st.sampled_from(FIELDS), json_values | st.sampled_from(MODELS), max_size=6
) | st.builds(lambda m, extra: {"model": m, **extra}, st.sampled_from(MODELS), st.dictionaries(
    st.sampled_from(FIELDS), json_values, max_size=4))  # fmt: skip
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
HEADER_NAMES = ["x-bf-vk", "authorization", "x-api-key", "x-request-id", "x-bf-eh-x-test", "x-goog-api-key",
                "x-bf-send-back-raw-response", "anthropic-beta", "content-type"]  # fmt: skip
headers = st.dictionaries(
    st.sampled_from(HEADER_NAMES), header_values | st.just(KEY) | st.just("Bearer " + KEY), max_size=3
)


def _config(upstream_url: str, tmp: Path) -> dict[str, Any]:
    return {
        "providers": {
            "mock": {"keys": [{"value": "unused", "models": ["mock-1"]}]},
            "openai": {
                "keys": [{"value": "sk-upstream-key-123456"}],
                "network_config": {"base_url": upstream_url},
            },
        },
        "governance": {
            "store": {"type": "memory"},
            "logs": {"path": str(tmp / "logs.db")},
            "virtual_keys": [{"id": "vk", "name": "vk", "value": KEY, "allow_all_providers": True}],
        },
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[LiveServer]:
    live = serve(Upstream())
    yield live
    live.stop()


@pytest.fixture
async def gateway(upstream: LiveServer, tmp_path: Path) -> AsyncIterator[Any]:
    app = create_app(GatewayConfig.from_dict(_config(upstream.url, tmp_path)))
    await app.state.gateway.start()
    yield app
    await app.state.gateway.aclose()


def _check(path: str, r: httpx.Response) -> None:
    assert r.status_code != 500 or b"bifrost_internal" not in r.content, r.text  # never a bug of ours
    if r.status_code < 400:
        return
    body = orjson.loads(r.content)
    if path.startswith("/anthropic"):
        assert body["type"] == "error" and isinstance(body["error"]["message"], str), body
    else:
        assert_valid(bifrost_error_validator(), body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(POST_ROUTES), body=bodies, sent=headers)
async def test_no_client_input_makes_the_gateway_fail(
    gateway: Any, path: str, body: dict[str, Any], sent: dict[str, str]
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as c:
        r = await c.post(path, content=orjson.dumps(body), headers=sent)
        _check(path, r)
        assert (await c.get("/health")).status_code == 200


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(POST_ROUTES), raw=st.binary(max_size=200))
async def test_no_raw_body_makes_the_gateway_fail(gateway: Any, path: str, raw: bytes) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as c:
        r = await c.post(path, content=raw)
        assert 400 <= r.status_code < 500, r.text
        _check(path, r)


# -- model strings that reach headers -----------------------------------------------------------------

INJECTIONS = [
    "openai/gpt-4o\r\nX-Injected: yes",
    "mock/mock-1\x00",
    "mock/mock-1\x1b[31m",
    "mock/\x7fmock",
    "m" * 300,
]


@pytest.mark.parametrize("model", INJECTIONS)
@pytest.mark.parametrize("where", ["model", "fallbacks"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_model_that_would_break_headers_is_a_400_before_anything_happens(
    gateway: Any, upstream: LiveServer, model: str, where: str, stream: bool
) -> None:
    gw: Gateway = gateway.state.gateway
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
    body |= {"model": model} if where == "model" else {"model": "mock/mock-1", "fallbacks": [model]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as c:
        r = await c.post("/v1/chat/completions", json=body, headers={"x-bf-vk": KEY})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == where
    assert gw.logs is not None
    await gw.logs.flush()
    logs = (await gw.logs.store.search({"virtual_key_ids": ["vk"], "status": ["success"]}))["logs"]
    assert not any(log["requested_model"] == model for log in logs)  # nothing was charged as a success


async def test_a_live_server_survives_hostile_input(upstream: LiveServer, tmp_path: Path) -> None:
    live = serve(create_app(GatewayConfig.from_dict(_config(upstream.url, tmp_path))))
    try:
        async with httpx.AsyncClient(base_url=live.url) as c:
            for path in POST_ROUTES:
                hostile = (
                    b"",
                    b"{",
                    b"[]",
                    b'{"model": 5}',
                    b"\xff\xfe",
                    b'{"model": "mock/mock-1"}',
                    b'{"model": 99999999999999999999999}',
                    b'{"model": "mock/mock-1", "max_tokens": 1e400}',
                )
                for content in hostile:
                    _check(path, await c.post(path, content=content))
            assert (await c.get("/health")).status_code == 200
    finally:
        live.stop()
