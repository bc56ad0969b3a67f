"""What every answer carries whatever its dialect: the ``x-bifrost-*`` response headers, Bifrost's
``extra_fields`` (for the dialects that have them), and the error answer's status and headers."""

from __future__ import annotations

import re
import time
from typing import Any

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.pipeline.io import JSON_HEADERS, send_bytes
from bifrost_asgi.pipeline.request import Request, Served
from bifrost_asgi.types import Headers

__all__ = ["extra_fields", "header_value", "ms_since", "response_headers", "send_error"]

# A header value the gateway echoes (a model name, an upstream's header) is cut to this length.
_MAX_HEADER_VALUE = 1024
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def header_value(value: str) -> bytes:
    """``value`` as a header value that no ASGI server refuses: control characters dropped, length
    bounded. This is the one place echoed values become header bytes, so sending headers cannot raise."""
    if value.isascii() and value.isprintable() and len(value) <= _MAX_HEADER_VALUE:
        return value.encode()  # the common case: one scan
    return _UNSAFE.sub("", value)[:_MAX_HEADER_VALUE].encode()


def extra_fields(req: Request, served: Served) -> dict[str, Any]:
    """Both generations of field names (spec §4): the seed's and the newer routing_info ones."""
    routing: dict[str, Any] = {
        "provider": served.provider,
        "model": served.model,
        "is_fallback": served.index > 0,
    }
    if served.key_name is not None:
        routing["key"] = served.key_name
    if served.index > 0:
        routing["primary_provider"], routing["primary_model"] = req.targets[0]
    fields = {
        "request_type": req.request_type,
        "provider": served.provider,
        "model_requested": served.model,
        "original_model_requested": req.model,
        "resolved_model_used": served.model,
        "routing_info": routing,
    }
    if served.model_deployment is not None:
        fields["model_deployment"] = served.model_deployment
    if req.cache is not None:
        fields["cache_debug"] = req.cache.debug
    return fields


def response_headers(req: Request, served: Served, base: Headers) -> Headers:
    headers = list(base)
    headers += [
        (b"x-bifrost-provider", header_value(served.provider)),
        (b"x-bifrost-original-model", header_value(req.model)),
        (b"x-bifrost-resolved-model", header_value(served.model)),
        (b"x-bifrost-request-type", header_value(req.request_type)),
        (b"x-bifrost-upstream-latency-ms", str(served.upstream_ms).encode()),
        (b"x-bifrost-routing-info-provider", header_value(served.provider)),
        (b"x-bifrost-routing-info-model", header_value(served.model)),
        (b"x-request-id", header_value(req.request_id)),
    ]
    if served.index > 0:
        primary_provider, primary_model = req.targets[0]
        headers += [
            (b"x-bifrost-fallback-index", str(served.index).encode()),
            (b"x-bifrost-routing-info-is-fallback", b"true"),
            (b"x-bifrost-routing-info-primary-provider", header_value(primary_provider)),
            (b"x-bifrost-routing-info-primary-model", header_value(primary_model)),
        ]
    if served.cost is not None:
        headers.append((b"x-bifrost-cost-usd", f"{served.cost['total_cost']:.10f}".encode()))
    if served.reply is not None:
        headers += [(header_value(k), header_value(v)) for k, v in served.reply.headers.items()]
    if req.cache is not None:
        headers += req.cache.headers()
    return headers


async def send_error(send: Any, err: BifrostError, body: bytes, req: Request | None) -> None:
    """An error answer (``body`` is the surface's rendering of ``err``) with the request's id and the
    provider that failed, when known; an upstream answer passed on as it is keeps its own headers."""
    headers = list(err.answer[0]) if err.answer is not None else list(JSON_HEADERS)
    if req is not None and req.request_id:
        headers.append((b"x-request-id", header_value(req.request_id)))
    provider = err.extra_fields.get("provider")
    if isinstance(provider, str):
        headers.append((b"x-bifrost-provider", header_value(provider)))
    await send_bytes(send, err.status_code, body, headers)


def ms_since(t0: float) -> int:
    return int((time.perf_counter() - t0) * 1000)
