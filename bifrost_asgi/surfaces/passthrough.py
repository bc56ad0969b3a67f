"""Bifrost's raw passthrough prefixes as a surface of the one journey: ``/anthropic_passthrough/...``,
``/openai_passthrough/...`` and ``/genai_passthrough/...``.

The prefix is stripped and the provider-native request — method, path, query and body, the client's
bytes — goes to the prefix's provider (the first configured of its kind) with the gateway's key; the
upstream's status, headers and body come back as they are, a stream read by read
(``providers/passthrough.py`` says which headers pass each way). Being a surface, it keeps the journey:
the bounded body, authorization (virtual keys when enforced), the key's provider and model access,
limits and budgets, key choice and retries on transport failures, usage priced when the answer reports
it, one log record (request type ``passthrough`` / ``passthrough_stream``, as Bifrost's), metrics and
spans. It has no fallbacks: a native body is meant for one provider.

Only POST inference operations pass, as in Bifrost; anything else is a 403 before a key is chosen:

    /anthropic_passthrough   /v1/messages, /v1/messages/count_tokens
    /openai_passthrough      /v1/chat/completions, /v1/completions, /v1/responses, /v1/embeddings,
                             /v1/images/generations, /v1/images/edits, /v1/audio/speech,
                             /v1/audio/transcriptions, /v1/audio/translations
    /genai_passthrough       /v1beta/models/{model}:generateContent, :streamGenerateContent,
                             :countTokens, :embedContent, :batchEmbedContents (also under /v1)

The model is the path's (Gemini) or the body's ``model`` (JSON, or a multipart field); the request
streams when the path says so (``:streamGenerateContent``) or the body has ``"stream": true``. Errors
before the upstream answers are Bifrost's JSON; the upstream's own error answers pass as they came.
"""

from __future__ import annotations

import re
from typing import Any

from bifrost_asgi.errors import (
    BifrostError,
    forbidden,
    invalid_request,
    not_configured,
    unsupported_operation,
)
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.multipart import read_form
from bifrost_asgi.pipeline.request import Request, Served
from bifrost_asgi.providers.base import Call, Chunk, Op, RawRoute
from bifrost_asgi.providers.http import HTTPProvider, object_or_none
from bifrost_asgi.providers.passthrough import client_headers, upstream_query
from bifrost_asgi.routing import Target, check_model_string
from bifrost_asgi.sse import frame
from bifrost_asgi.surfaces.base import first_of_kind, make_call
from bifrost_asgi.types import Headers, Scope

__all__ = ["PASSTHROUGH_PREFIXES", "PassthroughSurface"]

_OPENAI = {
    "/v1/chat/completions": Op.CHAT, "/v1/completions": Op.TEXT, "/v1/responses": Op.RESPONSES,
    "/v1/embeddings": Op.EMBEDDINGS, "/v1/images/generations": Op.IMAGE_GENERATION,
    "/v1/images/edits": Op.IMAGE_EDIT, "/v1/audio/speech": Op.SPEECH,
    "/v1/audio/transcriptions": Op.TRANSCRIPTION, "/v1/audio/translations": Op.TRANSLATION,
}  # fmt: skip
_ANTHROPIC = {"/v1/messages": Op.MESSAGES, "/v1/messages/count_tokens": Op.MESSAGES_COUNT_TOKENS}
# Gemini's methods, by the op whose shape their usage is read in (embeddings report usageMetadata too).
_GEMINI = {
    "generateContent": Op.GENERATE_CONTENT, "streamGenerateContent": Op.GENERATE_CONTENT,
    "countTokens": Op.GEMINI_COUNT_TOKENS, "embedContent": Op.GENERATE_CONTENT,
    "batchEmbedContents": Op.GENERATE_CONTENT,
}  # fmt: skip
# A model name as Gemini's paths carry it: no slashes, no dot segments, nothing that could reach the host.
_GEMINI_PATH = re.compile(r"/v1(?:beta)?/models/([A-Za-z0-9][A-Za-z0-9._-]{0,255}):([A-Za-z]+)")
# Each prefix and the provider kind it speaks.
PASSTHROUGH_PREFIXES = {
    "anthropic_passthrough": "anthropic",
    "openai_passthrough": "openai",
    "genai_passthrough": "gemini",
}
_UNMETERED = frozenset({Op.MESSAGES_COUNT_TOKENS, Op.GEMINI_COUNT_TOKENS})  # counting is free, as elsewhere


