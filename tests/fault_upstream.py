"""A fault-injecting upstream: speaks OpenAI (chat, text, Responses), Anthropic Messages and Gemini, and
misbehaves as the model name asks, so every fault can be tried on every provider family.

Faults (the model name):

- ``ok``: a correct answer (JSON or stream) in the path's API.
- ``cut``: a stream that ends cleanly but without its terminal event (no ``[DONE]`` or finish_reason, no
  ``response.completed``, no ``message_stop``, no ``finishReason``); as JSON, a correct answer.
- ``not-json``: a stream event whose data is not JSON; as JSON, a 200 body that is not JSON.
- ``wrong-shape``: a 200 whose fields have the wrong types (``choices: "nope"``, usage as strings,
  ``content: "nope"``, ``candidates: "nope"``), in JSON and in stream events.
- ``huge-event``: one stream event of :data:`HUGE` bytes; as JSON, an answer of that size.
- ``echo-key``: a 401 whose message repeats the credential the request carried (as OpenAI's does).
- ``done-only``: a stream of nothing but ``data: [DONE]``.
- ``retry-after``: a 429 with ``Retry-After: 1`` on the first call of each test, then a correct answer.

Every request is recorded with its arrival time (``state.times``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.upstream_base import Obj, Recorded, RecordingState, UpstreamApp, send_json, send_sse

HUGE = 2 * 1024 * 1024
JSON = [(b"content-type", b"application/json")]


@dataclass
class FaultState(RecordingState):
    times: list[float] = field(default_factory=list)
    retried: set[str] = field(default_factory=set)

    def reset(self) -> None:
        super().reset()
        self.times.clear()
        self.retried.clear()


def _dialect(path: str) -> str:
    if path.startswith("/v1beta/models/"):
        return "gemini"
    if path == "/v1/messages":
        return "anthropic"
    if path == "/v1/responses":
        return "responses"
    return "text" if path == "/v1/completions" else "chat"


class FaultUpstream(UpstreamApp):
    def __init__(self) -> None:
        self.state = FaultState()

    async def handle(self, request: Recorded, receive: Any, send: Any) -> None:
        self.state.times.append(time.monotonic())
        dialect = _dialect(request.path)
        model = _model(request, dialect)
        streaming = bool(request.body.get("stream")) or "streamGenerateContent" in request.path
        if model == "echo-key":
            await send_json(send, 401, _key_error(request, dialect), JSON)
        elif model == "retry-after" and model not in self.state.retried:
            self.state.retried.add(model)
            body = {"error": {"message": "slow down", "type": "rate_limit_error"}}
            await send_json(send, 429, body, [*JSON, (b"retry-after", b"1")])
        elif streaming:
            await send_sse(send, _frames(dialect, model))
        elif model == "not-json":
            await send({"type": "http.response.start", "status": 200, "headers": JSON})
            await send({"type": "http.response.body", "body": b"<html>oops</html>"})
        else:
            await send_json(send, 200, _answer(dialect, model), JSON)


def _model(request: Recorded, dialect: str) -> str:
    if dialect == "gemini":
        return request.path.removeprefix("/v1beta/models/").partition(":")[0]
    return str(request.body.get("model", ""))


def _key_error(request: Recorded, dialect: str) -> Obj:
    sent = (
        request.headers.get("authorization", "").removeprefix("Bearer ")
        or request.headers.get("x-api-key", "")
        or request.headers.get("x-goog-api-key", "")
        or request.headers.get("api-key", "")
    )
    message = f"Incorrect API key provided: {sent}. You can find your API key at https://example.invalid."
    if dialect == "anthropic":
        return {"type": "error", "error": {"type": "authentication_error", "message": message}}
    return {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}


# -- JSON answers -------------------------------------------------------------------------------------


def _answer(dialect: str, model: str) -> Obj:
    wrong = model == "wrong-shape"
    answer = _ANSWERS[dialect](wrong)
    if model == "huge-event":
        answer["padding"] = "x" * HUGE
    return answer


def _chat(wrong: bool) -> Obj:
    usage = {"prompt_tokens": "ten", "completion_tokens": "two"} if wrong else {"prompt_tokens": 10,
             "completion_tokens": 2, "total_tokens": 12}  # fmt: skip
    choices: Any = (
        "nope"
        if wrong
        else [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}]
    )
    return {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": choices,
            "usage": usage}  # fmt: skip


def _text(wrong: bool) -> Obj:
    choices: Any = "nope" if wrong else [{"index": 0, "text": "Hi there", "finish_reason": "stop"}]
    return {"id": "t1", "object": "text_completion", "created": 1, "model": "m", "choices": choices,
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}}  # fmt: skip


def _responses(wrong: bool) -> Obj:
    output: Any = "nope" if wrong else [
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Hi there", "annotations": []}]}
    ]  # fmt: skip
    usage = {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}
    return {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed", "model": "m",
            "output": output, "usage": usage}  # fmt: skip


def _anthropic(wrong: bool) -> Obj:
    content: Any = "nope" if wrong else [{"type": "text", "text": "Hi there"}]
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": content,
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": "ten" if wrong else 10, "output_tokens": 2}}  # fmt: skip


def _gemini(wrong: bool) -> Obj:
    candidates: Any = (
        "nope"
        if wrong
        else [
            {
                "content": {"role": "model", "parts": [{"text": "Hi there"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ]
    )
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 2, "totalTokenCount": 12}
    return {"candidates": candidates, "modelVersion": "m", "responseId": "r1", "usageMetadata": usage}


_ANSWERS = {"chat": _chat, "text": _text, "responses": _responses, "anthropic": _anthropic, "gemini": _gemini}


# -- streams ------------------------------------------------------------------------------------------


def _frames(dialect: str, model: str) -> list[bytes]:
    if model == "done-only":  # nothing but the chat terminator: no answer at all
        return [b"data: [DONE]\n\n"]
    events = _EVENTS[dialect](model == "wrong-shape")
    if model == "cut":
        events = events[: -_TERMINAL_COUNT[dialect]]
    frames = [_frame(dialect, e) for e in events]
    if model == "not-json":
        frames.insert(1, b"data: {not json\n\n")
    elif model == "huge-event":
        frames.insert(1, b"data: " + b"x" * HUGE + b"\n\n")
    if dialect in ("chat", "text") and model != "cut":
        frames.append(b"data: [DONE]\n\n")
    return frames


def _frame(dialect: str, event: Obj) -> bytes:
    data = orjson.dumps(event)
    if dialect in ("responses", "anthropic"):
        return b"event: " + str(event["type"]).encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"


def _chat_events(wrong: bool) -> list[Obj]:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    delta: Any = "nope" if wrong else {"role": "assistant", "content": "Hi"}
    return [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}},
    ]


def _text_events(wrong: bool) -> list[Obj]:
    base = {"id": "t1", "object": "text_completion", "created": 1, "model": "m"}
    return [
        {**base, "choices": "nope" if wrong else [{"index": 0, "text": "Hi", "finish_reason": None}]},
        {**base, "choices": [{"index": 0, "text": " there", "finish_reason": "stop"}]},
    ]


def _responses_events(wrong: bool) -> list[Obj]:
    response = _responses(False)
    return [
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": {**response, "status": "in_progress", "output": []},
        },  # fmt: skip
        {
            "type": "response.output_text.delta",
            "sequence_number": 1,
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": 5 if wrong else "Hi there",
        },  # fmt: skip
        {"type": "response.completed", "sequence_number": 2, "response": response},
    ]


def _anthropic_events(wrong: bool) -> list[Obj]:
    message = {**_anthropic(False), "content": [], "usage": {"input_tokens": 10, "output_tokens": 1}}
    return [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": "nope" if wrong else {"type": "text_delta", "text": "Hi there"},
        },  # fmt: skip
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ]


def _gemini_events(wrong: bool) -> list[Obj]:
    first: Obj = (
        {"candidates": "nope"}
        if wrong
        else {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "index": 0}]}
    )
    return [first, _gemini(False)]


_EVENTS = {"chat": _chat_events, "text": _text_events, "responses": _responses_events,
           "anthropic": _anthropic_events, "gemini": _gemini_events}  # fmt: skip
# How many trailing events make a stream complete (``cut`` drops them).
_TERMINAL_COUNT = {"chat": 2, "text": 1, "responses": 1, "anthropic": 1, "gemini": 1}
