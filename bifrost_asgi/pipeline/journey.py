"""The request's journey, top to bottom (STYLE lesson 3).

    read body -> parse what routing needs -> resolve targets (model, fallbacks)
    -> for each target: provider call with retries and key rotation
    -> price the usage -> respond (JSON, or SSE with a disconnect watch)

Everything else is a small collaborator called from here: providers, the resolver, pricing, SSE.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from bifrost_asgi.adapters.principal import PRINCIPAL_SCOPE_KEY, Principal
from bifrost_asgi.config import KeyConfig, NetworkConfig
from bifrost_asgi.errors import (
    BifrostError,
    credentials_exhausted,
    internal_error,
    invalid_request,
    not_configured,
)
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.governance.engine import Ticket, extract_virtual_key
from bifrost_asgi.governance.jwt import looks_like_jwt
from bifrost_asgi.governance.models import VirtualKey
from bifrost_asgi.pipeline.accounting import admit, authorize, finish, release
from bifrost_asgi.pipeline.io import (
    JSON_HEADERS,
    SSE_HEADERS,
    ClientDisconnected,
    Headers,
    read_body,
    send_bytes,
    stream_until_disconnect,
)
from bifrost_asgi.pricing import usage_from_chat, usage_from_responses
from bifrost_asgi.providers.base import GATEWAY_FIELDS, Call, Chunk, ChunkStream, Op, Reply
from bifrost_asgi.providers.http import object_or_none
from bifrost_asgi.routing import Target
from bifrost_asgi.sse import DONE, frame
from bifrost_asgi.types import Scope

__all__ = [
    "Request",
    "Served",
    "attempt_target",
    "extra_fields",
    "handle_inference",
    "parse_body",
    "parse_request",
    "read_headers",
    "response_headers",
    "send_error",
]

log = logging.getLogger("bifrost_asgi")
T = TypeVar("T")

# What each operation requires besides `model`, with Bifrost's exact messages (spec §5.2).
_REQUIRED: dict[Op, tuple[str, str, tuple[type, ...]]] = {
    Op.RESPONSES: ("input", "input is required for responses", (str, list)),
    Op.CHAT: ("messages", "messages is required for chat completion", (list,)),
    Op.TEXT: ("prompt", "prompt is required for text completion", (str, list)),
}
_ZERO_COST = {
    "input_tokens_cost": 0.0,
    "output_tokens_cost": 0.0,
    "reasoning_tokens_cost": 0.0,
    "request_cost": 0.0,
    "total_cost": 0.0,
}
_VK_HEADER_NAMES = frozenset({b"x-bf-vk", b"authorization", b"x-api-key", b"x-goog-api-key", b"api-key"})
_EH_PREFIX = b"x-bf-eh-"
# Never forwarded even when asked for with x-bf-eh-* (spec §10).
_EH_DENY = frozenset(
    {
        "proxy-authorization", "cookie", "host", "content-length", "connection", "transfer-encoding",
        "x-api-key", "x-goog-api-key", "x-bf-api-key", "x-bf-api-key-id", "x-bf-vk", "authorization",
    }
)  # fmt: skip


@dataclass(slots=True)
class Request:
    """A parsed inference request: only what routing and the response need."""

    op: Op
    body: dict[str, Any]
    raw: bytes
    stream: bool
    model: str
    targets: list[Target]
    request_type: str
    request_id: str
    started: float
    raw_request: bool = False
    raw_response: bool = False
    forward_headers: dict[str, str] = field(default_factory=dict)
    vk_value: str | None = None  # the virtual key as sent; never logged
    bearer_token: str | None = None  # a bearer value that may be a signed token (JWT)
    vk: VirtualKey | None = None
    principal: Principal | None = None  # the host-app user, set by a framework adapter
    wall_start: float = field(default_factory=time.time)


@dataclass(slots=True)
class Served:
    """Which attempt answered, and its answer (a reply or an open stream)."""

    provider: str
    model: str
    index: int
    key_name: str | None
    reply: Reply | None = None
    chunks: ChunkStream | None = None
    upstream_ms: int = 0
    usage: dict[str, Any] | None = None
    cost: dict[str, float] | None = None
    model_deployment: str | None = None
    ticket: Ticket | None = None
    delivered: int = 0  # stream chunks sent to the client
    error: BifrostError | None = None  # a failure after the answer started (mid-stream)


# -- parsing ----------------------------------------------------------------------------------------


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"invalid request format: {exc}") from None
    if not isinstance(body, dict):
        raise invalid_request("invalid request format: the body must be a JSON object")
    return body


def parse_request(
    gw: Gateway, op: Op, raw: bytes, scope: Scope, integration: str | None, started: float
) -> Request:
    body = parse_body(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("model is required", param="model")
    _check_required(op, body)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid_request("stream must be a boolean", param="stream")
    # The primary target is resolved after authentication: a virtual key may choose the provider.
    targets = gw.resolver.fallbacks(body.get("fallbacks"))
    req = Request(op, body, raw, stream, model, targets, op.request_type(stream), "", started)
    read_headers(req, scope)
    return req


def resolve_primary(gw: Gateway, req: Request, integration: str | None, chosen: str | None) -> None:
    """Put the primary target first: the key's weighted choice for a bare model, else the resolver's."""
    if chosen is not None:
        primary = (chosen, req.model)
    else:
        primary = gw.resolver.resolve(
            req.model, "openai" if integration else None, force=integration == "openai"
        )
    req.targets.insert(0, primary)


def _check_required(op: Op, body: dict[str, Any]) -> None:
    required = _REQUIRED.get(op)
    if required is None:
        return
    name, message, types = required
    value = body.get(name)
    if value is None or value == "" or value == []:
        raise invalid_request(message, param=name)
    if not isinstance(value, types):
        kinds = " or ".join("a string" if t is str else "an array" for t in types)
        raise invalid_request(f"{name} must be {kinds}", param=name)


def read_headers(req: Request, scope: Scope) -> None:
    """Everything the gateway reads from headers, in one pass."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            req.request_id = value.decode("latin-1")
        elif name.startswith(_EH_PREFIX):
            target = name[len(_EH_PREFIX) :].decode("latin-1")
            if target not in _EH_DENY:
                req.forward_headers[target] = value.decode("latin-1")
        elif name == b"x-bf-send-back-raw-response":
            req.raw_response = value.lower() == b"true"
        elif name == b"x-bf-send-back-raw-request":
            req.raw_request = value.lower() == b"true"
        elif name in _VK_HEADER_NAMES:
            _read_credential(req, name, value)
    if not req.request_id:
        req.request_id = new_request_id()
    req.principal = scope.get(PRINCIPAL_SCOPE_KEY)


