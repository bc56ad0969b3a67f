"""An Anthropic-shaped upstream server for integration tests: the Messages API over real HTTP.

What it answers depends on the request, so tests drive scenarios through the public API:

- the request has tools and its last user turn holds no ``tool_result``: one ``tool_use`` of
  ``get_weather`` with ``{"city": "Paris"}`` (``stop_reason: tool_use``); with a ``tool_result``: the
  text ``It is sunny in Paris.``; otherwise :data:`ANSWER`.
- ``thinking`` enabled: a thinking block (:data:`THINKING`, signed :data:`SIGNATURE`) comes first.
- model ``max-tokens`` / ``refusal``: that stop reason.
- model ``web-search``: a web search (``server_tool_use`` + ``web_search_tool_result``), then an answer
  split into text blocks around its cited passage (:data:`SEARCHED`, :data:`CITED_TEXT`), as Claude
  answers with the web search tool.
- model ``status-<code>``: that HTTP status with Anthropic's error body (529 ``overloaded_error``,
  429 ``rate_limit_error``, ...); ``flaky-<tag>-<n>``: 529 for the first ``n`` calls of ``tag``.
- model ``error-mid-stream``: a text block, then an ``error`` event; ``truncated-stream``: no
  ``message_stop``.
- ``x-api-key: bad-key``: 401 ``authentication_error``.

Streams are realistic: ``message_start`` (input usage), ``ping``, content blocks with ``text_delta``
(after a text block's ``citations_delta``), ``thinking_delta`` + ``signature_delta`` and
``input_json_delta`` in pieces, server-tool results whole on ``content_block_start``, ``message_delta``
(stop reason, output usage), ``message_stop``. Usage always reports cache reads and writes (:data:`USAGE`).
``/v1/messages/count_tokens`` answers ``100 × messages + 10 × tools + 1 if system``. Every request is
recorded in ``state.requests``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.upstream_base import Recorded, UpstreamApp, send_json

ANSWER = "Hello from Claude!"
TOOL_ANSWER = "It is sunny in Paris."
THINKING = "The user greets me; a short greeting back is right."
SIGNATURE = "sig-EqQBCkgIARABGAIiQL"
TOOL_ID = "toolu_01A09q90qw90lq917835lq9"
USAGE = {
    "input_tokens": 20,
    "cache_creation_input_tokens": 50,
    "cache_read_input_tokens": 100,
    "output_tokens": 10,
}
SEARCH_URL = "https://en.wikipedia.org/wiki/Burj_Khalifa"
SEARCHED: list[Obj] = [
    {
        "type": "server_tool_use",
        "id": "srvtoolu_01",
        "name": "web_search",
        "input": {"query": "tallest building"},
    },
    {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_01",
        "content": [
            {
                "type": "web_search_result",
                "url": SEARCH_URL,
                "title": "Burj Khalifa",
                "encrypted_content": "Eq1",
            },
        ],
    },
    {"type": "text", "text": "The tallest building is "},
    {
        "type": "text",
        "text": "the Burj Khalifa",
        "citations": [
            {
                "type": "web_search_result_location",
                "url": SEARCH_URL,
                "title": "Burj Khalifa",
                "encrypted_index": "Eo8",
                "cited_text": "The Burj Khalifa is the tallest building in the world.",
            }
        ],
    },
    {"type": "text", "text": "."},
]
CITED_TEXT = "The tallest building is the Burj Khalifa."
_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

Obj = dict[str, Any]


@dataclass
class AnthropicState:
    requests: list[Recorded] = field(default_factory=list)
    flaky: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.requests.clear()
        self.flaky.clear()


def error_body(status: int) -> Obj:
    kind = _ERRORS.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": f"anthropic says {status}"},
        "request_id": "req_x",
    }


def _has_tool_result(body: Obj) -> bool:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) else None
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)


def content_blocks(body: Obj) -> list[Obj]:
    """The answer's content blocks for a request."""
    blocks: list[Obj] = []
    if (body.get("thinking") or {}).get("type") == "enabled":
        blocks.append({"type": "thinking", "thinking": THINKING, "signature": SIGNATURE})
    if body.get("model") == "web-search":
        blocks += SEARCHED
    elif body.get("tools") and not _has_tool_result(body):
        blocks.append({"type": "text", "text": "Let me check."})
        blocks.append({"type": "tool_use", "id": TOOL_ID, "name": "get_weather", "input": {"city": "Paris"}})
    else:
        blocks.append({"type": "text", "text": TOOL_ANSWER if _has_tool_result(body) else ANSWER})
    return blocks


