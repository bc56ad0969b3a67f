"""The Gemini dialect: ``POST /genai/v1beta/models/{model}:generateContent``, ``:streamGenerateContent``,
``:countTokens``, ``:embedContent``, ``:batchEmbedContents``, and ``GET /genai/v1beta/models`` (also under
``/litellm``, ``/langchain`` and ``/pydanticai``).

Google's ``google-genai`` SDK works unmodified against ``{gateway}/genai``. The model is the path's (the
SDK sends ``models/<model>``; ``models/openai/gpt-4o`` reaches another provider). A bare model goes to the
gemini provider and its body passes through natively (``Op.GENERATE_CONTENT``); ``provider/model`` goes
to that provider through the reverse translation (Gemini → Responses, and the answer back as a
``GenerateContentResponse`` or its SSE chunks; ``translate/gemini_responses.py`` says how). Embeddings
go to every provider, gemini included, as the embeddings surface's OpenAI body and back
(``translate/gemini_embeddings.py``).

On this prefix everything on the wire is Google's: answers, SSE framing (``data: <chunk>`` only, no
terminator) and errors (``{"error": {"code", "message", "status"}}``, also as the last stream event).
Cost is reported in ``x-bifrost-cost-usd``; bodies stay exactly the shapes the SDK knows.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson

from bifrost_asgi.errors import BifrostError, not_found
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.pipeline.io import JSON_HEADERS, send_bytes
from bifrost_asgi.pipeline.journey import handle
from bifrost_asgi.pipeline.request import Request, Served, parse_body
from bifrost_asgi.providers.base import Call, Chunk, Op
from bifrost_asgi.providers.http import loads_object
from bifrost_asgi.routing import Target, check_model_string
from bifrost_asgi.sse import frame
from bifrost_asgi.surfaces.base import (
    Surface,
    dialect_primary,
    json_request,
    make_call,
    render_answer,
    standard_headers,
    translate_event,
)
from bifrost_asgi.surfaces.media import embeddings_request
from bifrost_asgi.translate.gemini_embeddings import (
    EMBED_METHODS,
    embeddings_to_gemini_response,
    gemini_to_embeddings_request,
)
from bifrost_asgi.translate.gemini_responses import (
    ResponsesToGeminiStream,
    gemini_count_to_responses_request,
    gemini_to_responses_request,
    responses_to_gemini_response,
)
from bifrost_asgi.types import Headers, Scope

__all__ = ["GeminiCountSurface", "GeminiEmbedSurface", "GeminiEndpoint", "GeminiSurface", "google_error_body"]

# Where the dispatcher leaves the path's model for the surface (a scope key nobody else uses).
MODEL_SCOPE_KEY = "bifrost_asgi.gemini_model"
# Gemini's embedding options that only a gemini provider reads (OpenAI refuses unknown parameters).
_GEMINI_ONLY_OPTIONS = ("task_type", "title")
# Google's canonical codes (google.rpc.Code) by HTTP status.
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
    501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}  # fmt: skip
_GOOGLE_CODES = frozenset({*_GOOGLE_STATUS.values(), "FAILED_PRECONDITION", "OUT_OF_RANGE", "UNKNOWN"})


def google_error_body(err: BifrostError) -> bytes:
    """An error in Google's shape; a Gemini upstream's own status name is kept."""
    status = err.error_type if err.error_type in _GOOGLE_CODES else _GOOGLE_STATUS.get(err.status_code)
    if status is None:
        status = "INTERNAL" if err.status_code >= 500 else "FAILED_PRECONDITION"
    return orjson.dumps({"error": {"code": err.status_code, "message": err.message, "status": status}})


class _GeminiDialect:
    """What generateContent and countTokens share: the model from the path, the primary, errors."""

    native_op: Op
    bridged_op: Op
    request_type: str

    def __init__(self, integration: str = "genai") -> None:
        self.integration = integration

    def _request(self, gw: Gateway, raw: bytes, scope: Scope, started: float, stream: bool) -> Request:
        body = parse_body(raw)
        model = check_model_string(str(scope[MODEL_SCOPE_KEY]), "model")
        counting = self.native_op is Op.GEMINI_COUNT_TOKENS
        request_type = self.request_type if counting else Op.RESPONSES.request_type(stream)
        return json_request(
            gw, self.native_op, body, raw, stream, model, request_type, started, metered=not counting
        )

    def primary(self, gw: Gateway, req: Request) -> Target:
        return dialect_primary(gw, req.model, "gemini", own_prefix=self.integration == "genai")

    def call_for(self, gw: Gateway, req: Request, provider: str, model: str) -> Call:
        if gw.config.provider_kind(provider) == "gemini":
            return make_call(gw, req, provider, model, body=self._native_body(req.body, model))
        body = req.state.get("bridged")
        if body is None:
            body = req.state["bridged"] = self._bridged(req)
        return make_call(gw, req, provider, model, op=self.bridged_op, body=body, raw=orjson.dumps(body))

    def _native_body(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        return body

    def _bridged(self, req: Request) -> dict[str, Any]:
        raise NotImplementedError

    def headers(self, req: Request, served: Served) -> Headers:
        return standard_headers(served)

    def error_body(self, err: BifrostError) -> bytes:
        return google_error_body(err)


class GeminiSurface(_GeminiDialect):
    """``:generateContent`` (a ``GenerateContentResponse``) or ``:streamGenerateContent`` (its chunks as
    SSE; Google's SDKs always ask with ``alt=sse``)."""

    native_op = Op.GENERATE_CONTENT
    bridged_op = Op.RESPONSES
    request_type = Op.RESPONSES.value

    def __init__(self, stream: bool, integration: str = "genai") -> None:
        super().__init__(integration)
        self.stream = stream

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        return self._request(gw, raw, scope, started, self.stream)

    def _bridged(self, req: Request) -> dict[str, Any]:
        # A translation error counts only for the targets that need the translation (see call_for).
        return gemini_to_responses_request(req.body, req.model, stream=req.stream)

    def render(self, gw: Gateway, req: Request, served: Served) -> bytes:
        return render_answer(
            served, Op.GENERATE_CONTENT, partial(responses_to_gemini_response, model=req.model)
        )

    def encoder(self, gw: Gateway, req: Request, served: Served) -> GeminiStreamEncoder:
        return GeminiStreamEncoder(req, served)


class GeminiCountSurface(_GeminiDialect):
    """``:countTokens``: ``{"totalTokens": N}`` (a gemini provider's own answer, whole)."""

    native_op = Op.GEMINI_COUNT_TOKENS
    bridged_op = Op.COUNT_TOKENS
    request_type = Op.COUNT_TOKENS.value

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        return self._request(gw, raw, scope, started, False)

    def _native_body(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        # A whole generateContentRequest names its model, which must be the one counted (a fallback's).
        inner = body.get("generateContentRequest")
        if isinstance(inner, dict) and "model" in inner:
            return {**body, "generateContentRequest": {**inner, "model": f"models/{model}"}}
        return body

    def _bridged(self, req: Request) -> dict[str, Any]:
        body = gemini_count_to_responses_request(req.body, req.model)
        body["return_tokens"] = False  # only the total is answered here
        return body

    def render(self, gw: Gateway, req: Request, served: Served) -> bytes:
        assert served.reply is not None
        if served.op is Op.GEMINI_COUNT_TOKENS:
            return orjson.dumps(served.reply.body)
        return orjson.dumps({"totalTokens": served.reply.body.get("input_tokens")})

    def encoder(self, gw: Gateway, req: Request, served: Served) -> GeminiStreamEncoder:
        raise AssertionError("token counts are never streamed")  # parse sets stream=False


class GeminiEmbedSurface(_GeminiDialect):
    """``:embedContent`` (one content) and ``:batchEmbedContents`` (several): the embeddings surface's
    request (``Op.EMBEDDINGS``, its checks, estimate and pricing) for any provider, answered in Google's
    shape (``{"embedding": {"values"}}`` / ``{"embeddings": [...]}``)."""

    request_type = Op.EMBEDDINGS.value

    def __init__(self, method: str, integration: str = "genai") -> None:
        super().__init__(integration)
        self.method = method

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        body = parse_body(raw)
        model = check_model_string(str(scope[MODEL_SCOPE_KEY]), "model")
        bridged = gemini_to_embeddings_request(body, self.method, model)
        if "fallbacks" in body:
            bridged["fallbacks"] = body["fallbacks"]
        return embeddings_request(gw, bridged, raw, model, started)

    def call_for(self, gw: Gateway, req: Request, provider: str, model: str) -> Call:
        body = {**req.body, "model": model}
        if gw.config.provider_kind(provider) != "gemini":
            for name in _GEMINI_ONLY_OPTIONS:
                body.pop(name, None)
        return make_call(gw, req, provider, model, body=body, raw=orjson.dumps(body))

    def render(self, gw: Gateway, req: Request, served: Served) -> bytes:
        reply = served.reply
        assert reply is not None
        # An OpenAI-family provider hands its answer over as bytes (Reply.content); gemini's is parsed.
        answer = reply.body if reply.content is None else loads_object(reply.content, served.provider)
        inputs = req.body["input"]
        count = len(inputs) if isinstance(inputs, list) else 1
        return orjson.dumps(embeddings_to_gemini_response(answer, self.method, count, served.provider))

    def encoder(self, gw: Gateway, req: Request, served: Served) -> GeminiStreamEncoder:
        raise AssertionError("embeddings are never streamed")  # embeddings_request sets stream=False


class GeminiStreamEncoder:
    """Gemini SSE: native chunks pass through as bytes; Responses events are translated."""

    def __init__(self, req: Request, served: Served) -> None:
        self.native = served.op is Op.GENERATE_CONTENT
        self.source = served.provider
        self.convert = ResponsesToGeminiStream(model=req.model)

    def encode(self, chunk: Chunk) -> bytes:
        if self.native:
            return frame(None, chunk.data if chunk.data is not None else orjson.dumps(chunk.obj))
        chunks = translate_event(chunk, self.source, self.convert.feed)
        return b"".join(frame(None, orjson.dumps(c)) for c in chunks)

    def error(self, err: BifrostError) -> bytes:
        return frame(None, google_error_body(err))  # Gemini sends a late error as one more event

    def end(self) -> bytes:
        return b""


class GeminiEndpoint:
    """``{p}/v1beta/models/{model}:{method}``: the path names both the model and the operation, so one
    route dispatches to the surface for the method."""

    __slots__ = ("gw", "surfaces")

    def __init__(self, gw: Gateway, integration: str) -> None:
        self.gw = gw
        self.surfaces: dict[str, Surface] = {
            "generateContent": GeminiSurface(False, integration),
            "streamGenerateContent": GeminiSurface(True, integration),
            "countTokens": GeminiCountSurface(integration),
            **{method: GeminiEmbedSurface(method, integration) for method in EMBED_METHODS},
        }

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        model, _, method = str(scope["path_params"]["target"]).rpartition(":")
        surface = self.surfaces.get(method)
        if surface is None or not model:
            err = not_found(f"method {method!r} of models/{model} is not served by this gateway")
            await send_bytes(send, 404, google_error_body(err), JSON_HEADERS)
            return
        scope[MODEL_SCOPE_KEY] = model.removeprefix("models/")
        await handle(self.gw, surface, scope, receive, send)
