"""An upstream-shaped server for integration tests: speaks OpenAI's wire format over real HTTP.

Scenarios are chosen by the model name the gateway forwards, so tests drive them through the public
API exactly as users would:

- ``status-<code>``: answer with that HTTP status and an OpenAI error body.
- ``flaky-<tag>-<n>``: fail the first ``n`` calls for ``tag`` with 503, then succeed.
- ``slow-<ms>``: sleep before answering (for timeouts and disconnects).
- ``broken-stream``: stream two chunks, then drop the connection.
- ``slow-stream``: stream one chunk per 200 ms for a long time (for client-disconnect tests).
- keys: a bearer of ``bad-key`` gets 401, ``limited-key`` gets 429.

Every request is recorded in ``UpstreamState.requests`` (path, headers, parsed body).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.upstream_base import Recorded, UpstreamApp, send_json

Scope = dict[str, Any]


@dataclass
class UpstreamState:
    requests: list[Recorded] = field(default_factory=list)
    flaky: dict[str, int] = field(default_factory=dict)
    open_streams: int = 0
    cancelled_streams: int = 0

    def reset(self) -> None:
        self.requests.clear()
        self.flaky.clear()
        self.open_streams = 0
        self.cancelled_streams = 0


USAGE_CHAT = {
    "prompt_tokens": 12,
    "completion_tokens": 5,
    "total_tokens": 17,
    "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}
USAGE_RESPONSES = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 2},
    "output_tokens": 5,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 17,
}
# What that usage costs at the shipped prices: gpt-4o-mini (10 input, 2 cached, 5 output) and gpt-4o.
GPT_4O_MINI_COST = 10 * 0.15e-6 + 2 * 0.075e-6 + 5 * 0.6e-6
GPT_4O_COST = 10 * 2.5e-6 + 2 * 1.25e-6 + 5 * 1e-5
ANSWER = "Hello from upstream!"


def _words() -> list[str]:
    parts = ANSWER.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


def chat_body(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-up1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_up",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": USAGE_CHAT,
    }


def text_body(model: str) -> dict[str, Any]:
    return {
        "id": "cmpl-up1",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": ANSWER, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9},
    }


def _response_obj(model: str, status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": "resp_up1",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _message_item(text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text else []
    return {"id": "msg_up1", "type": "message", "status": status, "role": "assistant", "content": content}


def responses_body(model: str) -> dict[str, Any]:
    return _response_obj(model, "completed", [_message_item(ANSWER)], USAGE_RESPONSES)


def responses_events(model: str) -> list[dict[str, Any]]:
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response_obj(model, "in_progress", [], None)},
        {"type": "response.in_progress", "response": _response_obj(model, "in_progress", [], None)},
        {"type": "response.output_item.added", "output_index": 0, "item": _message_item("", "in_progress")},
        {"type": "response.content_part.added", "item_id": "msg_up1", "output_index": 0, "content_index": 0,
         "part": part},
    ]  # fmt: skip
    for word in _words():
        events.append({"type": "response.output_text.delta", "item_id": "msg_up1", "output_index": 0,
                       "content_index": 0, "delta": word, "logprobs": []})  # fmt: skip
    done_part = {**part, "text": ANSWER}
    events += [
        {"type": "response.output_text.done", "item_id": "msg_up1", "output_index": 0, "content_index": 0,
         "text": ANSWER, "logprobs": []},
        {"type": "response.content_part.done", "item_id": "msg_up1", "output_index": 0, "content_index": 0,
         "part": done_part},
        {"type": "response.output_item.done", "output_index": 0, "item": _message_item(ANSWER)},
        {"type": "response.completed", "response": responses_body(model)},
    ]  # fmt: skip
    for i, ev in enumerate(events):
        ev["sequence_number"] = i
    return events


def chat_chunks(model: str, text_completion: bool = False) -> list[dict[str, Any]]:
    base: dict[str, Any] = {"id": "chatcmpl-up1", "created": int(time.time()), "model": model}
    chunks = []
    for i, word in enumerate(_words()):
        if text_completion:
            choice: dict[str, Any] = {"index": 0, "text": word, "finish_reason": None, "logprobs": None}
        else:
            delta: dict[str, Any] = {"content": word}
            if i == 0:
                delta["role"] = "assistant"
            choice = {"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}
        chunks.append({**base, "choices": [choice]})
    last: dict[str, Any] = (
        {"index": 0, "text": "", "finish_reason": "stop"}
        if text_completion
        else {"index": 0, "delta": {}, "finish_reason": "stop"}
    )
    chunks.append({**base, "choices": [last]})
    chunks.append({**base, "choices": [], "usage": USAGE_CHAT})
    obj = "text_completion" if text_completion else "chat.completion.chunk"
    return [{**c, "object": obj} for c in chunks]


class Upstream(UpstreamApp):
    """The ASGI app. One instance per test server; ``state`` is inspected by tests."""

    def __init__(self) -> None:
        self.state = UpstreamState()

    async def handle(self, request: Recorded, receive: Any, send: Any) -> None:
        path, headers, body = request.path, request.headers, request.body
        if path == "/v1/models":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "upstream"}
                for m in ("gpt-4o", "gpt-4o-mini")
            ]
            await _json(send, 200, {"object": "list", "data": data})
            return
        model = str(body.get("model", ""))
        failure = self._failure(model, headers)
        if failure is not None:
            await _json(send, failure, _error_body(failure))
            return
        if model.startswith("slow-") and model[5:].isdigit():
            await asyncio.sleep(int(model[5:]) / 1000)
        if path == "/v1/responses/input_tokens":
            await _json(send, 200, {"object": "response.input_tokens", "input_tokens": 42})
        elif body.get("stream"):
            await self._stream(path, model, receive, send)
        elif path == "/v1/chat/completions":
            await _json(send, 200, chat_body(model))
        elif path == "/v1/responses":
            await _json(send, 200, responses_body(model))
        elif path == "/v1/completions":
            await _json(send, 200, text_body(model))
        else:
            await _json(
                send, 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}
            )

    def _failure(self, model: str, headers: dict[str, str]) -> int | None:
        auth = headers.get("authorization", "")
        if auth == "Bearer bad-key":
            return 401
        if auth == "Bearer limited-key":
            return 429
        if model.startswith("status-") and model[7:].isdigit():
            return int(model[7:])
        if model.startswith("flaky-"):
            _, tag, count = model.split("-", 2)
            seen = self.state.flaky.get(tag, 0)
            self.state.flaky[tag] = seen + 1
            if seen < int(count):
                return 503
        return None

    async def _stream(self, path: str, model: str, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"x-request-id", b"req_up1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self.state.open_streams += 1
        try:
            if model == "slow-stream":
                await self._slow_stream(receive, send)
                return
            frames = _frames(path, model)
            if model == "broken-stream":
                for f in frames[:2]:
                    await send({"type": "http.response.body", "body": f, "more_body": True})
                raise ConnectionAbortedError("upstream dropped the stream")  # uvicorn closes the socket
            for f in frames:
                await send({"type": "http.response.body", "body": f, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            self.state.open_streams -= 1

    async def _slow_stream(self, receive: Any, send: Any) -> None:
        """Stream slowly until the client (the gateway) goes away, and count that it did."""
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "slow-stream",
                 "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}  # fmt: skip
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            for _ in range(300):
                if gone.done():
                    self.state.cancelled_streams += 1
                    return
                await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(chunk) + b"\n\n",
                            "more_body": True})  # fmt: skip
                await asyncio.sleep(0.1)
            await send({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()


async def _disconnected(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _frames(path: str, model: str) -> list[bytes]:
    if path == "/v1/responses":
        return [
            b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n"
            for e in responses_events(model)
        ]
    chunks = chat_chunks(model, text_completion=path == "/v1/completions")
    return [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def _error_body(status: int) -> dict[str, Any]:
    kinds = {
        400: ("invalid_request_error", "invalid_value"),
        401: ("invalid_request_error", "invalid_api_key"),
        404: ("invalid_request_error", "model_not_found"),
        429: ("requests", "rate_limit_exceeded"),
    }
    kind, code = kinds.get(status, ("server_error", None))
    return {"error": {"message": f"upstream says {status}", "type": kind, "param": None, "code": code}}


async def _json(send: Any, status: int, body: dict[str, Any]) -> None:
    headers = [(b"content-type", b"application/json"), (b"x-request-id", b"req_up1"),
               (b"x-ratelimit-remaining-requests", b"99")]  # fmt: skip
    await send_json(send, status, body, headers)
