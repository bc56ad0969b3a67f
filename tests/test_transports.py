"""Both upstream HTTP stacks behave the same for users: answers, streams and every transport fault.

The default is httpx over aiohttp (measured faster, see BENCHMARKS.md); plain httpx stays supported.
Its exception mapping differs underneath (httpx-aiohttp reports a refused connection as a connect
timeout), which the gateway corrects in one place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from bifrost_asgi import GatewayConfig, create_app
from tests.conftest import gateway_config
from tests.upstream import ANSWER


@pytest.fixture(params=["httpx", "aiohttp"])
async def client(request: pytest.FixtureRequest, upstream_url: str) -> AsyncIterator[httpx.AsyncClient]:
    data = gateway_config(upstream_url)
    data["http_transport"] = request.param
    app = create_app(GatewayConfig.from_dict(data))
    await app.state.gateway.start()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=10
    ) as c:
        yield c
    await app.state.gateway.aclose()


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


async def test_answer_and_stream(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=chat("openai/gpt-4o-mini"))
    assert r.json()["choices"][0]["message"]["content"] == ANSWER
    s = await client.post(
        "/v1/responses", json={"model": "openai/gpt-4o-mini", "input": "hi", "stream": True}
    )
    assert s.text.rstrip().split("\n\n")[-1].startswith("event: response.completed")


@pytest.mark.parametrize(
    ("model", "status", "error_type"),
    [
        ("refused/gpt-4o", 502, "provider_connection_failed"),
        ("shorttimeout/slow-2000", 504, "request_timed_out"),
    ],
)
async def test_faults_map_the_same(
    client: httpx.AsyncClient, model: str, status: int, error_type: str
) -> None:
    r = await client.post("/v1/chat/completions", json=chat(model))
    assert r.status_code == status
    assert r.json()["error"]["type"] == error_type


async def test_broken_stream_ends_with_an_error_line(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/chat/completions", json=chat("openai/broken-stream", stream=True))
    last = [b for b in r.text.split("\n\n") if b][-1]
    assert orjson.loads(last.removeprefix("data: "))["error"]["type"] == "provider_connection_failed"
