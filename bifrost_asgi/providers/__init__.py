"""Providers: the extension point for talking to a model API.

A provider implements the small `Provider` protocol (``send``, ``open_stream``, ``models``,
``uses_keys``); one that calls an HTTP API can start from `HTTPProvider`, which holds the per-key
headers and the two upstream calls, with every transport failure and error answer mapped to a
BifrostError. Register one with ``create_app(config, providers={"name": factory})`` (docs/extending.md).

The built-in families live in their own modules (openai, anthropic, gemini, azure, mock).
"""

from __future__ import annotations

from bifrost_asgi.providers.base import (
    FORM_GATEWAY_FIELDS,
    GATEWAY_FIELDS,
    MEDIA_OPS,
    OBJECTS,
    TERMINAL_EVENTS,
    Call,
    Chunk,
    ChunkStream,
    Op,
    Provider,
    ProviderFactory,
    Reply,
    Shape,
    StreamConverter,
    aclose_stream,
    check_shape,
    client_body,
    converted,
    event_chunk,
)
from bifrost_asgi.providers.http import (
    HTTPProvider,
    loads_object,
    map_transport_error,
    object_or_none,
    open_stream,
    request,
    upstream_error,
)

__all__ = [
    "Call",
    "Chunk",
    "ChunkStream",
    "FORM_GATEWAY_FIELDS",
    "GATEWAY_FIELDS",
    "HTTPProvider",
    "MEDIA_OPS",
    "OBJECTS",
    "Op",
    "Provider",
    "ProviderFactory",
    "Reply",
    "Shape",
    "StreamConverter",
    "TERMINAL_EVENTS",
    "aclose_stream",
    "check_shape",
    "client_body",
    "converted",
    "event_chunk",
    "loads_object",
    "map_transport_error",
    "object_or_none",
    "open_stream",
    "request",
    "upstream_error",
]