# Request ids: a random per-process prefix and a counter, in UUID form. uuid4() per request costs an
# os.urandom call (~2% of a count_tokens request); an id needs to be unique, not unguessable.
_ids = itertools.count()
_id_prefix = ""


def _new_id_prefix() -> None:
    global _id_prefix, _ids
    hex_ = uuid.uuid4().hex
    _id_prefix = f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-"
    _ids = itertools.count()


_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)  # forked workers must not repeat the parent's ids


def new_request_id() -> str:
    n = next(_ids)
    return f"{_id_prefix}{(n >> 48) & 0xFFFF:04x}-{n & 0xFFFFFFFFFFFF:012x}"


def _read_credential(req: Request, name: bytes, value: bytes) -> None:
    vk = extract_virtual_key(name, value)
    if vk is not None:
        if req.vk_value is None or name == b"x-bf-vk":  # x-bf-vk wins over the generic headers
            req.vk_value = vk
    elif name == b"authorization" and value[:7].lower() == b"bearer ":
        token = value[7:].decode("latin-1").strip()
        if looks_like_jwt(token):  # a signed token (seed 003); used only when governance verifies them
            req.bearer_token = token


# -- attempts: fallbacks, retries, keys ------------------------------------------------------------


async def run_attempts(gw: Gateway, req: Request) -> Served:
    """Try the primary, then each fallback in order; return the first success (spec §3)."""
    primary_error: BifrostError | None = None
    for index, (provider, model) in enumerate(req.targets):
        if provider not in gw.providers:
            if index == 0:
                raise not_configured(provider)
            continue  # A fallback whose provider has no config is skipped.
        try:
            return await attempt_target(gw, req, index, provider, model)
        except BifrostError as err:
            err.extra_fields.update(_error_fields(req, provider, model))
            if index == 0:
                primary_error = err
            if not err.allow_fallbacks or err.error_type == "request_cancelled":
                raise
    assert primary_error is not None  # the loop ran at least once: targets always holds the primary
    raise primary_error


