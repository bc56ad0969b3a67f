"""The app as a host mounts it: lazy start without lifespan, lifespan when forwarded, body limits."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
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


async def test_a_middleware_added_to_the_gateway_app_sees_inference_requests() -> None:
    app = create_app(GatewayConfig.from_dict(MOCK))
    seen: list[str] = []

    class Tap:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                seen.append(scope["path"])
            await self.inner(scope, receive, send)

    app.add_middleware(Tap)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as h:
        r = await h.post(
            "/v1/chat/completions", json={"model": "mock/x", "messages": [{"role": "user", "content": "hi"}]}
        )
    assert r.status_code == 200
    assert seen == ["/v1/chat/completions"]


async def test_paths_resolve_relative_to_the_mount_point() -> None:
    host = Starlette(routes=[Mount("/ai", app=create_app(GatewayConfig.from_dict(MOCK)))])
    body = {"model": "mock/x", "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://t") as h:
        mounted = await h.post("/ai/v1/chat/completions", json=body)
        unmounted = await h.post("/v1/chat/completions", json=body)
        lookalike = await h.post("/aiv1/chat/completions", json=body)
        wrong_method = await h.get("/ai/v1/chat/completions")
    assert mounted.status_code == 200 and mounted.json()["choices"][0]["message"]["content"].startswith(
        "[mock]"
    )
    assert unmounted.status_code == 404 and lookalike.status_code == 404
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["message"].startswith(
        "Method Not Allowed"
    )


async def test_request_ids_are_unique_and_differ_between_processes() -> None:
    import multiprocessing

    from bifrost_asgi.pipeline.request import new_request_id

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:  # the child is forked here, with this process's id state
        ours = {new_request_id() for _ in range(1000)}
        forked = set(pool.apply(_ids_in_child))
    assert len(ours) == 1000 and len(forked) == 1000
    assert not ours & forked
    import uuid

    parsed = [uuid.UUID(i) for i in ours]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in parsed)  # random-looking, valid v4
    assert len({i[:8] for i in ours}) > 900  # not one prefix and a counter: the leading bits vary too


def _ids_in_child() -> list[str]:
    from bifrost_asgi.pipeline.request import new_request_id

    return [new_request_id() for _ in range(1000)]


def test_two_routes_for_one_method_and_path_are_refused() -> None:
    """A dialect mounted over another's route would silently take it over; the app refuses to build."""
    from starlette.routing import Route

    from bifrost_asgi.app import _GatewayApp
    from bifrost_asgi.gateway import Gateway

    async def endpoint(scope: Any, receive: Any, send: Any) -> None: ...

    with pytest.raises(RuntimeError, match="two routes for (GET|HEAD) /v1/models"):
        _GatewayApp(
            routes=[Route("/v1/models", endpoint), Route("/v1/models", endpoint)], gw=Gateway(GatewayConfig())
        )
