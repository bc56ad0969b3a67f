"""The app as a host mounts it: lazy start without lifespan, lifespan when forwarded, body limits."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import openai
from starlette.applications import Starlette
from starlette.routing import Mount

from bifrost_asgi import GatewayConfig, create_app
from tests.conftest import serve

MOCK = {"providers": {"mock": {"keys": [{"value": "u", "models": ["gpt-4o-mini"]}]}}}


async def test_mounted_without_lifespan_starts_lazily() -> None:
    gateway = create_app(GatewayConfig.from_dict(MOCK))
    host = Starlette(routes=[Mount("/ai", app=gateway)])
    live = serve(host)  # uvicorn runs the host's lifespan, which Mount does not forward
    try:
        assert not gateway.state.gateway.started
        async with openai.AsyncOpenAI(base_url=live.url + "/ai/v1", api_key="x") as c:
            resp = await c.responses.create(model="gpt-4o-mini", input="hello")
        assert resp.output_text.startswith("[mock]")
        assert gateway.state.gateway.started
    finally:
        live.stop()


class _RecordingTransport(httpx.AsyncHTTPTransport):
    closed = False

    async def aclose(self) -> None:
        self.closed = True
        await super().aclose()


async def test_forwarded_lifespan_opens_and_closes_the_pool() -> None:
    pool = _RecordingTransport()
    gateway = create_app(GatewayConfig.from_dict(MOCK), transport=pool)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway.router.lifespan_context(gateway):
            yield

    host = Starlette(routes=[Mount("/ai", app=gateway)], lifespan=lifespan)
    live = serve(host)
    assert gateway.state.gateway.started
    assert gateway.state.gateway.transport is pool and not pool.closed
    live.stop()
    assert not gateway.state.gateway.started
    assert pool.closed


async def test_body_over_the_limit_is_413() -> None:
    config = GatewayConfig.from_dict({**MOCK, "client": {"max_request_body_size_mb": 0.001}})
    app = create_app(config)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as h:
        big = await h.post("/v1/responses", json={"model": "mock/x", "input": "x" * 5000})
        small = await h.post("/v1/responses", json={"model": "mock/x", "input": "x"})
    assert big.status_code == 413
    assert big.json()["error"]["type"] == "request_too_large"
    assert small.status_code == 200
