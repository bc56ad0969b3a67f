"""A request's journey, top to bottom — the same for every route and dialect (STYLE lessons 3 and 15).

    read the body (bounded)
    -> parse it (the surface: its dialect's required fields; fallbacks)
    -> authorize (virtual key, signed token or the host's user)
    -> resolve the targets once (the surface names the primary; the fallbacks follow)
    -> cache lookup: a hit is answered from the cache, a complete answer is kept (cache/step.py; only
       when the plugin is on)
    -> attempts: per target the surface's call, admission, provider with retries and key rotation,
       fallbacks on failure                                                  (pipeline/attempts.py)
    -> respond: price the reported usage once, then the surface renders the JSON answer, or its stream
       is pumped                                                             (pipeline/streaming.py)
    -> settle the reservation and write the usage log record                 (pipeline/accounting.py)
    -> metrics and spans: opened at the start, recorded once at the end      (observability/)

Errors at any step are answered once, here, in the surface's dialect. A surface (surfaces/) supplies
only parsing and rendering; everything else is a small collaborator called from this module.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bifrost_asgi.cache.step import remember, serve
from bifrost_asgi.errors import BifrostError, internal_error
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.observability.telemetry import Probe
from bifrost_asgi.pipeline.accounting import authorize, finish, price_reply
from bifrost_asgi.pipeline.attempts import run_attempts
from bifrost_asgi.pipeline.io import ClientDisconnected, read_body, send_bytes
from bifrost_asgi.pipeline.request import Request, Served, read_headers
from bifrost_asgi.pipeline.respond import response_headers, send_error
from bifrost_asgi.pipeline.streaming import pump, stream_until_disconnect
from bifrost_asgi.surfaces.base import Surface
from bifrost_asgi.types import Scope

__all__ = ["Endpoint", "handle"]

log = logging.getLogger("bifrost_asgi")


class Endpoint:
    """A plain ASGI endpoint for one surface: no Request/Response objects on the hot path."""

    __slots__ = ("gw", "surface")

    def __init__(self, gw: Gateway, surface: Surface) -> None:
        self.gw = gw
        self.surface = surface

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await handle(self.gw, self.surface, scope, receive, send)


async def handle(gw: Gateway, surface: Surface, scope: Scope, receive: Any, send: Any) -> None:
    started = time.perf_counter()
    if not gw.started:
        await gw.start()
    probe = gw.telemetry.begin(scope)  # 9 metrics and spans (observability/): the request span opens
    req: Request | None = None
    served: Served | None = None
    error: BifrostError | None = None
    try:
        try:
            raw = await read_body(scope, receive, gw.max_body)
            if probe is not None:
                probe.received = len(raw)
            req = surface.parse(gw, raw, scope, started)
            read_headers(req, scope)
            await authorize(gw, req)
            req.targets = [surface.primary(gw, req), *req.fallbacks]
            if gw.cache is None:
                served = await run_attempts(gw, req, surface, lambda s: _accept(gw, surface, req, s))
            else:  # 5 the response cache: a hit answers here, a miss runs the attempts
                served = await serve(gw, gw.cache, req, surface, lambda: _attempts(gw, surface, req))
        except ClientDisconnected:
            return
        except BifrostError as err:
            error = err
            await _fail(gw, surface, send, req, err, probe)
            return
        except Exception:  # a bug of ours must still answer in the dialect's shape, never a bare 500 page
            log.exception("unexpected error handling %s", surface.request_type)
            error = internal_error()
            await _fail(gw, surface, send, req, error, probe)
            return
        try:
            if served.chunks is not None:
                await _stream(gw, surface, req, served, send, receive, probe)
            else:
                if req.cache is not None and gw.cache is not None:
                    await remember(gw.cache, req, served)  # before it is sent: the client may ask again
                await _reply(gw, surface, req, served, send, probe)
        finally:
            await finish(gw, req, served, served.error)
    finally:
        if probe is not None:
            probe.end(req, served, error)  # 9 metrics and spans: what the request did, once


async def _attempts(gw: Gateway, surface: Surface, req: Request) -> Served:
    return await run_attempts(gw, req, surface, lambda s: _accept(gw, surface, req, s))


def _accept(gw: Gateway, surface: Surface, req: Request, served: Served) -> None:
    """Price a reply's usage once (or what the request implies, when it reports none) and render it in
    the surface's dialect (inside the attempt loop: a reply that cannot be rendered is that attempt's
    failure)."""
    price_reply(gw, req, served)
    served.content = surface.render(gw, req, served)


async def _reply(
    gw: Gateway, surface: Surface, req: Request, served: Served, send: Any, probe: Probe | None
) -> None:
    status = served.reply.status if served.reply is not None else 200
    headers = response_headers(req, served, surface.headers(req, served))
    if probe is not None:
        probe.answer(status, len(served.content))
    await send_bytes(send, status, served.content, headers)


async def _stream(
    gw: Gateway, surface: Surface, req: Request, served: Served, send: Any, receive: Any, probe: Probe | None
) -> None:
    """Write the streamed answer (SSE, or the bytes a surface frames its own way); a client disconnect
    cancels the upstream read and closes it."""
    chunks = served.chunks
    assert chunks is not None
    encoder = surface.encoder(gw, req, served)
    headers = response_headers(req, served, surface.headers(req, served))
    if probe is not None:
        probe.answer(200, 0)  # the stream starts; the pump reports its bytes as they go
    await stream_until_disconnect(
        send, receive, headers, lambda: pump(gw, req, served, chunks, encoder, send), chunks
    )


async def _fail(
    gw: Gateway, surface: Surface, send: Any, req: Request | None, err: BifrostError, probe: Probe | None
) -> None:
    if "request_type" not in err.extra_fields:
        err.extra_fields["request_type"] = req.request_type if req is not None else surface.request_type
    body = surface.error_body(err)
    if probe is not None:
        probe.answer(err.status_code, len(body))
    await send_error(send, err, body, req)
    await finish(gw, req, None, err)
