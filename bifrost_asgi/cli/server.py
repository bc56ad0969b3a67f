"""What ``bifrost-asgi serve`` adds to uvicorn: no key in the access log, and no idle connection held
forever.

- The access log prints each request's path with its query string; a client may put a key there
  (``?x-bf-vk=sk-bf-…`` is refused, but still logged; Gemini clients send ``?key=``). `RedactQuery`
  replaces key-like query values before the line is written.
- uvicorn times out an idle keep-alive connection only after a first response; a connection that
  opens and never sends a complete request is held forever. These protocol classes close a new
  connection whose first request has not arrived within ``timeout_keep_alive`` seconds.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol as _H11Protocol

__all__ = ["H11Protocol", "HttpToolsProtocol", "RedactQuery", "access_log_config", "redact_query"]

REDACTED = "[REDACTED]"
# Query parameters that carry credentials in the wild (ours, OpenAI-, Anthropic- and Google-style).
_KEY_PARAMS = frozenset(
    {"key", "api_key", "api-key", "apikey", "x-bf-vk", "x-api-key", "x-goog-api-key", "token",
     "access_token", "authorization", "vk", "virtual_key"}
)  # fmt: skip
_KEY_PREFIXES = ("sk-", "sk_", "Bearer ", "AIza")


def redact_query(path: str) -> str:
    """``path`` with every key-like query value replaced by ``[REDACTED]``."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    redacted = [(k, REDACTED if _is_secret(k, v) else v) for k, v in pairs]
    return base + "?" + urlencode(redacted, safe="[]/:")


def _is_secret(name: str, value: str) -> bool:
    return name.lower() in _KEY_PARAMS or value.startswith(_KEY_PREFIXES)


class RedactQuery(logging.Filter):
    """Rewrites uvicorn's access-log record (client, method, path, version, status) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def access_log_config() -> dict[str, Any]:
    """uvicorn's logging config with `RedactQuery` on the access handler (every worker applies it)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_query"] = {"()": "bifrost_asgi.cli.server.RedactQuery"}
    config["handlers"]["access"]["filters"] = ["redact_query"]
    return config


# The first-request deadline, shared by both protocol classes below (uvicorn's own keep-alive timer is
# armed only after a response, and cancelled by any data, so it cannot serve here).
_DEADLINE = "_bifrost_first_request_deadline"


def _arm(protocol: Any) -> None:
    setattr(protocol, _DEADLINE, protocol.loop.call_later(protocol.timeout_keep_alive, _expire, protocol))


def _expire(protocol: Any) -> None:
    if protocol.cycle is None and not protocol.transport.is_closing():
        protocol.transport.close()


def _disarm(protocol: Any, *, always: bool = False) -> None:
    handle: asyncio.TimerHandle | None = getattr(protocol, _DEADLINE, None)
    if handle is not None and (always or protocol.cycle is not None):
        handle.cancel()
        setattr(protocol, _DEADLINE, None)


class _FirstRequestDeadline(asyncio.Protocol):
    """Arms the first-request deadline on connect and disarms it on data or close; mixed in before
    uvicorn's protocol class, so ``super()`` reaches that class's own handlers."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _arm(self)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        _disarm(self)

    def connection_lost(self, exc: Exception | None) -> None:
        _disarm(self, always=True)
        super().connection_lost(exc)


class H11Protocol(_FirstRequestDeadline, _H11Protocol):
    pass


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is a dependency; uvicorn falls back to h11 without it
    HttpToolsProtocol = H11Protocol
else:

    class HttpToolsProtocol(_FirstRequestDeadline, _HttpToolsProtocol):  # type: ignore[no-redef]
        pass
