"""OpenAI, and the OpenAI-compatible family (groq, vllm, ollama, mistral, ... and custom names).

OpenAI speaks every format we serve, so its bodies pass through untouched. Compatible providers speak
chat and text completions natively; Responses requests are translated to chat completions and back.

Media (embeddings, images, audio) pass through to the same paths for the whole family: a compatible
server answers what it serves, and its own 404 for the rest, except the chat-only hosted APIs, which are
refused up front. Their answers are handed on as bytes (`Reply.content`) with only the usage read;
multipart uploads go out as the client's bytes with the model replaced; speech audio is streamed as the
upstream sends it.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from bifrost_asgi.config import KeyConfig, ProviderConfig
from bifrost_asgi.errors import MALFORMED, bad_response, stream_cut, unreadable, unsupported_operation
from bifrost_asgi.providers.base import (
    FORM_GATEWAY_FIELDS,
    MEDIA_OPS,
    OBJECTS,
    TERMINAL_EVENTS,
    Call,
    Chunk,
    ChunkStream,
    Op,
    Reply,
    Shape,
    aclose_stream,
    answers_text,
    check_shape,
    client_body,
    event_chunk,
)
from bifrost_asgi.providers.http import (
    TRANSPORT_ERRORS,
    URL,
    Content,
    HTTPProvider,
    forwarded_headers,
    loads_object,
    map_transport_error,
    object_or_none,
    object_within,
    request,
)
from bifrost_asgi.sse import aiter_sse_batches
from bifrost_asgi.translate import (
    ChatToResponsesStream,
    chat_to_responses_response,
    responses_to_chat_request,
)

__all__ = ["OpenAICompatProvider", "OpenAIProvider", "check_chat", "check_response", "media_reply"]

_PATHS = {
    Op.RESPONSES: "/v1/responses",
    Op.CHAT: "/v1/chat/completions",
    Op.TEXT: "/v1/completions",
    Op.COUNT_TOKENS: "/v1/responses/input_tokens",
    Op.EMBEDDINGS: "/v1/embeddings",
    Op.IMAGE_GENERATION: "/v1/images/generations",
    Op.IMAGE_EDIT: "/v1/images/edits",
    Op.SPEECH: "/v1/audio/speech",
    Op.TRANSCRIPTION: "/v1/audio/transcriptions",
    Op.TRANSLATION: "/v1/audio/translations",
}
# Hosted compatible APIs that serve chat and text completions only.
_CHAT_ONLY = frozenset({"cerebras", "deepseek", "perplexity"})
# Upstream response headers worth passing back: rate-limit state and timing. The provider's own
# request id is renamed, since x-request-id is the gateway's.
_FORWARD_PREFIXES = ("x-ratelimit-", "openai-", "retry-after")


class OpenAIProvider(HTTPProvider):
    """The native provider: same wire format in and out."""

    def __init__(
        self, name: str, config: ProviderConfig, transport: httpx.AsyncBaseTransport, base_url: str
    ) -> None:
        super().__init__(name, config, transport, self._credential)
        # Parsed once: the hot path hands these to httpx as they are.
        self._urls = {op: httpx.URL(base_url + path) for op, path in _PATHS.items()}
        self._models_url = httpx.URL(base_url + "/v1/models")
        self.raw_base = base_url

    @staticmethod
    def _credential(secret: str) -> dict[str, str]:
        return {"authorization": "Bearer " + secret}

    # -- requests -------------------------------------------------------------------------------

    def _body(self, call: Call) -> bytes:
        if call.passthrough and not (call.stream and call.op is Op.CHAT):
            return call.raw
        body = client_body(call)
        body["model"] = call.model
        if call.stream and call.op in (Op.CHAT, Op.TEXT):
            # Usage is needed for cost and budgets; OpenAI only sends it on streams when asked.
            opts = body.get("stream_options")
            if not isinstance(opts, dict) or "include_usage" not in opts:
                body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
        return orjson.dumps(body)

    def _content(self, call: Call) -> Content:
        if call.form is not None:  # an upload: the client's bytes, with this call's model
            return call.form.encode({"model": call.model}, drop=FORM_GATEWAY_FIELDS)
        return self._body(call)

    async def send(self, call: Call, key: KeyConfig | None) -> Reply:
        if call.raw_route is not None:
            return await self.send_raw(call, key)
        return await self._send(self._urls[call.op], call, key)

    async def _send(self, url: URL, call: Call, key: KeyConfig | None) -> Reply:
        content = self._content(call)
        resp = await self._post(url, content, call, key)
        sent = content if isinstance(content, bytes) else None  # an upload is not echoed back
        if call.op in MEDIA_OPS:
            return media_reply(call, resp, sent, self.name)
        return Reply(loads_object(resp.content, self.name), _forwarded(resp.headers), sent, resp.content)

    async def open_stream(self, call: Call, key: KeyConfig | None) -> ChunkStream:
        if call.raw_route is not None:
            return await self.open_raw(call, key)
        return await self._stream(self._urls[call.op], call, key)

    async def _stream(self, url: URL, call: Call, key: KeyConfig | None) -> ChunkStream:
        resp = await self._open(url, self._content(call), call, key)
        if call.op is Op.SPEECH and call.body.get("stream_format") != "sse":
            return self._bytes(resp, call.timeout)
        return self._chunks(resp, call.op, call)

    async def _bytes(self, resp: httpx.Response, timeout: float) -> ChunkStream:
        """A binary answer (speech audio), passed on as each read delivers it; a connection cut short
        is a transport error, not an end."""
        try:
            async for data in resp.aiter_raw():
                if data:
                    yield [Chunk(None, data=data)]
        except TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, self.name, timeout) from None
        finally:
            await resp.aclose()

    async def _chunks(self, resp: httpx.Response, op: Op, call: Call) -> ChunkStream:
        """The upstream's events; a stream that ends before it is complete (no ``[DONE]`` and no
        ``finish_reason``; no terminal Responses, speech or transcript event) raises instead of passing
        for a short answer."""
        complete = done = False
        try:
            async for events in aiter_sse_batches(resp.aiter_bytes(), call.max_event_bytes, self.name):
                batch = []
                for ev in events:
                    if ev.data == b"[DONE]":  # chat and text's terminator; a Responses stream's ends it too
                        done = True
                        complete = complete or op is not Op.RESPONSES
                        break
                    chunk = _classify(ev.event, ev.data, op)
                    complete = complete or _completes(op, chunk, ev.data)
                    batch.append(chunk)
                if batch:
                    yield batch
                if done:
                    break
        except TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, self.name, call.timeout) from None
        finally:
            await resp.aclose()
        if not complete:
            final = op is Op.RESPONSES or op in _MEDIA_TERMINALS
            raise stream_cut(self.name, "its final event" if final else "a finish_reason or [DONE]")

    async def list_models(self, key: KeyConfig | None, timeout: float) -> list[dict[str, Any]]:
        headers = self._key_headers[id(key)] if key is not None else self._anon_headers
        resp = await request(
            self._transport,
            self._models_url,
            None,
            headers,
            provider=self.name,
            timeout=timeout,
            method="GET",
        )
        data = loads_object(resp.content, self.name).get("data")
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


class OpenAICompatProvider(OpenAIProvider):
    """A chat-completions server: Responses requests are translated to chat and back."""

    async def send(self, call: Call, key: KeyConfig | None) -> Reply:
        self._check_serves(call.op)
        if call.op is not Op.RESPONSES:
            return await super().send(call, key)
        content = _chat_body(call, stream=False)
        resp = await self._post(self._urls[Op.CHAT], content, call, key)
        chat = check_chat(loads_object(resp.content, self.name), f"provider {self.name}'s answer")
        body = chat_to_responses_response(chat, request=call.body, model=call.model)
        return Reply(body, _forwarded(resp.headers), content, resp.content)

    async def open_stream(self, call: Call, key: KeyConfig | None) -> ChunkStream:
        self._check_serves(call.op)
        if call.op is not Op.RESPONSES:
            return await super().open_stream(call, key)
        resp = await self._open(self._urls[Op.CHAT], _chat_body(call, stream=True), call, key)
        return translate_chat_stream(self._chunks(resp, Op.CHAT, call), call, self.name)

    def _check_serves(self, op: Op) -> None:
        if op in MEDIA_OPS and self.name in _CHAT_ONLY:
            raise unsupported_operation(op.value, self.name)


def media_reply(call: Call, resp: httpx.Response, sent: bytes | None, provider: str) -> Reply:
    """A media answer handed on as its bytes: a JSON object of which only the ``usage`` is read, or a
    transcript's text as it is."""
    content = resp.content
    body: dict[str, Any] = {}
    if not answers_text(call):
        stripped = content.strip()
        if not (stripped.startswith(b"{") and stripped.endswith(b"}")):
            raise bad_response(f"provider {provider} returned a body that is not a JSON object")
        usage = object_within(content, "usage")
        if usage is not None:
            body["usage"] = usage
    return Reply(body, _forwarded(resp.headers), sent, content, content=content)


