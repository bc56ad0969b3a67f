"""The bare passthrough floor: the least a proxy on the gateway's stack can do per request.

Reads the body, forwards it byte for byte with one pooled ``httpx.AsyncClient`` to the same path on the
upstream, and returns the upstream's bytes (relayed chunk by chunk for streams). No JSON parsing, no
routing, no extra fields: whatever the gateway does on top of this is its own cost.

    python bench/floor.py --upstream http://127.0.0.1:9001 --port 9002 [--transport aiohttp] [--kind raw]

``--kind starlette`` (default) is the idiomatic minimal Starlette app: ``Request.body()`` in, ``Response``
or ``StreamingResponse`` out, the framework the gateway is built on. ``--kind raw`` is a bare ASGI
callable, the lower bound of the same stack. ``--transport`` picks httpx's own pool or httpx over aiohttp
(``httpx_aiohttp.AiohttpTransport``), built exactly as the gateway builds its client.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from upstream import read_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# What the gateway sends upstream too: JSON, a key, and no compression.
FORWARD_HEADERS = {
    "content-type": "application/json",
    "authorization": "Bearer sk-bench",
    "accept-encoding": "identity",
}


def make_client(transport: str) -> httpx.AsyncClient:
    """The same client the gateway builds (bifrost_asgi/gateway.py ``_make_client``)."""
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=30.0)
    chosen: httpx.AsyncBaseTransport | None = None
    if transport == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        chosen = AiohttpTransport()
    return httpx.AsyncClient(transport=chosen, limits=limits, timeout=30.0, follow_redirects=False)


def _is_stream(resp: httpx.Response) -> bool:
    """Relayed as it comes: event streams, and audio (speech), as the gateway relays them."""
    return resp.headers.get("content-type", "").startswith(("text/event-stream", "audio/"))


# -- the idiomatic Starlette floor ------------------------------------------------------------------


def starlette_floor(upstream: str, transport: str) -> Starlette:
    client: httpx.AsyncClient | None = None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal client
        client = make_client(transport)
        yield
        await client.aclose()

    async def forward(request: Request) -> Response:
        assert client is not None  # the lifespan opened it
        body = await request.body()
        upstream_req = client.build_request(
            "POST", upstream + request.url.path, content=body, headers=FORWARD_HEADERS
        )
        resp = await client.send(upstream_req, stream=True)
        media_type = resp.headers.get("content-type")
        if _is_stream(resp):
            return StreamingResponse(
                resp.aiter_raw(),
                resp.status_code,
                media_type=media_type,
                background=BackgroundTask(resp.aclose),
            )
        try:
            content = await resp.aread()
        finally:
            await resp.aclose()
        return Response(content, resp.status_code, media_type=media_type)

    async def health(request: Request) -> Response:
        return Response(b"ok")

    routes = [Route("/v1/{rest:path}", forward, methods=["POST"]), Route("/health", health)]
    return Starlette(routes=routes, lifespan=lifespan)


# -- the raw ASGI floor -----------------------------------------------------------------------------


class RawFloor:
    """The same passthrough as one plain ASGI callable: no routing, no Request/Response objects."""

    def __init__(self, upstream: str, transport: str) -> None:
        self.upstream = upstream
        self.transport = transport
        self.client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["method"] == "POST":
            await self._forward(scope, receive, send)
        else:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client = make_client(self.transport)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.client is not None  # the lifespan opened it
        body = await read_body(receive)
        request = self.client.build_request(
            "POST", self.upstream + scope["path"], content=body, headers=FORWARD_HEADERS
        )
        resp = await self.client.send(request, stream=True)
        try:
            headers = [(b"content-type", resp.headers.get("content-type", "").encode())]
            if _is_stream(resp):
                await send({"type": "http.response.start", "status": resp.status_code, "headers": headers})
                async for chunk in resp.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            content = await resp.aread()
            headers.append((b"content-length", str(len(content)).encode()))
            await send({"type": "http.response.start", "status": resp.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": content})
        finally:
            await resp.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="base URL without /v1, e.g. http://127.0.0.1:9001")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9002)
    parser.add_argument("--transport", choices=("httpx", "aiohttp"), default="httpx")
    parser.add_argument("--kind", choices=("starlette", "raw"), default="starlette")
    args = parser.parse_args()
    import uvicorn

    upstream = args.upstream.rstrip("/")
    app = (
        starlette_floor(upstream, args.transport)
        if args.kind == "starlette"
        else RawFloor(upstream, args.transport)
    )
    # The same uvicorn settings as `bifrost-asgi serve`: loop/http "auto" (uvloop + httptools when installed).
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
