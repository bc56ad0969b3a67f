"""The request as the journey carries it: what was parsed from the body and read from the headers once,
and what the attempts produced (`Served`).

Surfaces build the `Request`; everything the gateway reads from headers is read here
in one pass (`read_headers`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from bifrost_asgi.adapters.auth import extract_virtual_key
from bifrost_asgi.adapters.principal import PRINCIPAL_SCOPE_KEY, Principal
from bifrost_asgi.errors import BifrostError, invalid_request
from bifrost_asgi.governance.engine import Ticket
from bifrost_asgi.governance.jwt import looks_like_jwt
from bifrost_asgi.governance.models import VirtualKey
from bifrost_asgi.pricing import Usage
from bifrost_asgi.providers.base import ChunkStream, Op, Reply
from bifrost_asgi.routing import Target, check_model_string
from bifrost_asgi.types import Headers, Scope

if TYPE_CHECKING:  # the cache builds on this module
    from bifrost_asgi.cache.keys import CacheState

__all__ = [
    "Request",
    "Served",
    "new_request_id",
    "parse_body",
    "read_headers",
    "require_model",
    "require_stream_flag",
]

_VK_HEADER_NAMES = frozenset({b"x-bf-vk", b"authorization", b"x-api-key", b"x-goog-api-key", b"api-key"})
_EH_PREFIX = b"x-bf-eh-"
_CACHE_PREFIX = b"x-bf-cache-"
_MAX_REQUEST_ID = 128
# Never forwarded even when asked for with x-bf-eh-* (spec §10).
_EH_DENY = frozenset(
    {
        "proxy-authorization", "cookie", "host", "content-length", "connection", "transfer-encoding",
        "x-api-key", "x-goog-api-key", "x-bf-api-key", "x-bf-api-key-id", "x-bf-vk", "authorization",
    }
)  # fmt: skip


@dataclass(slots=True)
class Request:
    """A parsed request: only what routing, governance and the response need.

    ``op`` is the client's dialect (what the surface parsed); each attempt may send a provider another
    op (``/anthropic`` bridges Messages to Responses). ``targets`` holds the primary first, then the
    fallbacks, resolved once after authorization. ``state`` is the surface's own per-request memo.
    """

    op: Op
    body: dict[str, Any]
    raw: bytes
    stream: bool
    model: str
    request_type: str
    started: float
    targets: list[Target] = field(default_factory=list)
    fallbacks: list[Target] = field(default_factory=list)
    request_id: str = ""
    metered: bool = True  # charged to request/token limits and budgets (token counting is not)
    raw_request: bool = False
    raw_response: bool = False
    forward_headers: dict[str, str] = field(default_factory=dict)
    vk_value: str | None = None  # the virtual key as sent; never logged
    bearer_token: str | None = None  # a bearer value that may be a signed token (JWT)
    vk: VirtualKey | None = None
    principal: Principal | None = None  # the host-app user, set by a framework adapter
    state: dict[str, Any] = field(default_factory=dict)
    # The usage the request itself implies, when its size says little about it (media: characters to
    # speak, images to make, an upload's bytes that are not tokens). Admission reserves it, and it is
    # what is charged (as an estimate) when the answer reports no usage of its own.
    estimate: Usage | None = None
    wall_start: float = field(default_factory=time.time)
    # x-bf-cache-* headers, by the name after the prefix ("key", "ttl", ...); None when there are none.
    cache_hints: dict[bytes, bytes] | None = None
    # What the response cache decided for this request; None when it does not apply (cache/keys.py).
    cache: CacheState | None = None


@dataclass(slots=True)
class Served:
    """Which attempt answered, and its answer (a reply or an open stream)."""

    provider: str
    model: str
    index: int
    key_name: str | None
    op: Op
    reply: Reply | None = None
    content: bytes = b""  # the reply as the client's answer, once accepted
    chunks: ChunkStream | None = None
    upstream_ms: int = 0
    usage: Usage | None = None  # parsed once, when the answer reports it
    usage_estimated: bool = False  # ``usage`` is the request's estimate, not the provider's report
    cost: dict[str, float] | None = None
    model_deployment: str | None = None
    answer_headers: Headers | None = None  # a raw passthrough answer's own headers (Call.answer_headers)
    ticket: Ticket | None = None
    delivered: int = 0  # stream chunks sent to the client
    error: BifrostError | None = None  # a failure after the answer started (mid-stream)
    cache_hit: str | None = None  # "direct" or "semantic" when the answer came from the response cache


# -- parsing ----------------------------------------------------------------------------------------


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"invalid request format: {exc}") from None
    if not isinstance(body, dict):
        raise invalid_request("invalid request format: the body must be a JSON object")
    return body


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("model is required", param="model")
    return check_model_string(model, "model")


def require_stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid_request("stream must be a boolean", param="stream")
    return stream


def read_headers(req: Request, scope: Scope) -> None:
    """Everything the gateway reads from headers, in one pass."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if len(value) <= _MAX_REQUEST_ID:  # echoed and logged: a longer one is replaced by ours
                req.request_id = value.decode("latin-1")
        elif name.startswith(_EH_PREFIX):
            target = name[len(_EH_PREFIX) :].decode("latin-1")
            if target not in _EH_DENY:
                req.forward_headers[target] = value.decode("latin-1")
        elif name.startswith(_CACHE_PREFIX):
            if req.cache_hints is None:
                req.cache_hints = {}
            req.cache_hints[name[len(_CACHE_PREFIX) :]] = value
        elif name == b"x-bf-send-back-raw-response":
            req.raw_response = value.lower() == b"true"
        elif name == b"x-bf-send-back-raw-request":
            req.raw_request = value.lower() == b"true"
        elif name in _VK_HEADER_NAMES:
            _read_credential(req, name, value)
    if not req.request_id:
        req.request_id = new_request_id()
    req.principal = scope.get(PRINCIPAL_SCOPE_KEY)


def _read_credential(req: Request, name: bytes, value: bytes) -> None:
    vk = extract_virtual_key(name, value)
    if vk is not None:
        if req.vk_value is None or name == b"x-bf-vk":  # x-bf-vk wins over the generic headers
            req.vk_value = vk
    elif name == b"authorization" and value[:7].lower() == b"bearer ":
        token = value[7:].decode("latin-1").strip()
        if looks_like_jwt(token):  # a signed token (seed 003); used only when governance verifies them
            req.bearer_token = token


# -- request ids --------------------------------------------------------------------------------------
#
# Random (version-4-shaped) UUIDs, drawn from os.urandom in batches: one system call per 256 ids instead
# of one per request (uuid4() per request cost ~2% of a count_tokens request).

_BATCH = 256
_pool: list[bytes] = []


def _refill() -> None:
    data = os.urandom(16 * _BATCH)
    _pool.extend(data[i : i + 16] for i in range(0, len(data), 16))


def new_request_id() -> str:
    if not _pool:
        _refill()
    b = bytearray(_pool.pop())
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


os.register_at_fork(after_in_child=_pool.clear)  # a forked worker must not reuse the parent's draws
