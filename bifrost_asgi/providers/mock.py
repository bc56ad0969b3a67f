"""`mock`: a deterministic, offline provider for demos and tests.

It answers chat and text completions itself and reuses the Responses translation that compatible
providers use, so its Responses output exercises the same code. Every answer says it is a mock
(`system_fingerprint: "bifrost-asgi-mock"` and a ``[mock]`` text prefix). A model named
``fail-<status>`` (e.g. ``mock/fail-429``) fails with that upstream status, for trying fallbacks.
Embeddings, images and audio come from `providers.mock_media`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson

from bifrost_asgi.config import KeyConfig, ProviderConfig
from bifrost_asgi.providers.base import MEDIA_OPS, Call, Chunk, ChunkStream, Op, Reply
from bifrost_asgi.providers.http import upstream_error
from bifrost_asgi.providers.mock_media import check_speech_format, media_answer, media_stream
from bifrost_asgi.providers.openai import translate_chat_stream
from bifrost_asgi.translate import chat_to_responses_response

__all__ = ["MockProvider"]

FINGERPRINT = "bifrost-asgi-mock"


class MockProvider:
    """Answers every operation offline; needs no key (its configured keys only list models)."""

    uses_keys = False

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self._config = config

    def models(self) -> list[str]:
        listed = sorted({m for k in self._config.keys for m in k.models if m != "*"})
        return listed or ["mock-1"]

    async def send(self, call: Call, key: KeyConfig | None) -> Reply:
        _maybe_fail(call.model)
        if call.op in MEDIA_OPS:
            return media_answer(call)
        if call.op is Op.TEXT:
            return Reply(_text_completion(call))
        chat = _chat_completion(call)
        if call.op is Op.RESPONSES:
            return Reply(chat_to_responses_response(chat, request=call.body, model=call.model))
        return Reply(chat)

    async def open_stream(self, call: Call, key: KeyConfig | None) -> ChunkStream:
        _maybe_fail(call.model)
        if call.op is Op.SPEECH:
            check_speech_format(call)
        if call.op in MEDIA_OPS:
            return media_stream(call)
        if call.op is Op.RESPONSES:
            return translate_chat_stream(_chat_chunks(call), call, self.name)
        return _chat_chunks(call)


def _maybe_fail(model: str) -> None:
    if model.startswith("fail-") and model[5:].isdigit():
        status = int(model[5:])
        body = orjson.dumps({"error": {"message": f"mock failure {status}", "type": "mock_error"}})
        raise upstream_error(status, body, "mock")


def _reply_text(call: Call) -> str:
    said = _last_user_text(call).strip().replace("\n", " ")
    if len(said) > 200:
        said = said[:200] + "…"
    return f"[mock] This is a mock response from bifrost-asgi. You said: {said}" if said else "[mock] Hello!"


def _last_user_text(call: Call) -> str:
    body = call.body
    if call.op is Op.TEXT:
        prompt = body.get("prompt")
        return prompt if isinstance(prompt, str) else " ".join(p for p in prompt or [] if isinstance(p, str))
    items = body.get("messages") if call.op is Op.CHAT else body.get("input")
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            return _content_text(item.get("content"))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
    return ""


def _usage(call: Call, completion: str) -> dict[str, int]:
    # Deterministic, roughly token-sized: 4 bytes of request per prompt token, a word per output token.
    prompt = max(1, len(call.raw) // 4)
    out = len(completion.split())
    return {"prompt_tokens": prompt, "completion_tokens": out, "total_tokens": prompt + out}


def _envelope(call: Call, object_type: str) -> dict[str, Any]:
    """The fields every OpenAI completion object and chunk opens with; ids as OpenAI prefixes them."""
    prefix = "cmpl-mock-" if object_type == "text_completion" else "chatcmpl-mock-"
    return {
        "id": prefix + uuid.uuid4().hex[:24],
        "object": object_type,
        "created": int(time.time()),
        "model": call.model,
        "system_fingerprint": FINGERPRINT,
    }


def _chat_completion(call: Call) -> dict[str, Any]:
    text = _reply_text(call)
    return {
        **_envelope(call, "chat.completion"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(call, text),
    }


def _text_completion(call: Call) -> dict[str, Any]:
    text = _reply_text(call)
    return {
        **_envelope(call, "text_completion"),
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": _usage(call, text),
    }


async def _chat_chunks(call: Call) -> ChunkStream:
    """Stream the reply a word at a time, in chat or text chunk shape, usage on a final chunk."""
    text = _reply_text(call)
    words = text.split(" ")
    is_text = call.op is Op.TEXT
    base = _envelope(call, "text_completion" if is_text else "chat.completion.chunk")
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        if is_text:
            choice: dict[str, Any] = {"index": 0, "text": piece, "finish_reason": None, "logprobs": None}
        else:
            delta: dict[str, Any] = {"content": piece}
            if i == 0:
                delta["role"] = "assistant"
            choice = {"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}
        yield [Chunk(None, obj={**base, "choices": [choice]})]
        await asyncio.sleep(0)
    last = (
        {"index": 0, "text": "", "finish_reason": "stop"}
        if is_text
        else {"index": 0, "delta": {}, "finish_reason": "stop"}
    )
    usage = _usage(call, text)
    yield [
        Chunk(None, obj={**base, "choices": [last]}),
        Chunk(None, obj={**base, "choices": [], "usage": usage}, usage=usage),
    ]
