"""What a request is cached under, decided once per request (`plan`).

An entry's identity is its **scope** — the cache key (``x-bf-cache-key`` or ``default_cache_key``), the
virtual key, the host user, the request family and whether it streams, and (per config) the provider and
the model — plus the request body, normalised: gateway-only and transport fields dropped, keys sorted,
the system prompt dropped when ``exclude_system_prompt`` is set. A cached answer therefore never crosses
keys or users. Semantic lookups search one namespace per scope and non-text parameters (temperature,
tools, ...), so only the wording may differ between a request and the answer it is served.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from bifrost_asgi.cache.config import CacheConfig, parse_duration
from bifrost_asgi.errors import invalid_request
from bifrost_asgi.pipeline.request import Request
from bifrost_asgi.providers.base import GATEWAY_FIELDS, Op
from bifrost_asgi.types import Headers

__all__ = ["CACHED_OPS", "CacheState", "calls_tools", "plan"]

# The request families whose answers are cached: not token counts, uploads, images or audio.
CACHED_OPS = frozenset({Op.RESPONSES, Op.CHAT, Op.TEXT, Op.EMBEDDINGS, Op.MESSAGES})
# The raw passthrough prefixes answer with the upstream's own status and headers: never cached.
_PASSTHROUGH = frozenset({"passthrough", "passthrough_stream"})
# Fields that say how to deliver the answer, not what it is; never part of an entry's identity.
_DELIVERY = frozenset({*GATEWAY_FIELDS, "model", "stream", "stream_options"})
# Where each family keeps the conversation (what is embedded, and counted against the history threshold).
_TEXT_FIELD = {Op.RESPONSES: "input", Op.CHAT: "messages", Op.TEXT: "prompt", Op.MESSAGES: "messages"}
# Top-level system prompts (Responses' instructions, Messages' system).
_SYSTEM_FIELDS = ("instructions", "system")
_SYSTEM_ROLES = frozenset({"system", "developer"})
# A call of the client's tools, in any family's answer or stream: a non-empty chat ``tool_calls`` list, a
# Responses ``function_call`` item, a Messages ``tool_use`` block.
_TOOL_CALL = re.compile(
    r'"tool_calls"\s*:\s*\[\s*\{|"type"\s*:\s*"(?:function_call|custom_tool_call|tool_use)"'
)


@dataclass(slots=True)
class CacheState:
    """Caching for one request: where its entry is, and what the answer says about the cache."""

    direct_id: str  # the exact entry: scope and normalised body
    namespace: str  # the semantic neighbourhood: scope and non-text parameters
    ttl: float
    threshold: float
    direct: bool  # looked up and kept by exact hash
    semantic: bool  # looked up and kept by meaning
    no_store: bool
    text: str  # what is embedded in semantic mode
    debug: dict[str, Any]  # extra_fields.cache_debug
    vector: list[float] | None = None  # the request's embedding, kept with its answer
    hit_type: str | None = None
    batches: list[list[list[Any]]] | None = None  # a stream's events as captured (entries.py)

    def headers(self) -> Headers:
        """The ``x-bifrost-cache-*`` answer headers."""
        debug = self.debug
        if not debug["cache_hit"]:
            return [(b"x-bifrost-cache-hit", b"false")]
        headers = [
            (b"x-bifrost-cache-hit", b"true"),
            (b"x-bifrost-cache-hit-type", str(debug["hit_type"]).encode()),
            (b"x-bifrost-cache-id", str(debug["cache_id"]).encode()),
        ]
        if "similarity" in debug:
            headers.append((b"x-bifrost-cache-similarity", f"{debug['similarity']:.6f}".encode()))
            headers.append((b"x-bifrost-cache-threshold", f"{debug['threshold']:.6f}".encode()))
        return headers


def plan(config: CacheConfig, req: Request) -> CacheState | None:
    """How this request is cached; None when it is not (no cache key, a family that is not cached, a
    conversation past the history threshold). A malformed ``x-bf-cache-*`` header is a 400 naming it."""
    if req.op not in CACHED_OPS or req.request_type in _PASSTHROUGH:
        return None
    hints = req.cache_hints or {}
    cache_key = _text_hint(hints, b"key") or config.default_cache_key
    if not cache_key or _history(req) > config.conversation_history_threshold:
        return None
    kind = _kind(hints)
    body = _normalised(req.body, req.op, config.exclude_system_prompt)
    scope = _scope(config, req, cache_key)
    provider, model = req.targets[0]
    state = CacheState(
        direct_id=_digest(scope, body),
        namespace="",
        ttl=_ttl(hints, config.ttl),
        threshold=_threshold(hints, config.threshold),
        direct=kind != "semantic",
        semantic=config.semantic and kind != "direct" and req.op is not Op.EMBEDDINGS,
        no_store=hints.get(b"no-store", b"").lower() == b"true",
        text="",
        debug={"cache_hit": False, "requested_provider": provider, "requested_model": model},
    )
    if state.semantic:  # what only a semantic lookup needs: the text, and the neighbourhood to search
        text_field = _TEXT_FIELD.get(req.op)
        params = {k: v for k, v in body.items() if k != text_field and k not in _SYSTEM_FIELDS}
        state.namespace = _digest(scope, params)
        state.text = _embedded_text(body, text_field)
    return state


def calls_tools(text: str) -> bool:
    """Whether a serialised answer (or stream event) calls the client's tools."""
    return _TOOL_CALL.search(text) is not None