async def attempt_target(gw: Gateway, req: Request, index: int, provider_name: str, model: str) -> Served:
    provider = gw.providers[provider_name]
    pc = gw.config.providers[provider_name]
    net = pc.network_config
    passthrough = model == req.model and not any(f in req.body for f in GATEWAY_FIELDS)
    call = Call(req.op, req.body, req.raw, model, req.stream, passthrough, req.forward_headers,
                net.default_request_timeout_in_seconds)  # fmt: skip
    # The mock needs no credentials: its keys only list models for bare-name resolution.
    keys = [k for k in pc.keys if k.serves(model)] if provider_name not in gw.keyless else []
    if pc.keys and not keys and provider_name not in gw.keyless:
        raise invalid_request(f"no key of provider {provider_name} is configured for model {model}")
    ticket = await admit(gw, req, provider_name, model)
    t0 = time.perf_counter()
    try:
        if req.stream:
            chunks, key = await _with_retries(
                provider_name, net, keys, lambda k: provider.open_stream(call, k)
            )
            served = Served(provider_name, model, index, _key_name(pc.keys, key), chunks=chunks)
        else:
            reply, key = await _with_retries(provider_name, net, keys, lambda k: provider.send(call, k))
            served = Served(provider_name, model, index, _key_name(pc.keys, key), reply=reply)
    except BaseException:
        await release(gw, ticket)
        raise
    served.ticket = ticket
    served.upstream_ms = int((time.perf_counter() - t0) * 1000)
    served.model_deployment = call.model_deployment
    return served


async def _with_retries(
    provider: str,
    net: NetworkConfig,
    keys: list[KeyConfig],
    attempt: Callable[[KeyConfig | None], Awaitable[T]],
) -> tuple[T, KeyConfig | None]:
    """Retry with jittered exponential backoff; rotate keys on 429, retire them on 401/403.

    A retired key is a configuration fault rather than a transient one, so rotating away from it does
    not spend the ``max_retries`` budget; when every key is retired the answer is 502
    ``upstream_credentials_exhausted`` (spec §3).
    """
    dead: set[int] = set()
    used: set[int] = set()
    retries = 0
    key = _choose(keys, dead, used)
    while True:
        try:
            return await attempt(key), key
        except BifrostError as err:
            if key is not None and err.dead_key:
                dead.add(id(key))
                if len(dead) == len(keys):
                    raise credentials_exhausted(provider, len(keys), err.message) from None
                key = _choose(keys, dead, used)
                continue
            if not err.retryable or retries >= net.max_retries:
                raise
            retries += 1
            if key is not None and err.rotate_key:
                used.add(id(key))
                if len(used | dead) >= len(keys):
                    used.clear()  # every key was tried once: start a new cycle
                key = _choose(keys, dead, used)
            await asyncio.sleep(_backoff(net, retries))


def _choose(keys: list[KeyConfig], dead: set[int], used: set[int]) -> KeyConfig | None:
    if not keys:
        return None
    if len(keys) == 1:
        return keys[0]
    pool = [k for k in keys if id(k) not in dead and id(k) not in used] or [
        k for k in keys if id(k) not in dead
    ]
    return random.choices(pool, weights=[k.weight for k in pool])[0]


