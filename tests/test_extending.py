"""A provider of the host's own, registered with ``create_app(providers=...)``, takes the same journey
as the built-in ones: routing by name, extra_fields and headers, streaming, fallbacks, pricing
overrides (the example of docs/extending.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bifrost_asgi import ConfigError, GatewayConfig, create_app
from bifrost_asgi.config import KeyConfig, ProviderConfig
from bifrost_asgi.providers import Call, Chunk, ChunkStream, Op, Reply, upstream_error


class EchoProvider:
    """Answers chat completions with the last user message, reversed; refuses other operations."""

    uses_keys = False

    def __init__(self, name: str, config: ProviderConfig, transport: httpx.AsyncBaseTransport, base_url: str):
        self.name = name

    def models(self) -> list[str]:
        return ["reverse-1"]

    async def send(self, call: Call, key: KeyConfig | None) -> Reply:
        return Reply(self._completion(call), headers={"x-echo": "yes"})

    async def open_stream(self, call: Call, key: KeyConfig | None) -> ChunkStream:
        self._check(call)
        return self._chunks(call)

    def _check(self, call: Call) -> None:
        if call.op is not Op.CHAT:
            raise upstream_error(400, b'{"error": {"message": "echo speaks chat only"}}', self.name)
        if call.model == "down":
            raise upstream_error(503, b'{"error": {"message": "echo is down"}}', self.name)

    def _completion(self, call: Call) -> dict[str, Any]:
        self._check(call)
        text = str(call.body["messages"][-1]["content"])[::-1]
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        message = {"role": "assistant", "content": text}
        return {"object": "chat.completion", "model": call.model, "usage": usage,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip

    async def _chunks(self, call: Call) -> ChunkStream:
        text = str(call.body["messages"][-1]["content"])[::-1]
        for ch in text:
            yield [
                Chunk(
                    None,
                    obj={
                        "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": {"content": ch}}],
                    },
                )
            ]
        usage = {"prompt_tokens": 3, "completion_tokens": len(text), "total_tokens": 3 + len(text)}
        yield [
            Chunk(None, obj={"object": "chat.completion.chunk", "choices": [], "usage": usage}, usage=usage)
        ]


CONFIG = {
    "providers": {"echo": {"network_config": {"base_url": "http://echo.invalid"}}, "mock": {}},
    "pricing_overrides": {"echo/reverse-1": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}},
}


@pytest.fixture
async def client() -> Any:
    app = create_app(GatewayConfig.from_dict(CONFIG), providers={"echo": EchoProvider})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        await app.state.gateway.start()
        yield c
        await app.state.gateway.aclose()


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "stressed"}], **extra}


async def test_a_custom_provider_answers_through_the_gateway(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=chat("echo/reverse-1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "desserts"
    assert body["extra_fields"]["provider"] == "echo"
    assert body["usage"]["cost"]["total_cost"] == pytest.approx(3 * 1e-6 + 2 * 2e-6)
    assert r.headers["x-bifrost-provider"] == "echo" and r.headers["x-echo"] == "yes"


async def test_a_custom_provider_streams(client: httpx.AsyncClient) -> None:
    asked = {"include_usage": True}
    r = await client.post(
        "/v1/chat/completions", json=chat("echo/reverse-1", stream=True, stream_options=asked)
    )
    lines = [line for line in r.text.split("\n") if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert len(lines) == len("desserts") + 2  # one chunk per character, the usage chunk, [DONE]
    assert '"total_cost":' in lines[-2]  # the usage chunk, priced


async def test_a_custom_provider_fails_over_like_any_other(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=chat("echo/down", fallbacks=["mock/mock-1"]))
    assert r.status_code == 200
    assert r.json()["extra_fields"]["provider"] == "mock"
    assert r.headers["x-bifrost-fallback-index"] == "1"


def test_a_factory_for_an_unconfigured_provider_is_a_startup_error() -> None:
    with pytest.raises(ConfigError, match="nope"):
        create_app(GatewayConfig.from_dict(CONFIG), providers={"nope": EchoProvider})