async def translate_chat_stream(chunks: ChunkStream, call: Call, source: str) -> ChunkStream:
    """Turn a chat-completions chunk stream into OpenAI's Responses event sequence, batch for batch."""
    conv = ChatToResponsesStream(request=call.body, model=call.model)
    try:
        if started := [Chunk(ev["type"], obj=ev) for ev in conv.start()]:
            yield started
        async for batch in chunks:
            try:
                out = [Chunk(ev["type"], obj=ev) for chunk in batch for ev in conv.feed(_object(chunk))]
            except MALFORMED as exc:
                raise unreadable(source, exc) from None
            if out:
                yield out
        if finish := [event_chunk(Op.RESPONSES, ev) for ev in conv.finish()]:
            yield finish
    finally:
        await aclose_stream(chunks)


def _object(chunk: Chunk) -> dict[str, Any]:
    obj = chunk.obj if chunk.obj is not None else loads_object(chunk.data or b"", "the upstream", "an event")
    return check_chat(obj, "a chat stream event")


# The fields the chat-to-Responses translator reads (see providers.base.check_shape).
_CHAT: Shape = {"choices": OBJECTS, "usage": dict}
_CHOICE: Shape = {"message": dict, "delta": dict, "finish_reason": str}


_RESPONSE: Shape = {"output": OBJECTS, "usage": dict, "status": str}
_RESPONSE_EVENT: Shape = {"response": dict, "item": dict, "part": dict, "delta": str, "text": str}


