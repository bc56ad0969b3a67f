"""OpenAI's audio routes as surfaces of the one journey: ``{p}/v1/audio/speech``,
``/audio/transcriptions`` and ``/audio/translations``.

Speech is always streamed from the upstream: the audio reaches the client as it arrives, never held
whole, as the provider's bytes with a content type from ``response_format`` (`AudioEncoder`); with
``"stream_format": "sse"`` it is OpenAI's event stream instead (``speech.audio.delta`` ... ``done``), with
``extra_fields`` on every event. An audio stream that fails after it started cannot say so in-band, so
the response is aborted rather than ended as if complete.

Transcriptions and translations are multipart uploads forwarded as the client's bytes
(`bifrost_asgi.multipart`). ``response_format`` json and verbose_json answer JSON with ``extra_fields``;
text, srt and vtt answer the provider's text as it is. A transcription with the form field
``stream=true`` streams OpenAI's transcript events.
"""

from __future__ import annotations

from bifrost_asgi.errors import BifrostError, invalid_request
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.io import SSE_HEADERS
from bifrost_asgi.pipeline.request import Request, Served, parse_body, require_model
from bifrost_asgi.pipeline.streaming import StreamEncoder
from bifrost_asgi.pricing import Media, Usage
from bifrost_asgi.providers.base import TEXT_FORMATS, Chunk, Op
from bifrost_asgi.surfaces.base import json_request, standard_headers
from bifrost_asgi.surfaces.media import MediaSurface, form_of, form_request, read_request_form, required_text
from bifrost_asgi.types import Headers, Scope

__all__ = [
    "AUDIO_TYPES",
    "TEXT_FORMATS",
    "AudioEncoder",
    "SpeechSurface",
    "TranscriptionSurface",
    "is_sse_speech",
]

# OpenAI's speech formats and the media types it answers them with.
AUDIO_TYPES = {
    "mp3": b"audio/mpeg",
    "opus": b"audio/opus",
    "aac": b"audio/aac",
    "flac": b"audio/flac",
    "wav": b"audio/wav",
    "pcm": b"audio/pcm",
}
_STREAM_FORMATS = ("audio", "sse")
_TEXT_HEADERS: Headers = [(b"content-type", b"text/plain; charset=utf-8")]


def is_sse_speech(body: dict[str, object]) -> bool:
    return body.get("stream_format") == "sse"


class SpeechSurface(MediaSurface):
    """``POST {p}/v1/audio/speech``: ``input`` and ``voice`` required; priced per character of
    ``input`` where the model is (tts-1), else by the tokens a streamed answer reports."""

    def __init__(self, integration: str | None) -> None:
        super().__init__(Op.SPEECH, integration)

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        body = parse_body(raw)
        model = require_model(body)
        text = required_text(body, "input", "input is required for speech completion")
        voice = body.get("voice")
        if not voice or not isinstance(voice, str | dict):
            raise invalid_request("voice is required for speech completion", param="voice")
        stream_format = body.get("stream_format")
        if stream_format is not None and stream_format not in _STREAM_FORMATS:
            raise invalid_request('stream_format must be "audio" or "sse"', param="stream_format")
        audio_format = body.get("response_format", "mp3")
        if not isinstance(audio_format, str):
            raise invalid_request("response_format must be a string", param="response_format")
        sse = is_sse_speech(body)
        req = json_request(gw, Op.SPEECH, body, raw, True, model, Op.SPEECH.request_type(sse), started)
        req.estimate = Usage(
            input_tokens=len(text.encode()) // 4, media=Media("speech", characters=len(text))
        )
        return req

    def headers(self, req: Request, served: Served) -> Headers:
        if is_sse_speech(req.body):
            return SSE_HEADERS
        media_type = AUDIO_TYPES.get(str(req.body.get("response_format", "mp3")), b"application/octet-stream")
        # Played while it arrives: no caching, and no proxy buffering it whole.
        return [(b"content-type", media_type), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]

    def encoder(self, gw: Gateway, req: Request, served: Served) -> StreamEncoder:
        return super().encoder(gw, req, served) if is_sse_speech(req.body) else AudioEncoder()


class AudioEncoder:
    """Audio bytes as the provider streams them; no terminator, and no in-band error (an abort)."""

    def encode(self, chunk: Chunk) -> bytes:
        return chunk.data or b""

    def error(self, err: BifrostError) -> bytes | None:
        return None

    def end(self) -> bytes:
        return b""


class TranscriptionSurface(MediaSurface):
    """``POST {p}/v1/audio/transcriptions`` (``op=TRANSCRIPTION``) or ``/audio/translations``
    (``TRANSLATION``): a multipart ``file`` and ``model``; priced by the usage the answer reports
    (audio tokens or seconds), which text formats do not report."""

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        form = read_request_form(raw, scope)
        stream = form.field("stream") == "true"
        req = form_request(gw, form, self.op, self.op.request_type(stream), started)
        if not form.files("file"):
            raise invalid_request("file is required", param="file")
        if stream and self.op is not Op.TRANSCRIPTION:
            raise invalid_request("translations are not streamed", param="stream")
        req.stream = stream
        req.estimate = Usage(media=Media("transcription"))
        return req

    def is_json(self, req: Request) -> bool:
        return form_of(req).field("response_format") not in TEXT_FORMATS

    def headers(self, req: Request, served: Served) -> Headers:
        return standard_headers(served) if self.is_json(req) else _TEXT_HEADERS
