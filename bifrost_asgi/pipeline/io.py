"""Raw ASGI helpers for the hot path: read a bounded body, send a whole answer.

The inference endpoints are plain ASGI callables rather than Starlette request/response objects: one
request allocates a handful of small objects and nothing else.
"""

from __future__ import annotations

from typing import Any

from bifrost_asgi.errors import body_too_large
from bifrost_asgi.types import Headers, Scope

__all__ = ["JSON_HEADERS", "SSE_HEADERS", "ClientDisconnected", "read_body", "send_bytes"]


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
