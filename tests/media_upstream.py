"""Upstream-shaped media servers: OpenAI's embeddings, images and audio routes (on top of
tests/upstream.py's `Upstream`), Azure's deployment paths in front of them (`AzureMediaShim`), and
Gemini's ``embedContent`` / ``batchEmbedContents`` (on top of tests/gemini_upstream.py).

Uploads are read with the standard library's MIME parser, independently of the gateway's own reader,
and recorded in ``state.forms`` so tests can check what reached the upstream byte for byte.

Scenarios, by model:

- ``gpt-image-*`` answers ``b64_json`` with token usage (`IMAGE_USAGE`); other image models answer like
  dall-e (``url`` unless ``response_format`` is ``b64_json``, no usage).
- ``whisper-*`` transcripts report ``{"type": "duration", "seconds": 3}``, others token usage.
- ``broken-speech`` streams two pieces of audio, then drops the connection; ``short-speech`` (SSE) ends
  without its ``speech.audio.done`` event.
- ``html-embeddings`` answers a 200 that is not JSON.
- ``status-<code>`` and the failing keys of tests/upstream.py apply to every route.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, TypeVar

import orjson

from tests.conftest import serve
from tests.gemini_upstream import GeminiUpstream
from tests.upstream import Upstream, UpstreamState
from tests.upstream_base import Obj, Recorded, send_json

EMBED_USAGE: Obj = {"prompt_tokens": 8, "total_tokens": 8}
IMAGE_USAGE: Obj = {
    "input_tokens": 50,
    "output_tokens": 4160,
    "total_tokens": 4210,
    "input_tokens_details": {"text_tokens": 40, "image_tokens": 10},
}
TOKEN_TRANSCRIPT_USAGE: Obj = {
    "type": "tokens",
    "input_tokens": 100,
    "output_tokens": 20,
    "total_tokens": 120,
    "input_token_details": {"audio_tokens": 90, "text_tokens": 10},
}
SPEECH_USAGE: Obj = {"input_tokens": 5, "output_tokens": 40, "total_tokens": 45}
TRANSCRIPT = "Hello from the audio upstream."
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nnot-really-a-png").decode()
AUDIO_PIECES = [bytes([i]) * 2048 for i in range(5)]
AUDIO = b"".join(AUDIO_PIECES)
PIECE_DELAY = 0.05
MEDIA_PATHS = frozenset(
    {
        "/v1/embeddings",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/audio/speech",
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
    }
)


App = TypeVar("App")


@contextmanager
def running(app: App) -> Iterator[tuple[App, str]]:
    """``app`` under a live uvicorn server: (the app, its URL)."""
    live = serve(app)
    try:
        yield app, live.url
    finally:
        live.stop()


def vector(index: int, size: int) -> list[float]:
    """The upstream's embedding for input ``index``: exact in float32, so base64 round-trips."""
    return [(index + 1) * 0.25 + k * 0.125 for k in range(size)]


def packed(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


@dataclass
class Upload:
    """A multipart request as the upstream received it: text fields and files (name -> filename, bytes)."""

    path: str
    fields: dict[str, list[str]]
    files: dict[str, list[tuple[str | None, bytes]]]


def read_upload(path: str, raw: bytes, content_type: str) -> Upload:
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
    )
    upload = Upload(path, {}, {})
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition"))
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        if part.get_filename() is None:
            upload.fields.setdefault(name, []).append(payload.decode())
        else:
            upload.files.setdefault(name, []).append((part.get_filename(), payload))
    return upload


@dataclass
class MediaState(UpstreamState):
    forms: list[Upload] = field(default_factory=list)
    speech_sent: list[float] = field(default_factory=list)  # when each audio piece was written

    def reset(self) -> None:
        super().reset()
        self.forms.clear()
        self.speech_sent.clear()


