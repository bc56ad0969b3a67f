"""What every answer carries whatever its dialect: the ``x-bifrost-*`` response headers, Bifrost's
``extra_fields`` (for the dialects that have them), and the error answer's status and headers."""

from __future__ import annotations

import time
from typing import Any

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.pipeline.io import JSON_HEADERS, send_bytes
from bifrost_asgi.pipeline.request import Request, Served
from bifrost_asgi.types import Headers

__all__ = ["extra_fields", "ms_since", "response_headers", "send_error"]


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
    return fields


def response_headers(req: Request, served: Served, base: Headers) -> Headers:
    headers = list(base)
    headers += [
        (b"x-bifrost-provider", served.provider.encode()),
        (b"x-bifrost-original-model", req.model.encode()),
        (b"x-bifrost-resolved-model", served.model.encode()),
        (b"x-bifrost-request-type", req.request_type.encode()),
        (b"x-bifrost-upstream-latency-ms", str(served.upstream_ms).encode()),
        (b"x-bifrost-routing-info-provider", served.provider.encode()),
        (b"x-bifrost-routing-info-model", served.model.encode()),
        (b"x-request-id", req.request_id.encode()),
    ]
    if served.index > 0:
        primary_provider, primary_model = req.targets[0]
        headers += [
            (b"x-bifrost-fallback-index", str(served.index).encode()),
            (b"x-bifrost-routing-info-is-fallback", b"true"),
            (b"x-bifrost-routing-info-primary-provider", primary_provider.encode()),
            (b"x-bifrost-routing-info-primary-model", primary_model.encode()),
        ]
    if served.cost is not None:
        headers.append((b"x-bifrost-cost-usd", f"{served.cost['total_cost']:.10f}".encode()))
    if served.reply is not None:
        headers += [(k.encode(), v.encode()) for k, v in served.reply.headers.items()]
    return headers


async def send_error(send: Any, err: BifrostError, body: bytes, req: Request | None) -> None:
    """An error answer (``body`` is the surface's rendering of ``err``) with the request's id and the
    provider that failed, when known."""
    headers = list(JSON_HEADERS)
    if req is not None and req.request_id:
        headers.append((b"x-request-id", req.request_id.encode()))
    provider = err.extra_fields.get("provider")
    if isinstance(provider, str):
        headers.append((b"x-bifrost-provider", provider.encode()))
    await send_bytes(send, err.status_code, body, headers)


def ms_since(t0: float) -> int:
    return int((time.perf_counter() - t0) * 1000)
