"""The `mock` provider's media answers, deterministic and offline: vectors derived from the input's
hash, a 1×1 PNG, half a second of silent audio, and a fixed transcript ("[mock] ...").

Speech is mp3 (silent MPEG frames), wav or pcm; other formats are refused as an upstream would. Every
answer has OpenAI's shape, so the official SDK parses it and the example site works without keys.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import struct
import time
import zlib
from collections.abc import Callable
from functools import cache
from typing import Any

import orjson

from bifrost_asgi.providers.base import Call, Chunk, ChunkStream, Op, Reply, answers_text
from bifrost_asgi.providers.http import upstream_error

__all__ = ["TRANSCRIPT", "check_speech_format", "media_answer", "media_stream", "silent_audio", "tiny_png"]

TRANSCRIPT = "[mock] This is a mock transcript from bifrost-asgi."
_DEFAULT_DIMENSIONS = 8
_SPEECH_PIECES = 4


def media_answer(call: Call) -> Reply:
    if call.op is Op.EMBEDDINGS:
        return Reply(_embeddings(call))
    if call.op in (Op.IMAGE_GENERATION, Op.IMAGE_EDIT):
        return Reply(_images(call))
    if call.op in (Op.TRANSCRIPTION, Op.TRANSLATION):
        return _transcript(call)
    raise AssertionError(f"{call.op} is streamed")  # speech always opens a stream


async def media_stream(call: Call) -> ChunkStream:
    """Speech (audio bytes, or OpenAI's speech events) or a streamed transcript."""
    if call.op is Op.TRANSCRIPTION:
        words = TRANSCRIPT.split(" ")
        for i, word in enumerate(words):
            yield [
                Chunk(None, obj={"type": "transcript.text.delta", "delta": word if i == 0 else " " + word})
            ]
            await asyncio.sleep(0)
        usage = _transcript_usage(call)
        yield [
            Chunk(None, obj={"type": "transcript.text.done", "text": TRANSCRIPT, "usage": usage}, usage=usage)
        ]
        return
    audio = silent_audio(str(call.body.get("response_format", "mp3")))
    step = -(-len(audio) // _SPEECH_PIECES)
    pieces = [audio[i : i + step] for i in range(0, len(audio), step)]
    sse = call.body.get("stream_format") == "sse"
    for piece in pieces:
        if sse:
            yield [Chunk(None, obj={"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()})]
        else:
            yield [Chunk(None, data=piece)]
        await asyncio.sleep(0)
    if sse:
        text_tokens = max(1, len(str(call.body.get("input", ""))) // 4)
        usage = {
            "input_tokens": text_tokens,
            "output_tokens": len(pieces),
            "total_tokens": text_tokens + len(pieces),
        }
        yield [Chunk(None, obj={"type": "speech.audio.done", "usage": usage}, usage=usage)]


def check_speech_format(call: Call) -> None:
    """Refuse, before the stream opens, a format the mock cannot make."""
    audio_format = call.body.get("response_format", "mp3")
    if audio_format not in _AUDIO:
        message = f"mock speaks mp3, wav and pcm, not {audio_format}"
        error = {"message": message, "type": "invalid_request_error", "param": "response_format"}
        raise upstream_error(400, orjson.dumps({"error": error}), "mock")


# -- embeddings ---------------------------------------------------------------------------------------


def _embeddings(call: Call) -> dict[str, Any]:
    value = call.body.get("input")
    items = value if isinstance(value, list) and value and not isinstance(value[0], int) else [value]
    dimensions = call.body.get("dimensions")
    size = dimensions if isinstance(dimensions, int) and dimensions > 0 else _DEFAULT_DIMENSIONS
    as_base64 = call.body.get("encoding_format") == "base64"
    data = []
    for i, item in enumerate(items):
        vector = _vector(orjson.dumps(item), size)
        packed = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": i, "embedding": packed})
    tokens = sum(max(1, len(orjson.dumps(item)) // 4) for item in items)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": call.model, "usage": usage}


def _vector(seed: bytes, size: int) -> list[float]:
    """A unit vector that depends only on ``seed``: the same input always embeds the same way."""
    stream = b""
    counter = 0
    while len(stream) < 4 * size:
        stream += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    raw = [int.from_bytes(stream[4 * i : 4 * i + 4], "big") / 2**31 - 1.0 for i in range(size)]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [round(v / norm, 6) for v in raw]


# -- images -------------------------------------------------------------------------------------------


@cache  # the mock answers every image request with it: built once
def tiny_png() -> bytes:
    """A valid 1×1 PNG (one grey pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1×1, 8-bit greyscale
    pixels = zlib.compress(b"\x00\x80")  # filter byte 0, one grey pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _images(call: Call) -> dict[str, Any]:
    n = call.body.get("n")
    count = int(n) if isinstance(n, int | str) and str(n).isdigit() and int(n) > 0 else 1
    encoded = base64.b64encode(tiny_png()).decode()
    as_url = call.body.get("response_format") == "url"
    item = {"url": "data:image/png;base64," + encoded} if as_url else {"b64_json": encoded}
    return {"created": int(time.time()), "data": [dict(item) for _ in range(count)]}


# -- audio --------------------------------------------------------------------------------------------


def _silent_mp3(frames: int = 20) -> bytes:
    # MPEG-1 Layer III, 32 kbit/s, 44.1 kHz, mono, no CRC: 104-byte frames whose zeroed side information
    # decodes to silence (26 ms each).
    return (b"\xff\xfb\x10\xc0" + bytes(100)) * frames


def _silent_wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    data = bytes(int(seconds * rate) * 2)  # 16-bit mono
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, 1, rate,
                         rate * 2, 2, 16, b"data", len(data))  # fmt: skip
    return header + data


def _silent_pcm() -> bytes:
    return bytes(24000)  # OpenAI's pcm: 24 kHz 16-bit mono; half a second of it


_AUDIO: dict[str, Callable[[], bytes]] = {
    "mp3": _silent_mp3,
    "wav": _silent_wav,
    "pcm": _silent_pcm,
}


@cache  # built once per format, not per speech request
def silent_audio(audio_format: str) -> bytes:
    return _AUDIO[audio_format]()


# -- transcripts --------------------------------------------------------------------------------------


def _transcript(call: Call) -> Reply:
    text = TRANSCRIPT
    audio_format = call.body.get("response_format", "json")
    if answers_text(call):
        return Reply({}, content=_as_text(audio_format, text).encode())
    body: dict[str, Any] = {"text": text, "usage": {"type": "duration", "seconds": 1}}
    if audio_format == "verbose_json":
        segment = {"id": 0, "seek": 0, "start": 0.0, "end": 1.0, "text": text, "tokens": [],
                   "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 1.0,
                   "no_speech_prob": 0.0}  # fmt: skip
        task = "translate" if call.op is Op.TRANSLATION else "transcribe"
        body = {"task": task, "language": "english", "duration": 1.0, "segments": [segment], **body}
    return Reply(body)


def _as_text(audio_format: object, text: str) -> str:
    if audio_format == "srt":
        return f"1\n00:00:00,000 --> 00:00:01,000\n{text}\n\n"
    if audio_format == "vtt":
        return f"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n\n"
    return text + "\n"


def _transcript_usage(call: Call) -> dict[str, Any]:
    audio = 10
    text = len(TRANSCRIPT.split(" "))
    return {"type": "tokens", "input_tokens": audio, "output_tokens": text, "total_tokens": audio + text,
            "input_token_details": {"audio_tokens": audio, "text_tokens": 0}}  # fmt: skip