class MediaUpstream(Upstream):
    """OpenAI's API, media routes included."""

    def __init__(self) -> None:
        self.state: MediaState = MediaState()

    async def handle(self, request: Recorded, receive: Any, send: Any) -> None:
        if request.path not in MEDIA_PATHS:
            await super().handle(request, receive, send)
            return
        fields: Obj = dict(request.body)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/"):
            upload = read_upload(request.path, request.raw, content_type)
            self.state.forms.append(upload)
            fields = {name: values[0] for name, values in upload.fields.items()}
        model = str(fields.get("model", ""))
        failure = self._failure(model, request.headers)
        if failure is not None:
            error = {"message": f"upstream says {failure}", "type": "invalid_request_error", "code": None}
            await send_json(send, failure, {"error": error}, _JSON)
            return
        await _ROUTES[request.path](self, fields, send)

    async def _embeddings(self, body: Obj, send: Any) -> None:
        if body["model"] == "html-embeddings":  # a proxy's error page with a 200
            await _raw(send, 200, b"<html>gateway timeout</html>", [(b"content-type", b"text/html")])
            return
        value = body["input"]
        items = value if isinstance(value, list) and not isinstance(value[0], int) else [value]
        size = body.get("dimensions") or 4
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": packed(vector(i, size)) if as_base64 else vector(i, size),
            }
            for i in range(len(items))
        ]
        answer = {"object": "list", "data": data, "model": body["model"], "usage": EMBED_USAGE}
        # Pretty-printed, as OpenAI sends it: the gateway must not depend on compact JSON.
        await _raw(send, 200, json.dumps(answer, indent=2).encode(), _JSON)

    async def _images(self, body: Obj, send: Any) -> None:
        n = int(body.get("n") or 1)
        answer: Obj = {"created": int(time.time())}
        if str(body["model"]).startswith("gpt-image"):
            answer |= {"data": [{"b64_json": PNG_B64}] * n, "usage": IMAGE_USAGE, "size": "1024x1024"}
        elif body.get("response_format") == "b64_json":
            answer["data"] = [{"b64_json": PNG_B64, "revised_prompt": 'a "usage": {} cat'}] * n
        else:
            answer["data"] = [{"url": "https://images.invalid/1.png", "revised_prompt": "a cat"}] * n
        await send_json(send, 200, answer, _JSON)

    async def _speech(self, body: Obj, send: Any) -> None:
        sse = body.get("stream_format") == "sse"
        media_type = b"text/event-stream" if sse else b"audio/mpeg"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", media_type)]})
        pieces = AUDIO_PIECES[:2] if body["model"] == "broken-speech" else AUDIO_PIECES
        for piece in pieces:
            if sse:
                event = {"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()}
                piece = b"data: " + orjson.dumps(event) + b"\n\n"
            self.state.speech_sent.append(time.perf_counter())
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(PIECE_DELAY)
        if body["model"] == "broken-speech":
            raise ConnectionAbortedError("upstream dropped the audio stream")
        if sse and body["model"] != "short-speech":  # short-speech ends cleanly but without its done event
            done = {"type": "speech.audio.done", "usage": SPEECH_USAGE}
            await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(done) + b"\n\n",
                        "more_body": True})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})

    async def _transcription(self, fields: Obj, send: Any) -> None:
        usage = (
            {"type": "duration", "seconds": 3}
            if str(fields["model"]).startswith("whisper")
            else TOKEN_TRANSCRIPT_USAGE
        )
        if fields.get("stream") == "true":
            words = TRANSCRIPT.split(" ")
            events: list[Obj] = [
                {"type": "transcript.text.delta", "delta": w if i == 0 else " " + w}
                for i, w in enumerate(words)
            ]
            events.append(
                {"type": "transcript.text.done", "text": TRANSCRIPT, "usage": TOKEN_TRANSCRIPT_USAGE}
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")],
                }
            )
            for event in events:
                await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(event) + b"\n\n",
                            "more_body": True})  # fmt: skip
            await send({"type": "http.response.body", "body": b""})
            return
        form = fields.get("response_format", "json")
        if form in TEXT_ANSWERS:
            await _raw(
                send, 200, TEXT_ANSWERS[form].encode(), [(b"content-type", b"text/plain; charset=utf-8")]
            )
            return
        answer: Obj = {"text": TRANSCRIPT, "usage": usage}
        if form == "verbose_json":
            answer = {"task": "transcribe", "language": "english", "duration": 3.0, "segments": [], **answer}
        await send_json(send, 200, answer, _JSON)


TEXT_ANSWERS = {
    "text": TRANSCRIPT + "\n",
    "srt": f"1\n00:00:00,000 --> 00:00:03,000\n{TRANSCRIPT}\n\n",
    "vtt": f"WEBVTT\n\n00:00:00.000 --> 00:00:03.000\n{TRANSCRIPT}\n\n",
}
_JSON = [(b"content-type", b"application/json"), (b"x-request-id", b"req_media")]
_ROUTES = {
    "/v1/embeddings": MediaUpstream._embeddings,
    "/v1/images/generations": MediaUpstream._images,
    "/v1/images/edits": MediaUpstream._images,
    "/v1/audio/speech": MediaUpstream._speech,
    "/v1/audio/transcriptions": MediaUpstream._transcription,
    "/v1/audio/translations": MediaUpstream._transcription,
}


async def _raw(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- Azure's deployment paths -------------------------------------------------------------------------

_AZURE_MEDIA = re.compile(
    r"^/openai/deployments/([^/]+)/(embeddings|images/generations|images/edits|audio/speech"
    r"|audio/transcriptions|audio/translations)$"
)


@dataclass
class AzureMediaShim:
    """Azure OpenAI's media URLs in front of a `MediaUpstream`: ``api-key`` and ``api-version`` checked,
    the deployment recorded, the request answered by the OpenAI-shaped app."""

    app: MediaUpstream
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (deployment, route, query)

    async def __call__(self, scope: Obj, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        match = _AZURE_MEDIA.match(scope["path"])
        query = scope["query_string"].decode()
        if match is None or "api-version=" not in query or headers.get("api-key") != "az-key":
            error = {"error": {"code": "DeploymentNotFound", "message": "no such deployment or bad key"}}
            await send_json(send, 404, error, _JSON)
            return
        self.seen.append((match.group(1), match.group(2), query))
        target = "/v1/" + match.group(2)
        await self.app({**scope, "path": target, "raw_path": target.encode()}, receive, send)


# -- Gemini's embeddings ------------------------------------------------------------------------------

GEMINI_COUNTED = "gemini-embedding-counted"  # this model reports usageMetadata; others report none


class GeminiEmbedUpstream(GeminiUpstream):
    """Gemini, with ``:embedContent`` and ``:batchEmbedContents``."""

    async def handle(self, request: Recorded, receive: Any, send: Any) -> None:
        method = request.path.rpartition(":")[2]
        if method not in ("embedContent", "batchEmbedContents"):
            await super().handle(request, receive, send)
            return
        if request.headers.get("x-goog-api-key") != "gm-key":
            error = {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}
            await send_json(send, 400, error, _JSON)
            return
        model = request.path.split("/models/")[1].rpartition(":")[0]
        requests = [request.body] if method == "embedContent" else request.body["requests"]
        embeddings = [
            {"values": vector(i, r.get("outputDimensionality") or 4)} for i, r in enumerate(requests)
        ]
        answer: Obj = {"embedding": embeddings[0]} if method == "embedContent" else {"embeddings": embeddings}
        if model == GEMINI_COUNTED:
            answer["usageMetadata"] = {"promptTokenCount": 7, "totalTokenCount": 7}
        await send_json(send, 200, answer, _JSON)