def check_response(obj: dict[str, Any], what: str) -> dict[str, Any]:
    """A Responses answer (or stream event) whose fields have the types translators read, else a 502."""
    check_shape(obj, _RESPONSE_EVENT if "sequence_number" in obj or "response" in obj else _RESPONSE, what)
    if isinstance(obj.get("response"), dict):
        check_shape(obj["response"], _RESPONSE, what)
    return obj


def check_chat(obj: dict[str, Any], what: str) -> dict[str, Any]:
    """A chat completion (or chunk) whose fields have the types the translators read, else a 502."""
    check_shape(obj, _CHAT, what)
    for choice in obj.get("choices") or ():
        check_shape(choice, _CHOICE, what)
    return obj


# The event that ends a streamed speech or transcript answer (OpenAI sends no [DONE] after it).
_MEDIA_TERMINALS = {Op.SPEECH: b'"speech.audio.done"', Op.TRANSCRIPTION: b'"transcript.text.done"'}


def _completes(op: Op, chunk: Chunk, data: bytes) -> bool:
    """Whether this event completes the answer: Responses' terminal events; a speech or transcript
    stream's ``done`` event; for chat and text, a choice's finish_reason (servers that omit ``[DONE]``
    still send one)."""
    if op is Op.RESPONSES:
        return chunk.event in TERMINAL_EVENTS
    if op in _MEDIA_TERMINALS:
        return _MEDIA_TERMINALS[op] in data
    return b'"finish_reason":"' in data or b'"finish_reason": "' in data


def _classify(event: str | None, data: bytes, op: Op) -> Chunk:
    """Parse only the chunk that carries usage; every other chunk stays as bytes (as does one that is
    not a JSON object: it is passed on as the upstream sent it, unpriced)."""
    if op is Op.RESPONSES:
        if event in TERMINAL_EVENTS and (obj := object_or_none(data)) is not None:
            response = obj.get("response")
            usage = response.get("usage") if isinstance(response, dict) else None
            return Chunk(event, obj=obj, usage=usage if isinstance(usage, dict) else None)
        return Chunk(event, data=data)
    # Two scans, not a cheaper-looking '"usage"' pre-check: OpenAI sends "usage":null on every chunk.
    if (b'"usage":{' in data or b'"usage": {' in data) and (obj := object_or_none(data)) is not None:
        usage = obj.get("usage")
        return Chunk(None, obj=obj, usage=usage if isinstance(usage, dict) else None)
    return Chunk(None, data=data)


def _forwarded(headers: httpx.Headers) -> dict[str, str]:
    return forwarded_headers(headers, _FORWARD_PREFIXES)


def _chat_body(call: Call, *, stream: bool) -> bytes:
    """The chat-completions body a compat provider is sent for a Responses ``call``."""
    return orjson.dumps(responses_to_chat_request(client_body(call), call.model, stream=stream))
