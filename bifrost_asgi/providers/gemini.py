"""Google Gemini (the Developer API): ``generateContent``, ``streamGenerateContent?alt=sse``, ``countTokens``,
and ``embedContent`` / ``batchEmbedContents`` for embeddings (``translate/gemini_embeddings.py``); images and
audio are not served (a 400 naming the route and the provider).

Requests in every API we serve are translated to Gemini's native shape and the answers back
(``bifrost_asgi/translate/gemini.py`` says how). The key travels in ``x-goog-api-key``.

Gemini's errors are ``{"error": {"code", "message", "status", "details"}}``; they are normalised to the
OpenAI shape (``type`` = Gemini's ``status``, ``code`` = the ``ErrorInfo`` reason when given, else the
numeric code, message verbatim) and mapped by :func:`upstream_error` like every other provider's. Two
Gemini habits need a correction on top: a bad key is a *400* ``API_KEY_INVALID`` (the key is retired and
fallbacks apply, as for a 401), and a 400 ``FAILED_PRECONDITION`` (region or billing) is the account's
fault, not the request's, so fallbacks still apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from bifrost_asgi.config import KeyConfig, ProviderConfig
from bifrost_asgi.errors import BifrostError, stream_cut, unsupported_operation
from bifrost_asgi.providers.base import (
    GATEWAY_FIELDS,
    MEDIA_OPS,
    OBJECTS,
    Call,
    Chunk,
    ChunkStream,
    Op,
    Reply,
    Shape,
    StreamConverter,
    aclose_stream,
    check_shape,
    client_body,
    converted,
)
from bifrost_asgi.providers.http import (
    TRANSPORT_ERRORS,
    HTTPProvider,
    loads_object,
    map_transport_error,
    upstream_error,
)
from bifrost_asgi.sse import aiter_sse
from bifrost_asgi.translate.gemini import (
    GeminiToChatStream,
    GeminiToResponsesStream,
    chat_to_gemini_request,
    count_tokens_request,
    count_tokens_response,
    gemini_to_chat_response,
    gemini_to_responses_response,
    gemini_to_text_response,
    responses_to_gemini_request,
    text_to_gemini_request,
)
from bifrost_asgi.translate.gemini_embeddings import embeddings_to_gemini, gemini_to_embeddings

__all__ = ["GeminiProvider"]

# Gemini answers with few useful headers; these are the ones a client can act on.
_FORWARDED = ("retry-after", "x-goog-request-id")
_KEY_INVALID = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})


class GeminiProvider(HTTPProvider):
    """Gemini models behind Google's Generative Language API.

    >>> provider = GeminiProvider("gemini", config, client, "https://generativelanguage.googleapis.com")
    """

    def __init__(
        self, name: str, config: ProviderConfig, transport: httpx.AsyncBaseTransport, base_url: str
    ) -> None:
        super().__init__(name, config, transport, lambda secret: {"x-goog-api-key": secret})
        self.error = gemini_error
        self._base = base_url.rstrip("/") + "/v1beta/models/"
        self.raw_base = base_url.rstrip("/")

    # -- requests -------------------------------------------------------------------------------

    def _url(self, model: str, method: str) -> str:
        # Gemini's own clients also accept "models/<name>"; the path wants the bare name.
        return self._base + quote(model.removeprefix("models/"), safe="-._~") + ":" + method

    async def send(self, call: Call, key: KeyConfig | None) -> Reply:
        if call.raw_route is not None:
            return await self.send_raw(call, key)
        if call.op is Op.COUNT_TOKENS:
            return await self._count_tokens(call, key)
        if call.op is Op.GEMINI_COUNT_TOKENS:
            return await self._native(call, key, "countTokens")
        if call.op is Op.GENERATE_CONTENT:
            reply = await self._native(call, key, "generateContent")
            check_answer(reply.body, "gemini's answer")
            return reply
        if call.op is Op.EMBEDDINGS:
            return await self._embed(call, key)
        self._check_serves(call.op)
        content = orjson.dumps(_request(call))
        resp = await self._post(self._url(call.model, "generateContent"), content, call, key)
        upstream = loads_object(resp.content, self.name)
        return Reply(_answer(call, upstream), _forwarded(resp.headers), content, resp.content)

    async def _native(self, call: Call, key: KeyConfig | None, method: str) -> Reply:
        """A Gemini body from ``/genai``, forwarded as it is (without gateway fields); the answer too."""
        content = _native_content(call)
        resp = await self._post(self._url(call.model, method), content, call, key)
        return Reply(loads_object(resp.content, self.name), _forwarded(resp.headers), content, resp.content)

    async def _count_tokens(self, call: Call, key: KeyConfig | None) -> Reply:
        request = count_tokens_request(client_body(call), call.model)
        if request is None:  # nothing to count: no need to ask
            return Reply({"input_tokens": 0, "input_tokens_details": {"cached_read_tokens": 0}})
        content = orjson.dumps(request)
        resp = await self._post(self._url(call.model, "countTokens"), content, call, key)
        body = count_tokens_response(loads_object(resp.content, self.name))
        return Reply(body, _forwarded(resp.headers), content, resp.content)

    def _check_serves(self, op: Op) -> None:
        if op in MEDIA_OPS:
            raise unsupported_operation(op.value, self.name)

    async def _embed(self, call: Call, key: KeyConfig | None) -> Reply:
        method, request = embeddings_to_gemini(client_body(call), call.model)
        content = orjson.dumps(request)
        resp = await self._post(self._url(call.model, method), content, call, key)
        upstream = loads_object(resp.content, self.name)
        body, estimated = gemini_to_embeddings(upstream, call.body, call.model, self.name)
        facts = {"usage_is_estimate": True} if estimated else None
        return Reply(body, _forwarded(resp.headers), content, resp.content, extra_fields=facts)

    async def open_stream(self, call: Call, key: KeyConfig | None) -> ChunkStream:
        if call.raw_route is not None:
            return await self.open_raw(call, key)
        self._check_serves(call.op)
        native = call.op is Op.GENERATE_CONTENT
        content = _native_content(call) if native else orjson.dumps(_request(call))
        url = self._url(call.model, "streamGenerateContent") + "?alt=sse"
        resp = await self._open(url, content, call, key)
        if native:
            return self._native_chunks(self._events(resp, call))
        return converted(self._events(resp, call), _converter(call), call.op, self._stream_object, self.name)

    async def _native_chunks(self, events: AsyncIterator[bytes]) -> ChunkStream:
        """Gemini's own chunks, passed through as they are; the usage that counts is the one on the chunk
        that finishes the answer (Gemini repeats it, growing, on every chunk)."""
        try:
            async for data in events:
                usage = None
                if b'"finishReason"' in data or b'"error"' in data:
                    obj = self._stream_object(data)
                    meta = obj.get("usageMetadata")
                    usage = meta if isinstance(meta, dict) else None
                yield [Chunk(None, data=data, usage=usage)]
        finally:
            await aclose_stream(events)

    async def _events(self, resp: httpx.Response, call: Call) -> AsyncIterator[bytes]:
        """The upstream's event payloads; a stream that ends before any candidate's ``finishReason``
        raises instead of passing for a short answer."""
        finished = False
        try:
            async for event in aiter_sse(resp.aiter_bytes(), call.max_event_bytes, self.name):
                finished = finished or b'"finishReason"' in event.data
                yield event.data
        except TRANSPORT_ERRORS as exc:
            raise map_transport_error(exc, self.name, call.timeout) from None
        finally:
            await resp.aclose()
        if not finished:
            raise stream_cut(self.name, "a finishReason")

    def _stream_object(self, data: bytes) -> dict[str, Any]:
        obj = loads_object(data, self.name)
        error = obj.get("error")
        if isinstance(error, dict):
            # An error after the stream started: Gemini sends it as one more event.
            status = error.get("code")
            raise gemini_error(status if isinstance(status, int) and status >= 400 else 500, data, self.name)
        return check_answer(obj, f"provider {self.name}'s stream event")


def _native_content(call: Call) -> bytes:
    """The client's Gemini body: its bytes, unless gateway-only fields must come out first."""
    if any(name in call.body for name in GATEWAY_FIELDS):
        return orjson.dumps(client_body(call))
    return call.raw


