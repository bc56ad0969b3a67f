"""An upstream-shaped server for benchmarks: OpenAI-like answers from precomputed bytes.

It must never be the bottleneck, so it is a raw ASGI app (no framework) whose answers are built once at
import time; per request it only reads the body, looks for ``"stream":true`` and writes prepared bytes.

    python bench/upstream.py --port 9001

Routes (any other path answers 404; ``GET`` on any path answers 200, for readiness checks):

* ``POST /v1/chat/completions`` — a chat completion (~1.5 KB, with usage), or with ``"stream": true``
  20 content chunks, a finish chunk, a usage chunk and ``data: [DONE]``.
* ``POST /v1/responses`` — a Responses object with usage, or the full Responses event sequence
  (``response.created`` ... ``response.completed`` with usage) as ``event:``/``data:`` frames.
* ``POST /v1/completions`` — a text completion, or 20 text chunks, a usage chunk and ``data: [DONE]``.
* ``POST /v1/embeddings`` — one 1536-dimension vector with usage, pretty-printed as OpenAI sends it
  (~33 KB; ``"encoding_format": "base64"`` is not looked at: the floats are always sent).
* ``POST /v1/audio/speech`` — 64 KB of audio bytes (``audio/mpeg``) in 16 writes of 4 KB.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

MODEL = "gpt-4o-mini-2024-07-18"
CREATED = 1795305600
ANSWER = (
    "Connection pooling keeps a small set of open TCP connections to the upstream and reuses them "
    "across requests, so each call skips the handshake and the slow start of a fresh connection. "
    "For a gateway that forwards every request to a model provider, that saving is paid on every "
    "single call, which is why one shared client per process matters more than almost any other "
    "tuning. Keep the pool warm, bound it, and close it when the application shuts down. Measure the "
    "pool under concurrency too: a pool that serialises its bookkeeping behind one lock can cost more "
    "than the handshakes it saves once sixteen requests share it."
)
ANSWER_WORDS = ANSWER.split(" ")
STREAM_PIECES = 20

# Headers a real provider sends; the gateway forwards the rate-limit ones, so they cost it real work.
_PROVIDER_HEADERS: Headers = [
    (b"openai-organization", b"org-bench"),
    (b"openai-processing-ms", b"412"),
    (b"openai-version", b"2020-10-01"),
    (b"x-ratelimit-limit-requests", b"30000"),
    (b"x-ratelimit-limit-tokens", b"150000000"),
    (b"x-ratelimit-remaining-requests", b"29999"),
    (b"x-ratelimit-remaining-tokens", b"149999720"),
    (b"x-ratelimit-reset-requests", b"2ms"),
    (b"x-ratelimit-reset-tokens", b"0s"),
    (b"x-request-id", b"req_5c0ffee5c0ffee5c0ffee5c0ffee5c0f"),
]
_SSE_HEADERS: Headers = [(b"content-type", b"text/event-stream; charset=utf-8"), *_PROVIDER_HEADERS]


@dataclass(frozen=True, slots=True)
class Canned:
    """One route's prepared answers: a JSON body with its headers, and a stream as separate frames."""

    json_start: Message
    json_body: Message
    stream_start: Message
    stream_frames: tuple[Message, ...]


# -- bodies -----------------------------------------------------------------------------------------


def _pieces() -> list[str]:
    """The answer cut into STREAM_PIECES deltas that join back to ANSWER."""
    n = len(ANSWER_WORDS)
    cuts = [i * n // STREAM_PIECES for i in range(STREAM_PIECES + 1)]
    groups = [ANSWER_WORDS[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
    return [(" " if i else "") + " ".join(g) for i, g in enumerate(groups)]


def _chat_usage() -> dict[str, Any]:
    return {
        "prompt_tokens": 187,
        "completion_tokens": 96,
        "total_tokens": 283,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _responses_usage() -> dict[str, Any]:
    return {
        "input_tokens": 187,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 96,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 283,
    }


def chat_completion() -> dict[str, Any]:
    message = {"role": "assistant", "content": ANSWER, "refusal": None, "annotations": []}
    return {
        "id": "chatcmpl-BENCH0000000000000000000000001",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": _chat_usage(),
        "service_tier": "default",
        "system_fingerprint": "fp_bench0001",
    }


def _chat_chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-BENCH0000000000000000000000001",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_bench0001",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def chat_stream() -> list[dict[str, Any]]:
    chunks = [_chat_chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    chunks += [_chat_chunk({"content": piece}, None) for piece in _pieces()]
    chunks.append(_chat_chunk({}, "stop"))
    usage = _chat_chunk({}, None)
    usage["choices"] = []
    usage["usage"] = _chat_usage()
    return [*chunks, usage]


def text_completion() -> dict[str, Any]:
    choice = {"text": ANSWER, "index": 0, "logprobs": None, "finish_reason": "stop"}
    return {
        "id": "cmpl-BENCH0000000000000000000000001",
        "object": "text_completion",
        "created": CREATED,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [choice],
        "usage": {"prompt_tokens": 187, "completion_tokens": 96, "total_tokens": 283},
    }


def text_stream() -> list[dict[str, Any]]:
    base = text_completion()
    chunks = []
    for piece in _pieces():
        chunk = {**base, "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": None}]}
        del chunk["usage"]
        chunks.append(chunk)
    return [*chunks, {**base, "choices": []}]


def _output_message(text: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "id": "msg_bench0000000000000000000000000001",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [part] if text or status == "completed" else [],
    }


def response_object(status: str = "completed") -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": "resp_bench0000000000000000000000000001",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": "You are a concise assistant.",
        "max_output_tokens": 256,
        "model": MODEL,
        "output": [_output_message(ANSWER, "completed")] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _responses_usage() if done else None,
        "user": None,
        "metadata": {},
    }


def responses_stream() -> list[tuple[str, dict[str, Any]]]:
    """OpenAI's event sequence for one text message, with sequence numbers."""
    item_id = "msg_bench0000000000000000000000000001"
    at = {"item_id": item_id, "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": response_object("in_progress")}),
        ("response.in_progress", {"response": response_object("in_progress")}),
        ("response.output_item.added", {"output_index": 0, "item": _output_message("", "in_progress")}),
        ("response.content_part.added", {**at, "part": part}),
    ]
    events += [("response.output_text.delta", {**at, "delta": p, "logprobs": []}) for p in _pieces()]
    events += [
        ("response.output_text.done", {**at, "text": ANSWER, "logprobs": []}),
        ("response.content_part.done", {**at, "part": {**part, "text": ANSWER}}),
        ("response.output_item.done", {"output_index": 0, "item": _output_message(ANSWER, "completed")}),
        ("response.completed", {"response": response_object()}),
    ]
    return [(name, {"type": name, "sequence_number": i, **body}) for i, (name, body) in enumerate(events)]


