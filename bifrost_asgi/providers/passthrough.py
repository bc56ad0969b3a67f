"""Raw passthrough (``/anthropic_passthrough``, ``/openai_passthrough``, ``/genai_passthrough``): what a
provider-native request keeps and loses on its way up, and what its answer keeps on its way back.

The transport side (sending the client's bytes with the provider's key, reading the answer bounded,
mapping faults) is `providers.http.HTTPProvider.send_raw` / ``open_raw``; this module holds the pure
parts they and the passthrough surface share:

- Request headers: the client's, minus its credentials (``authorization``, ``x-api-key``,
  ``x-goog-api-key``, ``api-key``: the gateway's key replaces them), cookies, hop-by-hop headers and the
  gateway's own ``x-bf-*`` (Bifrost's list). The provider's key and configured headers win over the
  client's; the client's ``content-type`` is kept (a multipart boundary). A ``key`` query parameter
  (Gemini's other way to send a key) is dropped.
- Answer headers: the upstream's, minus hop-by-hop headers, cookies, ``www-authenticate``, the framing
  the server redoes (``content-length``; ``content-encoding``, as the body is handed on decoded), and
  ``date``/``server``; its ``x-request-id`` becomes ``x-bifrost-provider-request-id``, since
  ``x-request-id`` is the gateway's.
- Usage is read on the way (never parsed whole): a JSON answer's usage field, and in a stream the
  events that carry it in the call's op (Anthropic's ``message_start``/``message_delta``, Gemini's
  finishing chunk, the Responses terminal event, a chat chunk with ``usage``). A stream of those ops
  that ends without its terminal event is cut, and reported so.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import orjson

from bifrost_asgi.providers.base import TERMINAL_EVENTS, Op
from bifrost_asgi.sse import SSEDecoder, SSEEvent
from bifrost_asgi.translate.anthropic import merge_stream_usage
from bifrost_asgi.types import Headers

__all__ = [
    "StreamUsage",
    "answer_headers",
    "client_headers",
    "upstream_query",
]

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
     "proxy-authenticate", "proxy-authorization"}
)  # fmt: skip
_CLIENT_DROP = _HOP_BY_HOP | {
    "authorization", "api-key", "x-api-key", "x-goog-api-key", "host", "content-length", "cookie",
    "accept-encoding", "expect",
}  # fmt: skip
_ANSWER_DROP = _HOP_BY_HOP | {
    "content-length", "content-encoding", "set-cookie", "www-authenticate", "date", "server",
}  # fmt: skip


def client_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The client's request headers that go upstream (ASGI names are lower-case already)."""
    out: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1")
        if name not in _CLIENT_DROP and not name.startswith("x-bf-"):
            out[name] = raw_value.decode("latin-1")
    return out


def upstream_query(query: str) -> str:
    """The client's query string without a ``key`` parameter (a credential, never forwarded)."""
    if "key=" not in query:
        return query
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "key"])


def answer_headers(headers: httpx.Headers) -> Headers:
    """The upstream's answer headers as the client gets them."""
    out: Headers = []
    for name, value in headers.multi_items():
        if name in _ANSWER_DROP or name.startswith("x-bifrost-"):
            continue
        if name == "x-request-id":
            name = "x-bifrost-provider-request-id"
        out.append((name.encode("latin-1"), value.encode("latin-1")))
    return out


class StreamUsage:
    """Reads a raw stream's usage and end as it goes by, in the shape of ``op`` (None: a stream that is
    not SSE, which is passed on unread); the bytes themselves are never changed. An event over
    ``max_event`` bytes is a 502, as on every other stream."""

    def __init__(self, op: Op | None, max_event: int, source: str) -> None:
        self.op = op
        self.decoder = SSEDecoder(max_event, source)
        self.usage: dict[str, Any] = {}
        self.finished = op not in _TERMINATED  # an op whose end cannot be told is never "cut"

    def feed(self, data: bytes) -> dict[str, Any] | None:
        """The usage so far when ``data`` completed an event that reports it, else None."""
        if self.op is None:
            return None
        found = None
        for event in self.decoder.feed(data):
            found = self._event(event) or found
        return found

    def _event(self, event: SSEEvent) -> dict[str, Any] | None:
        op, data = self.op, event.data
        if op is Op.MESSAGES:
            self.finished = self.finished or event.event == "message_stop"
            if event.event in ("message_start", "message_delta"):
                whole = merge_stream_usage(self.usage, event.event, _object(data))
                return dict(self.usage) if whole else None
        elif op is Op.GENERATE_CONTENT:
            if b'"finishReason"' in data:
                self.finished = True
                return _field(_object(data), "usageMetadata")
        elif op is Op.RESPONSES:
            if event.event in TERMINAL_EVENTS:
                self.finished = True
                return _field(_field(_object(data), "response") or {}, "usage")
        elif data == b"[DONE]":  # chat and text completions
            self.finished = True
        elif b'"usage":{' in data or b'"usage": {' in data:  # OpenAI sends "usage":null on every chunk
            return _field(_object(data), "usage")
        return None


# The ops whose streams end in an event of their own, so that a stream without it was cut short.
_TERMINATED = frozenset({Op.MESSAGES, Op.GENERATE_CONTENT, Op.RESPONSES, Op.CHAT, Op.TEXT})


def _object(data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _field(obj: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = obj.get(name)
    return value if isinstance(value, dict) else None