def _backoff(net: NetworkConfig, attempt: int) -> float:
    """``min(initial * 2^attempt, max) * U(0.8, 1.2)``, capped at max (Bifrost's calculateBackoff)."""
    base = min(net.retry_backoff_initial * (2 ** (attempt - 1)), net.retry_backoff_max)
    jittered: float = base * random.uniform(0.8, 1.2)
    return min(jittered, net.retry_backoff_max) / 1000.0


def _key_name(keys: tuple[KeyConfig, ...], key: KeyConfig | None) -> str | None:
    if key is None:
        return None
    return key.name or f"key-{next(i for i, k in enumerate(keys) if k is key)}"


# -- responses --------------------------------------------------------------------------------------


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


def price(gw: Gateway, req: Request, served: Served, usage: dict[str, Any], tier: Any) -> None:
    """Put ``usage.cost`` on the usage object in place."""
    parsed = usage_from_responses(usage) if req.op is Op.RESPONSES else usage_from_chat(usage)
    served.usage = usage
    if parsed is None:
        return
    cost = gw.pricing.cost(
        served.provider, served.model, parsed, service_tier=tier if isinstance(tier, str) else None
    )
    # Unknown price: cost 0 (spec §7), but no x-bifrost-cost-usd header, which would claim a known price.
    usage["cost"] = cost if cost is not None else dict(_ZERO_COST)
    served.cost = cost


async def send_reply(gw: Gateway, req: Request, served: Served, send: Any) -> None:
    reply = served.reply
    assert reply is not None
    body = reply.body
    usage = body.get("usage")
    if isinstance(usage, dict):
        price(gw, req, served, usage, body.get("service_tier"))
    ef = extra_fields(req, served)
    ef["latency"] = _ms_since(req.started)
    ef["chunk_index"] = 0
    _add_raw(gw, req, served, reply, ef)
    body["extra_fields"] = ef
    await send_bytes(send, 200, orjson.dumps(body), response_headers(req, served, JSON_HEADERS))


def _add_raw(gw: Gateway, req: Request, served: Served, reply: Reply, ef: dict[str, Any]) -> None:
    pc = gw.config.providers[served.provider]
    # Bodies only: credentials travel in headers, which are never included.
    if (pc.send_back_raw_request or req.raw_request) and reply.raw_request is not None:
        ef["raw_request"] = _loads_or_text(reply.raw_request)
    if (pc.send_back_raw_response or req.raw_response) and reply.raw_response is not None:
        ef["raw_response"] = _loads_or_text(reply.raw_response)