# -- framing ----------------------------------------------------------------------------------------


def _start(content_type: bytes, body: bytes | None) -> Message:
    headers = [(b"content-type", content_type), *_PROVIDER_HEADERS]
    if body is not None:
        headers.append((b"content-length", str(len(body)).encode()))
    return {"type": "http.response.start", "status": 200, "headers": headers}


def _frames(data: list[bytes]) -> tuple[Message, ...]:
    return tuple({"type": "http.response.body", "body": d, "more_body": True} for d in data) + (
        {"type": "http.response.body", "body": b"", "more_body": False},
    )


def _canned(body: dict[str, Any], frames: list[bytes]) -> Canned:
    raw = orjson.dumps(body)
    return Canned(
        json_start=_start(b"application/json", raw),
        json_body={"type": "http.response.body", "body": raw},
        stream_start={"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS},
        stream_frames=_frames(frames),
    )


def _canned_json(raw: bytes) -> Canned:
    """A route with a JSON answer only (no stream form)."""
    return Canned(
        json_start=_start(b"application/json", raw),
        json_body={"type": "http.response.body", "body": raw},
        stream_start=_start(b"application/json", raw),
        stream_frames=({"type": "http.response.body", "body": raw},),
    )


def _data_frames(chunks: list[dict[str, Any]]) -> list[bytes]:
    return [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def _event_frames(events: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    return [b"event: " + name.encode() + b"\ndata: " + orjson.dumps(ev) + b"\n\n" for name, ev in events]


def embeddings() -> bytes:
    rng = random.Random(1536)
    vector = [round(rng.uniform(-0.1, 0.1), 9) for _ in range(1536)]
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 91, "total_tokens": 91},
    }
    return json.dumps(body, indent=2).encode()


SPEECH_PIECES = 16
SPEECH_PIECE = bytes(range(256)) * 16  # 4 KB


def _binary(content_type: bytes, pieces: list[bytes]) -> tuple[Message, tuple[Message, ...]]:
    start: Message = {"type": "http.response.start", "status": 200,
                      "headers": [(b"content-type", content_type), *_PROVIDER_HEADERS]}  # fmt: skip
    return start, _frames(pieces)


ROUTES: dict[str, Canned] = {
    "/v1/chat/completions": _canned(chat_completion(), _data_frames(chat_stream())),
    "/v1/responses": _canned(response_object(), _event_frames(responses_stream())),
    "/v1/completions": _canned(text_completion(), _data_frames(text_stream())),
    "/v1/embeddings": _canned_json(embeddings()),
}
# Answers that are always streamed, whatever the body says.
BINARY: dict[str, tuple[Message, tuple[Message, ...]]] = {
    "/v1/audio/speech": _binary(b"audio/mpeg", [SPEECH_PIECE] * SPEECH_PIECES),
}
_OK = ({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]},
       {"type": "http.response.body", "body": b"ok"})  # fmt: skip
_NOT_FOUND = ({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"9")]},
              {"type": "http.response.body", "body": b"not found"})  # fmt: skip


# -- the app ----------------------------------------------------------------------------------------


async def read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    while message.get("more_body"):
        message = await receive()
        body += message.get("body", b"")
    return body


def _wants_stream(body: bytes) -> bool:
    return b'"stream":true' in body or b'"stream": true' in body


async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return  # lifespan is turned off; nothing else is expected
    binary = BINARY.get(scope["path"])
    if binary is not None and scope["method"] == "POST":
        await read_body(receive)
        await send(binary[0])
        for frame in binary[1]:
            await send(frame)
        return
    canned = ROUTES.get(scope["path"])
    if scope["method"] != "POST" or canned is None:
        start, body = _OK if scope["method"] == "GET" else _NOT_FOUND
        await send(start)
        await send(body)
        return
    if _wants_stream(await read_body(receive)):
        await send(canned.stream_start)
        for frame in canned.stream_frames:
            await send(frame)
    else:
        await send(canned.json_start)
        await send(canned.json_body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        lifespan="off",
        access_log=False,
        log_level="warning",
    )  # loop/http "auto": uvloop + httptools when installed, as for the gateway and the floors


if __name__ == "__main__":
    main()
