"""A Gemini-shaped upstream for integration tests: Google's Generative Language REST API over real HTTP.

Routes ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse`` and
``:countTokens``. Scenarios follow the request, so tests drive them through the public API:

- ``status-<code>`` models answer that status with Gemini's error body (400 INVALID_ARGUMENT, 404
  NOT_FOUND, 429 RESOURCE_EXHAUSTED, 500 INTERNAL, 503 UNAVAILABLE).
- keys: ``bad-gemini-key`` gets 400 API_KEY_INVALID (Gemini's answer to a wrong key), ``limited-gemini-key``
  gets 429 RESOURCE_EXHAUSTED.
- With function declarations and a last turn that is plain user text, the model calls ``get_weather``
  once per city (Paris, Tokyo) named in that text, each call signed with ``sig-<city>``; after function
  responses it answers ``"Weather report: <responses>"``. Otherwise it answers :data:`ANSWER`.
- ``thinkingConfig.includeThoughts`` adds a thought part :data:`THOUGHT` first.
- Models ending in ``-partial-args`` stream each call's arguments in parts, as Gemini does with
  ``streamFunctionCallArguments``: the name first, then ``partialArgs`` (strings split in two), then an
  empty ``functionCall`` ending it.
- ``countTokens`` counts words of every text part plus 3 per function declaration (of a whole
  ``generateContentRequest``, or of the ``contents`` sent alone).

Every request is recorded in ``state.requests`` (path, query, headers, parsed body).
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from google import genai
from google.genai import types

from tests.upstream_base import Obj, Recorded, RecordingState, UpstreamApp, send_json, send_sse

ANSWER = "Hello from Gemini!"
THOUGHT = "Let me think."
# Usage on every final answer: 120 prompt tokens of which 100 cached, 8 answer and 5 thought tokens.
USAGE: Obj = {
    "promptTokenCount": 120,
    "cachedContentTokenCount": 100,
    "candidatesTokenCount": 8,
    "thoughtsTokenCount": 5,
    "totalTokenCount": 133,
}
_CITIES = ("Paris", "Tokyo")
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Invalid JSON payload received."),
    404: ("NOT_FOUND", "models/x is not found for API version v1beta."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}


GeminiState = RecordingState


def signature(city: str) -> str:
    return base64.b64encode(f"sig-{city}".encode()).decode()


def error_body(status: int, reason: str | None = None) -> Obj:
    state, message = _ERRORS.get(status, ("UNKNOWN", f"status {status}"))
    error: Obj = {"code": status, "message": message, "status": state}
    if reason is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return {"error": error}


def _key_error(headers: dict[str, str]) -> tuple[int, Obj] | None:
    key = headers.get("x-goog-api-key")
    if key == "bad-gemini-key":
        body = error_body(400, "API_KEY_INVALID")
        body["error"]["message"] = "API key not valid. Please pass a valid API key."
        return 400, body
    if key == "limited-gemini-key":
        return 429, error_body(429)
    return None


def _texts(content: Obj) -> list[str]:
    return [p["text"] for p in content.get("parts", []) if isinstance(p.get("text"), str)]


def answer_parts(body: Obj) -> list[Obj]:
    """What the scripted model says to this request."""
    contents = body.get("contents") or []
    last = contents[-1] if contents else {"parts": []}
    parts: list[Obj] = []
    thinking = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
    if thinking.get("includeThoughts"):
        parts.append({"text": THOUGHT, "thought": True})
    responses = [p["functionResponse"] for p in last.get("parts", []) if "functionResponse" in p]
    if responses:
        return [*parts, {"text": "Weather report: " + orjson.dumps(responses).decode()}]
    if body.get("tools"):
        said = " ".join(_texts(last))
        cities = [city for city in _CITIES if city in said] or ["Paris"]
        calls: list[Obj] = [
            {"functionCall": {"name": "get_weather", "args": {"city": c}}, "thoughtSignature": signature(c)}
            for c in cities
        ]
        return [*parts, *calls]
    return [*parts, {"text": ANSWER}]


def generate_response(body: Obj, model: str) -> Obj:
    return {
        "candidates": [
            {"content": {"parts": answer_parts(body), "role": "model"}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": USAGE,
        "modelVersion": model,
        "responseId": "gemini-resp-1",
    }


def _streamed_call(part: Obj) -> list[Obj]:
    """A call as Gemini streams its arguments in parts: each string value split in two."""
    call = part["functionCall"]
    pieces: list[Obj] = [{**part, "functionCall": {"name": call["name"], "willContinue": True}}]
    for key, value in call["args"].items():
        halves = [value[: len(value) // 2], value[len(value) // 2 :]]
        for index, half in enumerate(halves):
            partial = {"jsonPath": f"$.{key}", "stringValue": half, "willContinue": index == 0}
            pieces.append({"functionCall": {"partialArgs": [partial], "willContinue": True}})
    return [*pieces, {"functionCall": {}}]


def stream_chunks(body: Obj, model: str) -> list[Obj]:
    """The answer as Gemini streams it: text word by word, calls whole (or in parts), usage growing on
    every chunk."""
    chunks: list[Obj] = []
    for part in answer_parts(body):
        pieces = [part]
        if "text" in part and not part.get("thought"):
            words = part["text"].split(" ")
            pieces = [{"text": w if i == 0 else " " + w} for i, w in enumerate(words)]
        elif "functionCall" in part and model.endswith("-partial-args"):
            pieces = _streamed_call(part)
        for piece in pieces:
            chunks.append({"candidates": [{"content": {"parts": [piece], "role": "model"}, "index": 0}]})
    chunks.append(
        {
            "candidates": [
                {"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "STOP", "index": 0}
            ]
        }
    )
    partial = {"promptTokenCount": USAGE["promptTokenCount"], "totalTokenCount": USAGE["promptTokenCount"]}
    for chunk in chunks:
        chunk.update(usageMetadata=partial, modelVersion=model, responseId="gemini-resp-1")
    chunks[-1]["usageMetadata"] = USAGE
    return chunks


def count_tokens(body: Obj) -> Obj:
    request = body.get("generateContentRequest") or body  # the whole request, or just its contents
    contents = [*request.get("contents", []), request.get("systemInstruction") or {"parts": []}]
    words = sum(len(t.split()) for c in contents for t in _texts(c))
    declarations = sum(len(t.get("functionDeclarations", [])) for t in request.get("tools", []))
    total = words + 3 * declarations
    return {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}


class GeminiUpstream(UpstreamApp):
    """The ASGI app; ``state`` is inspected by tests."""

    def __init__(self) -> None:
        self.state = GeminiState()

    async def handle(self, request: Recorded, receive: Any, send: Any) -> None:
        path, query, headers, body = request.path, request.query, request.headers, request.body
        prefix = "/v1beta/models/"
        model, _, method = path.removeprefix(prefix).partition(":")
        failure = _key_error(headers)
        if failure is None and model.startswith("status-"):
            status = int(model.removeprefix("status-"))
            failure = status, error_body(status)
        if not path.startswith(prefix) or method not in (
            "generateContent",
            "streamGenerateContent",
            "countTokens",
        ):
            failure = 404, error_body(404)
        if failure is not None:
            await _json(send, *failure)
        elif method == "countTokens":
            await _json(send, 200, count_tokens(body))
        elif method == "generateContent":
            await _json(send, 200, generate_response(body, model))
        elif (
            query != "alt=sse"
        ):  # without alt=sse Gemini streams a JSON array, which the gateway never asks for
            await _json(send, 400, error_body(400))
        else:
            await _sse(send, stream_chunks(body, model))


async def _json(send: Any, status: int, body: Obj) -> None:
    await send_json(send, status, body, [(b"content-type", b"application/json; charset=UTF-8")])


async def _sse(send: Any, chunks: list[Obj]) -> None:
    await send_sse(send, (b"data: " + orjson.dumps(chunk) + b"\r\n\r\n" for chunk in chunks))


_CLIENTS: list[genai.Client] = []  # the SDK closes its connection pool when a Client is collected


def genai_client(gateway: str, prefix: str = "/genai", **options: Any) -> genai.Client:
    """google-genai, unmodified, with its base URL on ``{gateway}{prefix}`` and no retries."""
    http = types.HttpOptions(
        base_url=gateway + prefix, retry_options=types.HttpRetryOptions(attempts=1), **options
    )
    made = genai.Client(api_key="any-key", http_options=http)
    _CLIENTS.append(made)
    return made
