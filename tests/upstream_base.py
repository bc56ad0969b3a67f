"""What every upstream-shaped test server shares: the ASGI plumbing (lifespan, reading and recording the
request) and the two ways of answering (a JSON body, an SSE stream).

A server subclasses `UpstreamApp` and implements ``handle``; tests inspect ``state.requests``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

Obj = dict[str, Any]
Headers = list[tuple[bytes, bytes]]


@dataclass
class Recorded:
    """One request as the upstream received it."""

    path: str
    headers: dict[str, str]
    body: Obj
    raw: bytes
    query: str = ""


@dataclass
class RecordingState:
    requests: list[Recorded] = field(default_factory=list)

    def reset(self) -> None:
        self.requests.clear()


class UpstreamApp:
    """An ASGI app that answers lifespan, reads and records each request, then calls ``handle``."""

    state: Any

    async def __call__(self, scope: Obj, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        raw = b""
        more = True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        # Uploads (multipart) are read by the servers that take them; everything else is JSON.
        multipart = headers.get("content-type", "").startswith("multipart/")
        body = orjson.loads(raw) if raw and not multipart else {}
        query = scope.get("query_string", b"").decode()
        request = Recorded(scope["path"], headers, body, raw, query)
        self.state.requests.append(request)
        await self.handle(request, receive, send)

    async def handle(self, request: Recorded, receive: Any, send: Any) -> None:
        raise NotImplementedError


async def send_json(send: Any, status: int, body: Obj, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": orjson.dumps(body)})


async def send_sse(send: Any, frames: Iterable[bytes], headers: Headers | None = None) -> None:
    """A 200 event stream, one write per frame (as real upstreams flush events)."""
    start = headers if headers is not None else [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": start})
    for frame in frames:
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
