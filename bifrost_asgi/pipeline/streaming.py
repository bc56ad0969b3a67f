"""The one stream pump: a provider's chunk batches out as SSE in the surface's dialect, the reported
usage priced once on the way, and the upstream closed whatever happens.

    start the SSE answer (headers)  ->  per upstream batch: price the usage chunk, encode, one send
    ->  end: the surface's terminator, or its error event; the client going away cancels it all

A surface supplies only a `StreamEncoder` (how one chunk, an error and the end look in its dialect).
A dialect without an in-band error (binary audio) aborts the response instead (`StreamAborted`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from contextlib import suppress
from typing import Any, Protocol

from bifrost_asgi.errors import BifrostError, internal_error
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.observability.telemetry import current_probe
from bifrost_asgi.pipeline.accounting import price
from bifrost_asgi.pipeline.attempts import error_fields
from bifrost_asgi.pipeline.request import Request, Served
from bifrost_asgi.providers.base import Chunk, ChunkStream
from bifrost_asgi.types import Headers

__all__ = ["StreamAborted", "StreamEncoder", "pump", "stream_until_disconnect", "wait_disconnect"]

log = logging.getLogger("bifrost_asgi")


class StreamAborted(Exception):
    """Raised out of the app to abort a response that failed after it started and whose dialect cannot
    say so in-band: every ASGI server then closes the connection without completing the body."""


class StreamEncoder(Protocol):
    """A surface's SSE dialect. ``encode`` may return b"" for an event the dialect has no use for."""

    def encode(self, chunk: Chunk) -> bytes: ...

    def error(self, err: BifrostError) -> bytes | None:
        """The error event that ends a stream which failed after it started; None when the dialect has
        none (binary audio): the response is then aborted, so the client cannot take the cut-off answer
        for a whole one."""
        ...

    def end(self) -> bytes:
        """What follows the last event of a complete stream (``data: [DONE]``, or nothing)."""
        ...


async def pump(
    gw: Gateway, req: Request, served: Served, chunks: ChunkStream, encoder: StreamEncoder, send: Any
) -> None:
    """Write every batch as one send; a failure mid-stream becomes the dialect's error event and is
    recorded on ``served`` (so it is settled and logged as an error). The time spent waiting for the
    upstream's batches is added to the request's probe (the gateway's overhead excludes it), and so are
    the bytes sent."""
    encode = encoder.encode
    probe = current_probe()
    clock = time.perf_counter
    waited = 0.0
    sent = 0
    upstream = chunks.__aiter__()
    try:
        while True:
            started = clock()
            try:
                batch = await upstream.__anext__()
            except StopAsyncIteration:
                break
            finally:
                waited += clock() - started
            for chunk in batch:
                if chunk.usage is not None:
                    price(gw, served, chunk.usage, _tier(chunk))
            body = b"".join([encode(c) for c in batch])
            if body:
                sent += len(body)
                await send({"type": "http.response.body", "body": body, "more_body": True})
            served.delivered += len(batch)
    except BifrostError as err:
        tail = _failed(req, served, encoder, gw.redactor.scrub_error(err))
    except Exception as exc:  # never leave a client hanging on a half-written stream
        log.exception("stream failed (request %s)", req.request_id)
        tail = _failed(req, served, encoder, internal_error(f"stream failed: {type(exc).__name__}"))
    else:
        tail = encoder.end()
    finally:
        if probe is not None:
            if served.cache_hit is None:  # a replayed answer waited on nobody
                probe.wait += waited
            probe.sent += sent
    if tail is None:
        raise StreamAborted(f"stream failed after it started (request {req.request_id})")
    if probe is not None:
        probe.sent += len(tail)
    await send({"type": "http.response.body", "body": tail})


def _failed(req: Request, served: Served, encoder: StreamEncoder, err: BifrostError) -> bytes | None:
    err.extra_fields.update(error_fields(req, served.provider, served.model))
    served.error = err
    return encoder.error(err)


def _tier(chunk: Chunk) -> object:
    obj = chunk.obj
    if obj is None:
        return None
    response = obj.get("response")
    return (response if isinstance(response, dict) else obj).get("service_tier")


async def wait_disconnect(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def stream_until_disconnect(
    send: Any, receive: Any, headers: Headers, run: Callable[[], Coroutine[Any, Any, None]], upstream: object
) -> None:
    """Start an SSE answer and run ``run`` (the pump) until it ends or the client goes away.

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
            await run()
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