def _request(call: Call) -> dict[str, Any]:
    body = client_body(call)
    if call.op is Op.RESPONSES:
        return responses_to_gemini_request(body, call.model)
    if call.op is Op.CHAT:
        return chat_to_gemini_request(body, call.model)
    return text_to_gemini_request(body, call.model)


# The fields the translators read (see providers.base.check_shape); a candidate's content is an object.
_ANSWER: Shape = {"candidates": OBJECTS, "usageMetadata": dict, "promptFeedback": dict}
_CANDIDATE: Shape = {"content": dict, "finishReason": str}


def check_answer(obj: dict[str, Any], what: str) -> dict[str, Any]:
    check_shape(obj, _ANSWER, what)
    for candidate in obj.get("candidates") or ():
        check_shape(candidate, _CANDIDATE, what)
    return obj


def _answer(call: Call, upstream: dict[str, Any]) -> dict[str, Any]:
    check_answer(upstream, "gemini's answer")
    if call.op is Op.RESPONSES:
        return gemini_to_responses_response(upstream, request=call.body, model=call.model)
    if call.op is Op.CHAT:
        return gemini_to_chat_response(upstream, call.model)
    return gemini_to_text_response(upstream, call.model)


def _converter(call: Call) -> StreamConverter:
    if call.op is Op.RESPONSES:
        return GeminiToResponsesStream(request=call.body, model=call.model)
    return GeminiToChatStream(model=call.model, text_completion=call.op is Op.TEXT)


def _forwarded(headers: httpx.Headers) -> dict[str, str]:
    return {name: headers[name] for name in _FORWARDED if name in headers}


# -- errors -------------------------------------------------------------------------------------------


def gemini_error(status: int, content: bytes, provider: str) -> BifrostError:
    """A Gemini error answer as a BifrostError, with Gemini's own retry semantics."""
    error = _error_object(content)
    if error is None:
        return upstream_error(status, content, provider)
    reason = _reason(error)
    code = reason or (str(error["code"]) if isinstance(error.get("code"), int) else None)
    normalised = {
        "error": {"message": error.get("message"), "type": error.get("status"), "code": code, "param": None}
    }
    err = upstream_error(status, orjson.dumps(normalised), provider)
    if reason in _KEY_INVALID:
        # A dead key, whatever the status says: retire it for this request and let fallbacks run.
        err.dead_key = err.retryable = err.allow_fallbacks = True
    elif error.get("status") == "FAILED_PRECONDITION":
        err.allow_fallbacks = True
    return err


def _error_object(content: bytes) -> dict[str, Any] | None:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    # Non-SSE streaming answers wrap the error in a list.
    if isinstance(body, list) and body:
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _reason(error: dict[str, Any]) -> str | None:
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            reason = detail.get("reason")
            if isinstance(reason, str):
                return reason
    return None
