"""Bifrost's raw passthrough prefixes end to end: the official SDKs, unmodified, with their base URL on
``/anthropic_passthrough`` (``/openai_passthrough``, ``/genai_passthrough``), against upstream-shaped
servers. What reached the upstream is checked from its records: the native request with the gateway's
key, never the client's credential; the answer comes back as the upstream sent it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import anthropic
import httpx
import httpx2
import openai
import orjson
import pytest
from google import genai
from google.genai import types

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.providers.mock import MockProvider
from tests.anthropic_upstream import ANSWER, USAGE, AnthropicUpstream
from tests.conftest import serve, started
from tests.fault_upstream import FaultUpstream
from tests.gemini_upstream import ANSWER as GEMINI_ANSWER
from tests.gemini_upstream import GeminiUpstream
from tests.media_upstream import AUDIO, MediaUpstream, running
from tests.upstream import Upstream

Obj = dict[str, Any]
HAIKU = "claude-haiku-4-5"
HI: Any = [{"role": "user", "content": "Hi"}]
GATEWAY_KEYS = {
    "anthropic": "sk-ant-gateway-key-0001",
    "openai": "sk-openai-gateway-0001",
    "gemini": "gk-gateway-0001",
}
CLIENT_SECRET = "sk-ant-the-clients-own-key"
VK = "sk-bf-" + "p" * 43


def providers(claude: str, openai_url: str, gemini: str, **network: Any) -> Obj:
    urls = {"anthropic": claude, "openai": openai_url, "gemini": gemini}
    return {
        name: {"keys": [{"value": GATEWAY_KEYS[name]}],
               "network_config": {"base_url": url, "max_retries": 2, "retry_backoff_initial": 1, **network}}
        for name, url in urls.items()
    }  # fmt: skip


@pytest.fixture(scope="module")
def upstreams(upstream_url: str) -> Iterator[tuple[AnthropicUpstream, GeminiUpstream, str, str]]:
    claude, gemini = AnthropicUpstream(), GeminiUpstream()
    claude_live, gemini_live = serve(claude), serve(gemini)
    yield claude, gemini, claude_live.url, gemini_live.url
    claude_live.stop()
    gemini_live.stop()


@pytest.fixture(scope="module")
def gateway(
    upstreams: tuple[AnthropicUpstream, GeminiUpstream, str, str], upstream_url: str
) -> Iterator[str]:
    config = {"providers": providers(upstreams[2], upstream_url, upstreams[3])}
    live = serve(create_app(GatewayConfig.from_dict(config)))
    yield live.url
    live.stop()


@pytest.fixture
def claude(upstreams: tuple[AnthropicUpstream, GeminiUpstream, str, str]) -> AnthropicUpstream:
    upstreams[0].state.reset()
    upstreams[0].state.flaky.clear()
    return upstreams[0]


@pytest.fixture
def gemini(upstreams: tuple[AnthropicUpstream, GeminiUpstream, str, str]) -> GeminiUpstream:
    upstreams[1].state.reset()
    return upstreams[1]


_SDKS: list[anthropic.Anthropic] = []  # closed at the end of the module, not when collected mid-test


@pytest.fixture(scope="module", autouse=True)
def _close_sdks() -> Iterator[None]:
    yield
    for client in _SDKS:
        client.close()


def sdk(gateway: str, **options: Any) -> anthropic.Anthropic:
    _SDKS.append(
        client := anthropic.Anthropic(
            base_url=gateway + "/anthropic_passthrough", api_key=CLIENT_SECRET, max_retries=0, **options
        )
    )
    return client


def only_the_gateways_key(headers: dict[str, str], name: str = "x-api-key") -> None:
    assert headers[name] == GATEWAY_KEYS["anthropic"]
    assert all(CLIENT_SECRET not in value for value in headers.values())


# -- the anthropic SDK on /anthropic_passthrough -----------------------------------------------------------


def test_messages_reach_the_upstream_natively_with_the_gateways_key(
    gateway: str, claude: AnthropicUpstream
) -> None:
    raw = sdk(
        gateway, default_headers={"anthropic-beta": "tools-2024-04-04"}
    ).messages.with_raw_response.create(
        model=HAIKU, max_tokens=50, messages=HI, metadata={"user_id": "u1"}, stop_sequences=["END"]
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == ANSWER
    assert message.usage.cache_read_input_tokens == USAGE["cache_read_input_tokens"]
    (seen,) = claude.state.requests
    assert seen.path == "/v1/messages"
    only_the_gateways_key(seen.headers)
    assert seen.headers["anthropic-beta"] == "tools-2024-04-04" and seen.headers["anthropic-version"]
    # The SDK's own body, not a re-serialisation of what the gateway understood.
    assert seen.body == {
        "model": HAIKU,
        "max_tokens": 50,
        "messages": HI,
        "metadata": {"user_id": "u1"},
        "stop_sequences": ["END"],
    }
    # The upstream's headers come back (its request id renamed: x-request-id is the gateway's).
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "49"
    assert raw.headers["request-id"] == "req_01"
    assert raw.headers["x-bifrost-provider"] == "anthropic"
    assert raw.headers["x-bifrost-request-type"] == "passthrough"
    assert float(raw.headers["x-bifrost-cost-usd"]) > 0  # the usage it reported, priced


def test_a_stream_passes_through_event_for_event(gateway: str, claude: AnthropicUpstream) -> None:
    with sdk(gateway).messages.stream(model=HAIKU, max_tokens=50, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == ANSWER and final.usage.output_tokens == USAGE["output_tokens"]
    (seen,) = claude.state.requests
    assert seen.body["stream"] is True
    only_the_gateways_key(seen.headers)


def test_the_streamed_bytes_are_the_upstreams(
    gateway: str, claude: AnthropicUpstream, upstreams: tuple[AnthropicUpstream, GeminiUpstream, str, str]
) -> None:
    body = {"model": HAIKU, "max_tokens": 50, "messages": HI, "stream": True}
    resp = httpx.post(f"{gateway}/anthropic_passthrough/v1/messages", json=body)
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["x-bifrost-request-type"] == "passthrough_stream"
    assert resp.content == httpx.post(f"{upstreams[2]}/v1/messages", json=body).content


def test_count_tokens(gateway: str, claude: AnthropicUpstream) -> None:
    counted = sdk(gateway).messages.count_tokens(model=HAIKU, messages=HI, system="Be brief.")
    assert counted.input_tokens == 101
    assert claude.state.requests[0].path == "/v1/messages/count_tokens"
    only_the_gateways_key(claude.state.requests[0].headers)


@pytest.mark.parametrize(
    ("status", "kind"), [(529, "overloaded_error"), (429, "rate_limit_error"), (400, "invalid_request_error")]
)
def test_an_upstream_error_comes_back_as_it_was_and_is_not_retried(
    gateway: str, claude: AnthropicUpstream, status: int, kind: str
) -> None:
    with pytest.raises(anthropic.APIStatusError) as raised:
        sdk(gateway).messages.create(model=f"status-{status}", max_tokens=5, messages=HI)
    assert raised.value.status_code == status
    assert cast(Obj, raised.value.body)["error"]["type"] == kind  # Anthropic's error body, untouched
    assert raised.value.response.headers["request-id"] == "req_01"
    assert len(claude.state.requests) == 1  # Bifrost's passthrough answers the upstream's status as is


# -- what passes, what does not ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/models"), ("POST", "/v1/files"), ("DELETE", "/v1/messages"),
     ("POST", "/v1/messages/batches"), ("POST", "/v1/complete"), ("POST", "/v2/messages")],
)  # fmt: skip
def test_anything_but_an_inference_operation_is_refused_before_the_upstream(
    gateway: str, claude: AnthropicUpstream, method: str, path: str
) -> None:
    resp = httpx.request(method, f"{gateway}/anthropic_passthrough{path}", json={"model": HAIKU})
    assert resp.status_code == 403, resp.text
    assert "is not forwarded by /anthropic_passthrough" in resp.json()["error"]["message"]
    assert claude.state.requests == []


def test_credentials_cookies_and_gateway_headers_stay_behind(gateway: str, claude: AnthropicUpstream) -> None:
    headers = {
        "authorization": f"Bearer {CLIENT_SECRET}", "x-api-key": CLIENT_SECRET, "cookie": "session=abc",
        "x-bf-eh-x-extra": "asked-for", "x-bf-vk": "legacy", "x-goog-api-key": CLIENT_SECRET,
        "api-key": CLIENT_SECRET,
        "anthropic-version": "2023-06-01", "x-custom": "kept",
    }  # fmt: skip
    body = {"model": HAIKU, "max_tokens": 5, "messages": HI}
    resp = httpx.post(f"{gateway}/anthropic_passthrough/v1/messages?beta=true&key={CLIENT_SECRET}", json=body,
                      headers={k: v for k, v in headers.items() if k != "x-bf-vk"})  # fmt: skip
    assert resp.status_code == 200, resp.text
    (seen,) = claude.state.requests
    only_the_gateways_key(seen.headers)
    assert (
        "cookie" not in seen.headers and "authorization" not in seen.headers and "api-key" not in seen.headers
    )
    assert "x-goog-api-key" not in seen.headers and not any(k.startswith("x-bf-") for k in seen.headers)
    assert seen.headers["x-custom"] == "kept" and seen.headers["x-extra"] == "asked-for"
    assert seen.query == "beta=true"  # a key in the query is a credential too


async def test_a_body_over_the_limit_is_refused(
    upstreams: tuple[AnthropicUpstream, GeminiUpstream, str, str],
    upstream_url: str,
    claude: AnthropicUpstream,
) -> None:
    config = {"providers": providers(upstreams[2], upstream_url, upstreams[3]),
              "client": {"max_request_body_size_mb": 0.001}}  # fmt: skip
    app = create_app(GatewayConfig.from_dict(config))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        body = {"model": HAIKU, "max_tokens": 5, "messages": [{"role": "user", "content": "y" * 5000}]}
        resp = await client.post("/anthropic_passthrough/v1/messages", json=body)
    assert resp.status_code == 413
    assert claude.state.requests == []


# -- the other prefixes -------------------------------------------------------------------------------------


def test_openai_passthrough_with_the_openai_sdk(gateway: str, upstream: Upstream) -> None:
    with openai.OpenAI(
        base_url=gateway + "/openai_passthrough/v1", api_key="sk-client", max_retries=0
    ) as client:
        answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content
    seen = upstream.state.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer " + GATEWAY_KEYS["openai"]
    assert "stream_options" not in seen.body  # the client's body, as it sent it


def test_genai_passthrough_with_the_google_sdk(gateway: str, gemini: GeminiUpstream) -> None:
    http = types.HttpOptions(base_url=gateway + "/genai_passthrough", api_version="v1beta",
                             retry_options=types.HttpRetryOptions(attempts=1))  # fmt: skip
    with genai.Client(api_key="client-google-key", http_options=http) as client:
        assert client.models.generate_content(model="gemini-2.5-flash", contents="Hi").text == GEMINI_ANSWER
        chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi"))
    assert "".join(c.text or "" for c in chunks) == GEMINI_ANSWER
    first, second = gemini.state.requests
    assert first.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert (
        second.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent" and second.query == "alt=sse"
    )
    assert first.headers["x-goog-api-key"] == GATEWAY_KEYS["gemini"]
    assert all("client-google-key" not in v for v in first.headers.values())


# -- upstream faults -----------------------------------------------------------------------------------------


def test_a_stream_cut_short_ends_with_an_error_event(gateway: str, claude: AnthropicUpstream) -> None:
    client = sdk(gateway)
    with (
        pytest.raises(anthropic.APIStatusError, match="ended the stream"),
        client.messages.stream(model="truncated-stream", max_tokens=5, messages=HI) as stream,
    ):
        stream.get_final_message()


def test_a_dropped_connection_ends_with_an_error_event(gateway: str, upstream: Upstream) -> None:
    body = {"model": "broken-stream", "messages": HI, "stream": True}
    resp = httpx.post(f"{gateway}/openai_passthrough/v1/chat/completions", json=body)
    blocks = [b for b in resp.text.split("\n\n") if b]
    assert blocks[-1].startswith("event: error\ndata: ")
    assert orjson.loads(blocks[-1].split("data: ", 1)[1])["status_code"] == 502


def test_a_refused_connection_and_a_timeout_are_honest_errors(
    upstreams: tuple[AnthropicUpstream, GeminiUpstream, str, str], upstream_url: str
) -> None:
    refused = providers("http://127.0.0.1:9", upstream_url, upstreams[3], max_retries=0)
    slow = providers(
        upstreams[2], upstream_url, upstreams[3], max_retries=0, default_request_timeout_in_seconds=1
    )
    for config, path, body, status in (
        (
            refused,
            "/anthropic_passthrough/v1/messages",
            {"model": HAIKU, "max_tokens": 5, "messages": HI},
            502,
        ),
        (slow, "/openai_passthrough/v1/chat/completions", {"model": "slow-3000", "messages": HI}, 504),
    ):
        live = serve(create_app(GatewayConfig.from_dict({"providers": config})))
        try:
            resp = httpx.post(live.url + path, json=body, timeout=20)
        finally:
            live.stop()
        assert resp.status_code == status, resp.text
        assert resp.json()["is_bifrost_error"] is True


def test_an_upstream_echoing_the_key_never_shows_it() -> None:
    fault = FaultUpstream()
    up = serve(fault)
    config = {
        "providers": {
            "openai": {
                "keys": [{"value": "sk-openai-secret-key-1234"}],
                "network_config": {"base_url": up.url},
            }
        }
    }
    live = serve(create_app(GatewayConfig.from_dict(config)))
    try:
        resp = httpx.post(
            live.url + "/openai_passthrough/v1/chat/completions", json={"model": "echo-key", "messages": HI}
        )
    finally:
        live.stop()
        up.stop()
    assert resp.status_code == 401
    assert b"sk-openai-secret-key-1234" not in resp.content and b"[REDACTED]" in resp.content


# -- governance ---------------------------------------------------------------------------------------------


@pytest.fixture
async def governed(
    upstreams: tuple[AnthropicUpstream, GeminiUpstream, str, str], upstream_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Any, Gateway]]:
    keys = [
        {"id": "vk", "name": "pass", "value": VK, "allow_all_providers": True, "rate_limit_id": "r"},
        {"id": "oa", "name": "openai-only", "value": "sk-bf-" + "o" * 43, "allow_all_providers": False,
         "provider_configs": [{"provider": "openai"}]},
    ]  # fmt: skip
    config = {
        "providers": providers(upstreams[2], upstream_url, upstreams[3]),
        "client": {"enforce_auth_on_inference": True},
        "governance": {
            "store": {"type": "memory"},
            "counters": {"type": "memory"},
            "logs": {"path": str(tmp_path / "logs.db")},
            "virtual_keys": keys,
            "rate_limits": [{"id": "r", "request_max_limit": 3, "request_reset_duration": "1h"}],
        },
    }
    async with started(config) as running:
        yield running


def async_sdk(app: Any, key: str) -> anthropic.AsyncAnthropic:
    # The anthropic SDK brings its own fork of httpx (httpx2), with the same in-process transport.
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gw", timeout=30)
    return anthropic.AsyncAnthropic(
        base_url="http://gw/anthropic_passthrough", api_key=key, http_client=http, max_retries=0
    )


async def test_governance_applies_and_usage_is_logged(
    governed: tuple[Any, Gateway], claude: AnthropicUpstream
) -> None:
    app, gw = governed
    with pytest.raises(anthropic.AuthenticationError):
        await async_sdk(app, CLIENT_SECRET).messages.create(model=HAIKU, max_tokens=5, messages=HI)
    with pytest.raises(anthropic.PermissionDeniedError):
        await async_sdk(app, "sk-bf-" + "o" * 43).messages.create(model=HAIKU, max_tokens=5, messages=HI)
    client = async_sdk(app, VK)
    await client.messages.create(model=HAIKU, max_tokens=5, messages=HI)
    async with client.messages.stream(model=HAIKU, max_tokens=5, messages=HI) as stream:
        await stream.get_final_message()
    await client.messages.count_tokens(model=HAIKU, messages=HI)  # counting is not metered
    await client.messages.create(model=HAIKU, max_tokens=5, messages=HI)
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.create(model=HAIKU, max_tokens=5, messages=HI)
    assert len(claude.state.requests) == 4  # refusals never reached the upstream
    for seen in claude.state.requests:
        assert seen.headers["x-api-key"] == GATEWAY_KEYS["anthropic"] and VK not in str(seen.headers)
    assert gw.logs is not None and gw.governance is not None
    await gw.logs.flush()
    entries = (
        await gw.logs.store.search({"status": ["success"], "sort_by": ["timestamp"], "order": ["asc"]})
    )["logs"]
    assert [e["object"] for e in entries] == [
        "passthrough",
        "passthrough_stream",
        "passthrough",
        "passthrough",
    ]
    json_entry, stream_entry = entries[0], entries[1]
    for entry in (json_entry, stream_entry):
        assert (
            entry["virtual_key_id"] == "vk" and entry["provider"] == "anthropic" and entry["model"] == HAIKU
        )
        assert (
            entry["input_tokens"] == 170
            and entry["output_tokens"] == 10
            and entry["usage_estimated"] is False
        )
        assert entry["cached_read_tokens"] == 100 and entry["cost"] > 0
    key = await gw.governance.keys.get("vk")
    assert key is not None
    requests = next(u for u in await gw.governance.usage(key) if u["kind"] == "requests")
    assert (requests["used"], requests["reserved"]) == (3, 0)


async def test_openai_streams_are_priced_from_the_usage_they_report(
    governed: tuple[Any, Gateway], upstream: Upstream
) -> None:
    app, gw = governed
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=30)
    async with openai.AsyncOpenAI(
        base_url="http://gw/openai_passthrough/v1", api_key=VK, http_client=cast(Any, http), max_retries=0
    ) as client:
        async for _ in await client.responses.create(model="gpt-4o", input="Hi", stream=True):
            pass
        chat = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        async for _ in chat:
            pass
    assert gw.logs is not None
    await gw.logs.flush()
    entries = (await gw.logs.store.search({"sort_by": ["timestamp"], "order": ["asc"]}))["logs"]
    assert [e["object"] for e in entries] == ["passthrough_stream", "passthrough_stream"]
    for entry in entries:
        assert entry["status"] == "success" and entry["usage_estimated"] is False, entry
        assert entry["input_tokens"] > 0 and entry["output_tokens"] > 0 and entry["cost"] > 0


def test_a_multipart_body_names_its_model_in_a_field(gateway: str, upstream: Upstream) -> None:
    path = f"{gateway}/openai_passthrough/v1/audio/transcriptions"
    audio = {"file": ("a.wav", b"RIFF" + bytes(32))}
    missing = httpx.post(path, files=audio, data={"language": "en"})
    assert missing.status_code == 400 and missing.json()["error"]["message"] == "model is required"
    # This upstream has no transcription route: its own 404 comes back as it sent it.
    resp = httpx.post(path, files=audio, data={"model": "whisper-1"})
    assert resp.status_code == 404 and resp.json()["error"]["message"] == "no route /v1/audio/transcriptions"
    seen = upstream.state.requests[-1]
    assert seen.path == "/v1/audio/transcriptions" and seen.headers["content-type"].startswith("multipart/")
    assert seen.headers["authorization"] == "Bearer " + GATEWAY_KEYS["openai"]


@pytest.mark.parametrize(
    ("prefix", "path", "body", "status"),
    [
        ("openai_passthrough", "/v1/chat/completions", b"not json", 400),
        ("genai_passthrough", "/v1beta/models/gemini-2.5-flash:predict", b"{}", 403),
        ("genai_passthrough", "/v1beta/models/tuned/x:generateContent", b"{}", 403),
        ("genai_passthrough", "/v1beta/models/..:generateContent", b"{}", 403),
    ],
)
def test_requests_the_gateway_cannot_place_are_refused(
    gateway: str, gemini: GeminiUpstream, prefix: str, path: str, body: bytes, status: int
) -> None:
    resp = httpx.post(f"{gateway}/{prefix}{path}", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == status, resp.text
    assert resp.json()["is_bifrost_error"] is False
    assert gemini.state.requests == []


async def test_a_prefix_without_its_provider_is_a_400(upstream_url: str) -> None:
    config = {
        "providers": {"openai": {"keys": [{"value": "sk-x"}], "network_config": {"base_url": upstream_url}}}
    }
    mock = {"openai": lambda name, cfg, transport, base: MockProvider(name, cfg)}
    async with (
        started(config) as (app, _),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        resp = await client.post("/genai_passthrough/v1beta/models/gemini-2.5-flash:generateContent", json={})
    assert resp.status_code == 400 and "gemini is not configured" in resp.json()["error"]["message"]
    app = create_app(GatewayConfig.from_dict(config), providers=mock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        resp = await client.post(
            "/openai_passthrough/v1/chat/completions", json={"model": "m", "messages": HI}
        )
    assert (
        resp.status_code == 400
        and resp.json()["error"]["message"] == "passthrough is not served by provider openai"
    )


def test_a_stream_that_is_not_sse_passes_as_bytes_and_is_aborted_when_cut() -> None:
    with running(MediaUpstream()) as (_, media_url):
        config = {
            "providers": {
                "openai": {"keys": [{"value": "sk-media"}], "network_config": {"base_url": media_url}}
            }
        }
        live = serve(create_app(GatewayConfig.from_dict(config)))
        try:
            path = live.url + "/openai_passthrough/v1/audio/speech"
            speech = {"model": "tts-1", "input": "Hello", "voice": "alloy", "stream": True}
            resp = httpx.post(path, json=speech)
            assert resp.headers["content-type"] == "audio/mpeg" and resp.content == AUDIO
            with pytest.raises(httpx.RemoteProtocolError):  # cut short: never a finished-looking answer
                httpx.post(path, json={**speech, "model": "broken-speech"})
        finally:
            live.stop()


def test_a_stream_keeps_the_upstreams_headers(gateway: str, upstream: Upstream) -> None:
    body = {"model": "gpt-4o", "messages": HI, "stream": True}
    resp = httpx.post(f"{gateway}/openai_passthrough/v1/chat/completions", json=body)
    assert resp.headers["x-bifrost-provider-request-id"] == "req_up1"  # x-request-id is the gateway's
    assert resp.headers["x-request-id"] != "req_up1"
    assert resp.text.endswith("data: [DONE]\n\n")
