"""Raw ASGI helpers for the hot path: read a bounded body, send JSON, watch for a client disconnect.

The inference endpoints are plain ASGI callables rather than Starlette request/response objects: one
request allocates a handful of small objects and nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any

from bifrost_asgi.errors import body_too_large
from bifrost_asgi.types import Headers, Scope

__all__ = [
    "ClientDisconnected",
    "Headers",
    "read_body",
    "send_bytes",
    "stream_until_disconnect",
    "wait_disconnect",
]


JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies not to buffer the stream
]


class ClientDisconnected(Exception):
    """The client went away before the request body was read."""


async def read_body(scope: Scope, receive: Any, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise body_too_large(limit)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        if len(body) > limit:
            raise body_too_large(limit)
        return body
    parts = [body]
    size = len(body)
    while message.get("more_body"):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def send_bytes(send: Any, status: int, body: bytes, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def wait_disconnect(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def stream_until_disconnect(
    send: Any, receive: Any, headers: Headers, pump: Callable[[], Coroutine[Any, Any, None]], upstream: object
) -> None:
    """Start an SSE answer and run ``pump`` until it ends or the client goes away.

    A disconnect is noticed even while the upstream is idle (ASGI ``http.disconnect``); the pump is then
    cancelled, and ``upstream`` (the provider's chunk iterator) is always closed, which closes its
    connection. The pump runs in the calling task and one watcher task cancels it: a second task and
    ``asyncio.wait`` cost ~20 µs per stream.
    """
    try:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        task = asyncio.current_task()
        assert task is not None
        gone = False

        async def watch() -> None:
            nonlocal gone
            await wait_disconnect(receive)
            gone = True
            task.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await pump()
        except asyncio.CancelledError:
            if not gone:
                raise  # cancelled from outside (server shutdown): not ours to swallow
            task.uncancel()
        except OSError:
            pass  # the client went away mid-write (servers of ASGI spec 2.4 raise on send)
        finally:
            watcher.cancel()
    finally:
        aclose = getattr(upstream, "aclose", None)
        if aclose is not None:
            with suppress(Exception):
                await aclose()


def header_map(scope: Scope) -> dict[bytes, bytes]:
    # ASGI servers lower-case header names already.
    return dict(scope["headers"])


def cancel_quietly(task: asyncio.Future[Any]) -> None:
    if not task.done():
        task.cancel()
