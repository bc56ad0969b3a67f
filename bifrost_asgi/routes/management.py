"""What every management-API handler shares: the backend it works on, JSON in and out, and Bifrost's list
conventions (pagination, ``search``, ``from_memory``).

The handlers live by subject (``governance_api`` for keys, teams, customers, budgets, rate limits and
provider limits; ``logs_api`` for the usage log); ``admin`` puts them behind auth. None of this is the hot
path: plain Starlette requests and responses are enough.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from bifrost_asgi.config import GatewayConfig
from bifrost_asgi.errors import BifrostError, body_too_large, invalid_request, not_found
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.stores.logs import LogStore

__all__ = [
    "AdminBackend",
    "BackendGetter",
    "Context",
    "Page",
    "error_response",
    "from_memory",
    "invalid",
    "json_response",
    "page",
    "read_json",
]

T = TypeVar("T")

MAX_BODY = 1024 * 1024  # a record definition is a few kB; refuse to buffer more than this
# Responses may carry a key's plaintext (create) or usage figures: never let a proxy or browser keep them.
HEADERS = {"cache-control": "no-store"}
# Bifrost's list pages (ClampPaginationParams): 25 by default, at most 100.
_DEFAULT_LIMIT = 25
_MAX_LIMIT = 100


class LogSource(Protocol):
    """What holds the log store: the gateway's `LogWriter`."""

    @property
    def store(self) -> LogStore: ...

    @property
    def dropped(self) -> int: ...


class AdminBackend(Protocol):
    """What the management API needs from the gateway; `Gateway` satisfies it as is. ``config`` names the
    configured providers (None: any provider name is accepted)."""

    @property
    def governance(self) -> Governance | None: ...

    @property
    def logs(self) -> LogSource | None: ...

    @property
    def config(self) -> GatewayConfig | None: ...


BackendGetter = Callable[[], AdminBackend | Awaitable[AdminBackend]]


class Context:
    """One management API's access to the gateway, shared by its handlers."""

    def __init__(self, get_backend: BackendGetter) -> None:
        self._get_backend = get_backend
        # Updates are read-modify-write on the key store: serialise them in this process so that, e.g., a
        # PUT that read a key before a DELETE revoked it cannot write the active record back.
        self.write_lock = asyncio.Lock()

    async def backend(self) -> AdminBackend:
        got = self._get_backend()
        return await got if isinstance(got, Awaitable) else got

    async def governance(self) -> Governance:
        gov = (await self.backend()).governance
        if gov is None:
            raise not_found("governance is not configured: add a `governance` section to config.json")
        return gov

    async def log_source(self) -> LogSource:
        logs = (await self.backend()).logs
        if logs is None:
            raise not_found("usage logs are disabled (governance.logs.enabled, governance.store)")
        return logs

    async def providers(self) -> frozenset[str] | None:
        config = (await self.backend()).config
        return None if config is None else frozenset(config.providers)


# -- JSON in and out ---------------------------------------------------------------------------------


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, headers=HEADERS, media_type="application/json")


def error_response(exc: BifrostError, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        exc.to_json(), exc.status_code, headers={**HEADERS, **(headers or {})}, media_type="application/json"
    )


def invalid(exc: ValidationError) -> BifrostError:
    """The first problem, naming the field; never the submitted value (it may be anything)."""
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    message = first["msg"].removeprefix("Value error, ")
    return invalid_request(f"{where}: {message}", param=where)


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """The request's JSON body, bounded; ``optional``: an empty body reads as ``{}``."""
    size, chunks = 0, []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise body_too_large(MAX_BODY, "management API")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if optional and not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid_request(f"invalid request format: {exc}") from None


# -- Bifrost's list conventions ----------------------------------------------------------------------


def from_memory(request: Request) -> bool:
    """``?from_memory=true``: Bifrost's in-memory view. Ours is the store itself (each process only caches
    lookups for a moment), so the records are the same; only the layout differs where Bifrost's does."""
    return request.query_params.get("from_memory") == "true"


@dataclass(frozen=True, slots=True)
class Page:
    """A list answer's window: everything when the client asked for no page, as Bifrost does."""

    limit: int | None
    offset: int
    search: str

    def apply(self, items: Sequence[T], name: Callable[[T], str]) -> tuple[list[T], int]:
        """The matching items in this window, and how many match in all."""
        needle = self.search.lower()
        matched = [item for item in items if needle in name(item).lower()] if needle else list(items)
        end = None if self.limit is None else self.offset + self.limit
        return matched[self.offset : end], len(matched)

    @classmethod
    def whole(cls) -> Page:
        return cls(None, 0, "")

    def answer(self, field: str, items: list[Any] | dict[str, Any], total: int) -> dict[str, Any]:
        """Bifrost's list answer (``items``: a list, or Bifrost's in-memory map by id)."""
        limit = len(items) if self.limit is None else self.limit
        count = len(items)
        return {field: items, "count": count, "total_count": total, "limit": limit, "offset": self.offset}


def page(request: Request, *filters: str) -> Page:
    """Bifrost's pagination: with ``limit``, ``offset``, ``search`` or one of ``filters`` present the list is
    paged (25 by default, at most 100); without any of them it is whole."""
    params = request.query_params
    paged = any(params.get(name) for name in ("limit", "offset", "search", *filters))
    if not paged:
        return Page.whole()
    limit = _count(params.get("limit"), "limit") or _DEFAULT_LIMIT
    return Page(min(limit, _MAX_LIMIT), _count(params.get("offset"), "offset"), params.get("search", ""))


def _count(text: str | None, name: str) -> int:
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise invalid_request(f"Invalid {name} parameter: must be a number", param=name) from None
    if value < 0:
        raise invalid_request(f"Invalid {name} parameter: must be non-negative", param=name)
    return value
