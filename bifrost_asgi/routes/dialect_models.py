"""The model lists in the provider dialects' own shapes: ``GET /anthropic/v1/models`` (Anthropic's) and
``GET /genai/v1beta/models`` (Gemini's, with ``.../models/{model}`` for one), built from the same entries
as ``/v1/models``.

Ids: a model of the dialect's own provider kind is listed bare (``claude-sonnet-4-5``,
``models/gemini-2.5-flash``), every other as ``provider/model``, so any listed id works as the model of
a request on that prefix (Bifrost lists the bare names of every provider, which then route to the
dialect's provider).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import orjson

from bifrost_asgi.errors import BifrostError, not_found
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.io import JSON_HEADERS, send_bytes
from bifrost_asgi.routes.models import listed_models, query_params
from bifrost_asgi.surfaces.anthropic import anthropic_error_body
from bifrost_asgi.surfaces.gemini import google_error_body
from bifrost_asgi.types import Scope

__all__ = ["AnthropicModels", "GeminiModels", "anthropic_models", "gemini_models"]

_EPOCH = "1970-01-01T00:00:00Z"  # no upstream says when a model was made; Anthropic's field is required
_GEMINI_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]
_MAX_PAGE = 1000


def _page_size(value: str | None, default: int) -> int:
    size = int(value) if value is not None and value.isdigit() else default
    return min(max(size, 1), _MAX_PAGE)


def _own_id(gw: Gateway, entry: dict[str, Any], kind: str) -> str:
    provider: str = entry["owned_by"]
    full: str = entry["id"]
    return full.partition("/")[2] if gw.config.provider_kind(provider) == kind else full


def anthropic_models(gw: Gateway, entries: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """Anthropic's ``ListModels`` page: ``limit`` (default 20), ``after_id`` / ``before_id`` cursors."""
    ids = [_own_id(gw, entry, "anthropic") for entry in entries]
    if query.get("after_id") in ids:
        ids = ids[ids.index(query["after_id"]) + 1 :]
    if query.get("before_id") in ids:
        ids = ids[: ids.index(query["before_id"])]
    limit = _page_size(query.get("limit"), 20)
    page = ids[:limit]
    data = [{"type": "model", "id": i, "display_name": i, "created_at": _EPOCH} for i in page]
    first, last = (page[0], page[-1]) if page else (None, None)
    return {"data": data, "has_more": len(ids) > limit, "first_id": first, "last_id": last}


def gemini_model(name: str) -> dict[str, Any]:
    return {"name": f"models/{name}", "displayName": name, "supportedGenerationMethods": _GEMINI_METHODS}


def gemini_models(gw: Gateway, entries: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """Gemini's ``models.list`` page: ``pageSize`` (default 50) and the ``nextPageToken`` it returned."""
    names = [_own_id(gw, entry, "gemini") for entry in entries]
    token = query.get("pageToken", "")
    start = int(token) if token.isdigit() else 0
    size = _page_size(query.get("pageSize"), 50)
    body: dict[str, Any] = {"models": [gemini_model(n) for n in names[start : start + size]]}
    if start + size < len(names):
        body["nextPageToken"] = str(start + size)
    return body


class _DialectList(ABC):
    """A model list endpoint: the dialect renders the models the caller may list; a caller who may not,
    or a model that is not listed, is answered in the dialect's error shape."""

    __slots__ = ("gw",)
    error_body: Callable[[BifrostError], bytes]

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    @abstractmethod
    def render(self, scope: Scope, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """The dialect's answer listing ``entries``; a BifrostError is answered in the error shape."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            body = self.render(scope, await listed_models(self.gw, scope))
        except BifrostError as err:
            await send_bytes(send, err.status_code, self.error_body(err), JSON_HEADERS)
            return
        await send_bytes(send, 200, orjson.dumps(body), JSON_HEADERS)


class AnthropicModels(_DialectList):
    """``GET /anthropic/v1/models``."""

    __slots__ = ()
    error_body = staticmethod(anthropic_error_body)

    def render(self, scope: Scope, entries: list[dict[str, Any]]) -> dict[str, Any]:
        return anthropic_models(self.gw, entries, query_params(scope))


class GeminiModels(_DialectList):
    """``GET {p}/v1beta/models`` and ``GET {p}/v1beta/models/{model}`` (404 in Google's shape when the
    gateway does not list it)."""

    __slots__ = ()
    error_body = staticmethod(google_error_body)

    def render(self, scope: Scope, entries: list[dict[str, Any]]) -> dict[str, Any]:
        wanted = scope.get("path_params", {}).get("target")
        if wanted is None:
            return gemini_models(self.gw, entries, query_params(scope))
        name = str(wanted).removeprefix("models/")
        if name not in {_own_id(self.gw, entry, "gemini") for entry in entries}:
            raise not_found(f"models/{name} is not found")
        return gemini_model(name)