class PassthroughSurface:
    """One passthrough prefix (``kind``: the provider kind it speaks)."""

    request_type = "passthrough"

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.kind = PASSTHROUGH_PREFIXES[prefix]

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        method = str(scope["method"])
        path = "/" + str(scope["path_params"]["path"])
        op, path_model = self._operation(method, path)
        headers = client_headers(scope["headers"])
        body, fields = _fields(raw, headers.get("content-type", ""))
        model = check_model_string(path_model or _model(fields), "model")
        stream = ":stream" in path or fields.get("stream") in (True, "true")
        request_type = "passthrough_stream" if stream else "passthrough"
        req = Request(op, body, raw, stream, model, request_type, started, metered=op not in _UNMETERED)
        req.forward_headers = headers
        query = upstream_query(scope.get("query_string", b"").decode("latin-1"))
        req.state["route"] = RawRoute(method, path, query)
        return req

    def _operation(self, method: str, path: str) -> tuple[Op, str | None]:
        """The op (the shape the answer's usage is read in) and the path's model, or a 403."""
        op: Op | None = None
        model: str | None = None
        if self.kind == "gemini":
            match = _GEMINI_PATH.fullmatch(path)
            if match is not None:
                model, op = match[1], _GEMINI.get(match[2])
        else:
            op = (_ANTHROPIC if self.kind == "anthropic" else _OPENAI).get(path)
        if op is None or method != "POST":
            raise forbidden(
                f"{method} {path} is not forwarded by /{self.prefix}: only its POST inference operations are"
            )
        return op, model

    def primary(self, gw: Gateway, req: Request) -> Target:
        name = first_of_kind(gw, self.kind)
        if name is None:
            raise not_configured(self.kind)
        return name, req.model  # the model as the client wrote it: a native body is for this provider

    def call_for(self, gw: Gateway, req: Request, provider: str, model: str) -> Call:
        executor = gw.providers[provider]
        if not isinstance(executor, HTTPProvider) or executor.raw_base is None:
            raise unsupported_operation("passthrough", provider)
        call = make_call(gw, req, provider, model)
        call.raw_route = req.state["route"]
        return call

    def render(self, gw: Gateway, req: Request, served: Served) -> bytes:
        assert served.reply is not None and served.reply.content is not None
        return served.reply.content

    def encoder(self, gw: Gateway, req: Request, served: Served) -> RawEncoder:
        return RawEncoder(_is_sse(self.headers(req, served)))

    def headers(self, req: Request, served: Served) -> Headers:
        return served.answer_headers or []  # the upstream's own, content type included

    def error_body(self, err: BifrostError) -> bytes:
        return err.answer[1] if err.answer is not None else err.to_json()


class RawEncoder:
    """The upstream's bytes as they came. A stream cut short ends with an ``error`` event when it is
    SSE (every SDK raises on one), and is aborted otherwise, so no client takes it for a whole answer."""

    def __init__(self, sse: bool) -> None:
        self.sse = sse

    def encode(self, chunk: Chunk) -> bytes:
        return chunk.data or b""

    def error(self, err: BifrostError) -> bytes | None:
        return frame("error", err.to_json()) if self.sse else None

    def end(self) -> bytes:
        return b""


def _is_sse(headers: Headers) -> bool:
    return any(name == b"content-type" and value.startswith(b"text/event-stream") for name, value in headers)


def _fields(raw: bytes, content_type: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON body (for admission's estimates and content logs) and the fields the gateway reads from
    it: a JSON object's, or a multipart form's text fields. Anything else has none."""
    if content_type.startswith("multipart/"):
        form = read_form(raw, content_type)
        return {}, {name: values[0] for name, values in form.texts.items()}
    body = object_or_none(raw) if raw else None
    return (body, body) if body is not None else ({}, {})


def _model(fields: dict[str, Any]) -> str:
    model = fields.get("model")
    if not isinstance(model, str) or not model:
        raise invalid_request("model is required", param="model")
    return model
