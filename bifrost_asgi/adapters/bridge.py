"""Driving the gateway's ASGI app from a framework's own view: the layer below the Django and Flask
adapters (sentry-python's ``_asgi_common``/``_wsgi_common`` idea).

`call_gateway` runs one request through the app in the current event loop and returns the status and
headers as soon as the app starts its answer, with the body as an async iterator, so SSE streams
through without buffering (as does any answer marked ``X-Accel-Buffering: no``, such as speech audio).
Closing the response early tells the app the client went away (ASGI ``http.disconnect``), which
cancels the upstream request; an app that fails after it started its answer raises out of the
chunks, so the host aborts the response rather than ending it as if complete.

`call_gateway_sync` and `SyncResponse` give WSGI frameworks the same thing, on the process's one
long-lived event loop thread (`bifrost_asgi.adapters.runtime`), with a plain generator of body chunks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from bifrost_asgi.adapters.principal import PRINCIPAL_SCOPE_KEY, Principal
from bifrost_asgi.adapters.runtime import LoopThread
from bifrost_asgi.types import ASGIApp

__all__ = [
    "BridgedResponse",
    "SyncResponse",
    "build_scope",
    "call_gateway",
    "call_gateway_sync",
    "encode_headers",
]


@dataclass
class BridgedResponse:
    status: int
    headers: list[tuple[str, str]]
    _queue: asyncio.Queue[MutableMapping[str, Any] | BaseException]
    _task: asyncio.Task[None]
    _disconnected: asyncio.Event
    _done: bool = False

    @property
    def streaming(self) -> bool:
        """Whether the answer must be passed on as it comes: Server-Sent Events, or anything else the
        gateway marks as not to be buffered (``X-Accel-Buffering: no``: speech audio)."""
        return any(
            (k == "content-type" and v.startswith("text/event-stream"))
            or (k == "x-accel-buffering" and v.lower() == "no")
            for k, v in self.headers
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while not self._done:
                message = await self._queue.get()
                if isinstance(message, BaseException):
                    raise message
                self._done = not message.get("more_body", False)
                body = message.get("body", b"")
                if body:
                    yield body
        finally:
            await self.aclose()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def aclose(self) -> None:
        """Finish the exchange; if the body was not fully read, the app sees a client disconnect."""
        self._disconnected.set()
        if not self._task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5.0)
            except TimeoutError:
                self._task.cancel()
        if self._task.done() and not self._task.cancelled():
            self._task.exception()  # retrieved: never "exception was never retrieved" warnings


def encode_headers(
    headers: Iterable[tuple[str, str]], drop: frozenset[str] = frozenset()
) -> list[tuple[bytes, bytes]]:
    """A framework's ``(name, value)`` header strings as ASGI header bytes: lower-case names, latin-1
    (as WSGI and ASGI servers decode them), without the names in ``drop`` (lower-case)."""
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in headers
        if name.lower() not in drop
    ]


def build_scope(
    *,
    method: str,
    path: str,
    query_string: bytes,
    headers: list[tuple[bytes, bytes]],
    principal: Principal | None,
    root_path: str = "",
    scheme: str = "http",
    client: tuple[str, int] | None = None,
    server: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """An ASGI HTTP scope for a request the host framework received, with ``principal`` (if any) under
    `PRINCIPAL_SCOPE_KEY`. ``path`` is the full path and ``root_path`` the gateway's mount point in it, so
    the gateway routes by the rest and builds its URLs from the mount."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": query_string,
        "headers": [(k.lower(), v) for k, v in headers],
        "client": client,
        "server": server,
        "state": {},
    }
    if principal is not None:
        scope[PRINCIPAL_SCOPE_KEY] = principal
    return scope


async def call_gateway(app: ASGIApp, scope: dict[str, Any], body: bytes) -> BridgedResponse:
    """Run one request through ``app``; returns once the answer has started."""
    queue: asyncio.Queue[MutableMapping[str, Any] | BaseException] = asyncio.Queue()
    disconnected = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if disconnected.is_set() and message["type"] == "http.response.body":
            raise OSError("client disconnected")  # what an ASGI server does once the peer has gone
        await queue.put(message)

    async def run() -> None:
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            await queue.put(exc)
            raise

    task = asyncio.get_running_loop().create_task(run())
    start = await queue.get()
    if isinstance(start, BaseException):
        raise start
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])]
    return BridgedResponse(int(start["status"]), headers, queue, task, disconnected)


@dataclass
class SyncResponse:
    """A bridged answer for WSGI: status, headers, and a generator that yields chunks as they arrive."""

    status: int
    headers: list[tuple[str, str]]
    streaming: bool
    _loop: LoopThread
    _response: BridgedResponse
    _iterator: AsyncIterator[bytes] | None = field(default=None)

    def iter_chunks(self) -> Iterator[bytes]:
        iterator = self._response.chunks()
        try:
            while True:
                try:
                    yield self._loop.run(_anext(iterator))
                except StopAsyncIteration:
                    return
        finally:  # also on GeneratorExit: the WSGI server closed the response (client gone)
            self._loop.run(self._response.aclose())

    def read(self) -> bytes:
        return self._loop.run(self._response.read())


async def _anext(iterator: AsyncIterator[bytes]) -> bytes:
    return await iterator.__anext__()


def call_gateway_sync(loop: LoopThread, app: ASGIApp, scope: dict[str, Any], body: bytes) -> SyncResponse:
    response = loop.run(call_gateway(app, scope, body))
    return SyncResponse(response.status, response.headers, response.streaming, loop, response)