# -- the headers ----------------------------------------------------------------------------------------


def _text_hint(hints: Mapping[bytes, bytes], name: bytes) -> str:
    value = hints.get(name)
    return value.decode("latin-1").strip() if value is not None else ""


def _kind(hints: Mapping[bytes, bytes]) -> str | None:
    kind = _text_hint(hints, b"type").lower()
    if kind not in ("", "direct", "semantic"):
        raise invalid_request("x-bf-cache-type must be 'direct' or 'semantic'", param="x-bf-cache-type")
    return kind or None


def _ttl(hints: Mapping[bytes, bytes], default: float) -> float:
    text = _text_hint(hints, b"ttl")
    if not text:
        return default
    try:
        return parse_duration(text)
    except ValueError:
        message = "x-bf-cache-ttl must be a duration such as '5m' or a number of seconds above 0"
        raise invalid_request(message, param="x-bf-cache-ttl") from None


def _threshold(hints: Mapping[bytes, bytes], configured: float) -> float:
    """A request may ask for closer matches than configured, never for looser ones: a looser threshold
    would let one caller be served answers to questions it did not ask."""
    text = _text_hint(hints, b"threshold")
    if not text:
        return configured
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise invalid_request(
            "x-bf-cache-threshold must be a number from 0 to 1", param="x-bf-cache-threshold"
        )
    return max(value, configured)


# -- identity ---------------------------------------------------------------------------------------------


def _scope(config: CacheConfig, req: Request, cache_key: str) -> bytes:
    key = req.vk
    principal = req.principal
    owner = principal.user_id if principal is not None else (key.owner if key is not None else None)
    provider, model = req.targets[0]
    return orjson.dumps(
        [
            cache_key,
            key.id if key is not None else None,
            owner,
            req.op.value,
            req.stream,
            provider if config.cache_by_provider else None,
            model if config.cache_by_model else None,
        ]
    )


def _digest(scope: bytes, body: Mapping[str, Any]) -> str:
    h = hashlib.blake2b(scope, digest_size=16)
    h.update(b"\0")
    h.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def _normalised(body: Mapping[str, Any], op: Op, exclude_system: bool) -> dict[str, Any]:
    out = {k: v for k, v in body.items() if k not in _DELIVERY}
    if exclude_system:
        for name in _SYSTEM_FIELDS:
            out.pop(name, None)
        text_field = _TEXT_FIELD.get(op)
        turns = out.get(text_field) if text_field is not None else None
        if text_field is not None and isinstance(turns, list):
            out[text_field] = [t for t in turns if not _is_system(t)]
    return out


def _is_system(turn: Any) -> bool:
    return isinstance(turn, dict) and turn.get("role") in _SYSTEM_ROLES


def _history(req: Request) -> int:
    """How many turns the conversation has (a plain prompt is one)."""
    text_field = _TEXT_FIELD.get(req.op)
    turns = req.body.get(text_field) if text_field is not None else None
    return len(turns) if isinstance(turns, list) and req.op is not Op.TEXT else 1


def _embedded_text(body: Mapping[str, Any], text_field: str | None) -> str:
    parts: list[str] = []
    for name in _SYSTEM_FIELDS:
        _collect(body.get(name), parts)
    if text_field is not None:
        _collect(body.get(text_field), parts)
    return "\n".join(parts)


def _collect(value: Any, out: list[str]) -> None:
    """Every text in a prompt: strings, content parts' ``text``, messages' ``content``."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect(item, out)
    elif isinstance(value, dict):
        if isinstance(value.get("text"), str):
            out.append(value["text"])
        else:
            _collect(value.get("content"), out)