def _loads_or_text(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value.decode("utf-8", "replace")
    return value


def _ms_since(t0: float) -> int:
    return int((time.perf_counter() - t0) * 1000)


# -- streaming --------------------------------------------------------------------------------------


class _StreamWriter:
    """Frames chunks as SSE with ``extra_fields`` spliced in, pricing the one chunk that has usage."""

    __slots__ = ("gw", "req", "served", "send", "static", "index", "last", "event_frames")

    def __init__(self, gw: Gateway, req: Request, served: Served, send: Any) -> None:
        self.gw = gw
        self.req = req
        self.served = served
        self.send = send
        # Everything in extra_fields but the per-chunk values, serialised once per stream.
        self.static = orjson.dumps(extra_fields(req, served))[:-1]
        self.index = 0
        self.last = req.started
        self.event_frames = req.op is Op.RESPONSES

    def _extra(self) -> bytes:
        now = time.perf_counter()
        latency = int((now - self.last) * 1000)
        self.last = now
        ef = self.static + b',"latency":%d,"chunk_index":%d}' % (latency, self.index)
        self.index += 1
        return ef

    def encode(self, chunk: Chunk) -> bytes:
        if chunk.usage is not None:
            tier = (chunk.obj or {}).get("response", chunk.obj or {}).get("service_tier")
            price(self.gw, self.req, self.served, chunk.usage, tier)
        event = chunk.event if self.event_frames else None
        data = chunk.data
        if data is not None and len(data) > 2 and data[-1:] == b"}":
            return frame(event, data[:-1] + b',"extra_fields":' + self._extra() + b"}")
        obj = chunk.obj if chunk.obj is not None else object_or_none(data or b"{}")
        if obj is None:  # not a JSON object: passed on as the upstream sent it
            return frame(event, data or b"")
        obj["extra_fields"] = orjson.Fragment(self._extra())
        return frame(event, orjson.dumps(obj))

    def encode_error(self, err: BifrostError) -> bytes:
        err.extra_fields.update(_error_fields(self.req, self.served.provider, self.served.model))
        return frame("error" if self.event_frames else None, err.to_json())

    async def pump(self, chunks: ChunkStream) -> None:
        send = self.send
        encode = self.encode
        try:
            async for batch in chunks:
                body = b"".join([encode(c) for c in batch])  # one write per batch
                await send({"type": "http.response.body", "body": body, "more_body": True})
                self.served.delivered += len(batch)
        except BifrostError as err:
            self.served.error = err
            await send({"type": "http.response.body", "body": self.encode_error(err), "more_body": True})
        except Exception as exc:  # never leave a client hanging on a half-written stream
            log.exception("stream failed (request %s)", self.req.request_id)
            internal = internal_error(f"stream failed: {type(exc).__name__}")
            self.served.error = internal
            await send({"type": "http.response.body", "body": self.encode_error(internal), "more_body": True})
        else:
            if not self.event_frames:
                await send({"type": "http.response.body", "body": DONE, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def send_stream(gw: Gateway, req: Request, served: Served, send: Any, receive: Any) -> None:
    """Write the SSE response; a client disconnect cancels the upstream read and closes it."""
    chunks = served.chunks
    assert chunks is not None
    writer = _StreamWriter(gw, req, served, send)
    headers = response_headers(req, served, SSE_HEADERS)
    await stream_until_disconnect(send, receive, headers, lambda: writer.pump(chunks), chunks)


# -- errors -----------------------------------------------------------------------------------------


def _error_fields(req: Request | None, provider: str | None, model: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if provider is not None:
        fields["provider"] = provider
    if model is not None:
        fields["model_requested"] = model
    if req is not None:
        fields["request_type"] = req.request_type
        fields["original_model_requested"] = req.model
    return fields


async def send_error(
    send: Any, err: BifrostError, req: Request | None = None, request_type: str = ""
) -> None:
    if "request_type" not in err.extra_fields and (req is not None or request_type):
        err.extra_fields["request_type"] = req.request_type if req is not None else request_type
    headers = list(JSON_HEADERS)
    if req is not None and req.request_id:
        headers.append((b"x-request-id", req.request_id.encode()))
    provider = err.extra_fields.get("provider")
    if isinstance(provider, str):
        headers.append((b"x-bifrost-provider", provider.encode()))
    await send_bytes(send, err.status_code, err.to_json(), headers)


# -- the endpoint -----------------------------------------------------------------------------------


async def handle_inference(
    gw: Gateway, op: Op, integration: str | None, scope: Scope, receive: Any, send: Any
) -> None:
    started = time.perf_counter()
    if not gw.started:
        await gw.start()
    req: Request | None = None
    try:
        raw = await read_body(scope, receive, gw.max_body)
        req = parse_request(gw, op, raw, scope, integration, started)
        resolve_primary(gw, req, integration, await authorize(gw, req))
        served = await run_attempts(gw, req)
    except ClientDisconnected:
        return
    except BifrostError as err:
        await send_error(send, err, req, op.request_type(False))
        await finish(gw, req, None, err)
        return
    except Exception:  # a bug of ours must still answer in Bifrost's shape, never a bare 500 page
        log.exception("unexpected error handling %s", op.value)
        await send_error(send, internal_error(), req, op.request_type(False))
        await finish(gw, req, None, internal_error())
        return
    try:
        if served.chunks is not None:
            await send_stream(gw, req, served, send, receive)
        else:
            await send_reply(gw, req, served, send)
    finally:
        await finish(gw, req, served, served.error)