def stop_reason(body: Obj, blocks: list[Obj]) -> str:
    model = str(body.get("model"))
    if model in ("max-tokens", "refusal"):
        return model.replace("-", "_")
    return "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"


def usage(body: Obj) -> Obj:
    thinking = (body.get("thinking") or {}).get("type") == "enabled"
    return {**USAGE, "output_tokens_details": {"thinking_tokens": 4}} if thinking else dict(USAGE)


def message_body(body: Obj) -> Obj:
    blocks = content_blocks(body)
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": blocks,
        "stop_reason": stop_reason(body, blocks),
        "stop_sequence": None,
        "usage": usage(body),
    }


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _block_events(index: int, block: Obj) -> list[Obj]:
    kind = block["type"]
    start: Obj
    deltas: list[Obj]
    if kind == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], 6)]
        deltas[:0] = [{"type": "citations_delta", "citation": c} for c in block.get("citations", [])]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"], 20)]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind not in ("tool_use", "server_tool_use"):
        start, deltas = block, []
    else:
        start = {**block, "input": {}}
        partial = orjson.dumps(block["input"]).decode()
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [{"type": "input_json_delta", "partial_json": p} for p in _pieces(partial, 5)]
    events = [{"type": "content_block_start", "index": index, "content_block": start}]
    events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
    return [*events, {"type": "content_block_stop", "index": index}]


def stream_events(body: Obj) -> list[Obj]:
    message = message_body(body)
    final = message["usage"]
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {**final, "output_tokens": 1}
    start["usage"].pop("output_tokens_details", None)
    events: list[Obj] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(message["content"]):
        events += _block_events(index, block)
    delta_usage = {"output_tokens": final["output_tokens"]}
    if "output_tokens_details" in final:
        delta_usage["output_tokens_details"] = final["output_tokens_details"]
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events += [{"type": "message_delta", "delta": delta, "usage": delta_usage}, {"type": "message_stop"}]
    return events


def _frame(event: Obj) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def count_tokens(body: Obj) -> int:
    return (
        100 * len(body.get("messages") or [])
        + 10 * len(body.get("tools") or [])
        + (1 if body.get("system") else 0)
    )


class AnthropicUpstream(UpstreamApp):
    """The ASGI app; ``state`` is inspected by tests."""

    def __init__(self) -> None:
        self.state = AnthropicState()

    async def handle(self, request: Recorded, receive: Any, send: Any) -> None:
        path, headers, body = request.path, request.headers, request.body
        failure = self._failure(str(body.get("model", "")), headers)
        if failure is not None:
            await _json(send, failure, error_body(failure))
        elif path == "/v1/messages/count_tokens":
            await _json(send, 200, {"input_tokens": count_tokens(body)})
        elif path != "/v1/messages":
            await _json(send, 404, error_body(404))
        elif body.get("stream"):
            await self._stream(body, send)
        else:
            await _json(send, 200, message_body(body))

    def _failure(self, model: str, headers: dict[str, str]) -> int | None:
        if headers.get("x-api-key") == "bad-key":
            return 401
        if model.startswith("status-") and model[7:].isdigit():
            return int(model[7:])
        if model.startswith("flaky-"):
            _, tag, count = model.split("-", 2)
            seen = self.state.flaky.get(tag, 0)
            self.state.flaky[tag] = seen + 1
            if seen < int(count):
                return 529
        return None

    async def _stream(self, body: Obj, send: Any) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"request-id", b"req_stream1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        events = stream_events(body)
        model = body.get("model")
        if model == "error-mid-stream":
            events = [
                *events[:5],
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ]
        elif model == "truncated-stream":
            events = events[:5]
        for event in events:
            await send({"type": "http.response.body", "body": _frame(event), "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def _json(send: Any, status: int, body: Obj) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"request-id", b"req_01"),
        (b"anthropic-ratelimit-requests-remaining", b"49"),
    ]
    await send_json(send, status, body, headers)
