"""OpenAI's media routes as surfaces of the one journey: ``{p}/v1/embeddings``, ``/images/generations``
and ``/images/edits`` (audio is in `surfaces.audio`).

They are the OpenAI dialect (`OpenAISurface`: model resolution, fallbacks, ``extra_fields``, errors)
with their own validation and the usage their request implies (`Request.estimate`: what admission
reserves, and what is charged when the answer reports no usage). Large answers are passed on as the
provider's bytes (`Reply.content`) with ``usage.cost`` and ``extra_fields`` spliced in, never parsed
whole (`bifrost_asgi.jsonbytes`).
"""

from __future__ import annotations

from typing import Any, TypeGuard

import orjson

from bifrost_asgi.errors import invalid_request
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.jsonbytes import object_span, splice
from bifrost_asgi.multipart import Form, read_form
from bifrost_asgi.pipeline.accounting import ZERO_COST
from bifrost_asgi.pipeline.request import Request, Served, parse_body, require_model
from bifrost_asgi.pricing import Media, Usage
from bifrost_asgi.providers.base import FORM_GATEWAY_FIELDS, Call, Op
from bifrost_asgi.surfaces.base import json_request, make_call
from bifrost_asgi.surfaces.openai import OpenAISurface
from bifrost_asgi.types import Scope

__all__ = [
    "MAX_EMBEDDING_INPUTS",
    "EmbeddingsSurface",
    "ImageEditSurface",
    "ImageGenerationSurface",
    "MediaSurface",
    "check_embedding_input",
    "check_embedding_options",
    "embeddings_request",
    "form_of",
    "form_request",
    "image_estimate",
    "read_request_form",
    "required_text",
]

# OpenAI's limit on the inputs of one embeddings request ("any array must be 2048 dimensions or less").
MAX_EMBEDDING_INPUTS = 2048
_ENCODINGS = ("float", "base64")
_MAX_IMAGES = 10


class MediaSurface(OpenAISurface):
    """The OpenAI dialect for an answer the provider may hand over as bytes (`Reply.content`)."""

    def render(self, gw: Gateway, req: Request, served: Served) -> bytes:
        reply = served.reply
        assert reply is not None
        if reply.content is None:
            return super().render(gw, req, served)
        if not self.is_json(req):
            return reply.content  # a transcript as text, SRT or VTT: the provider's bytes as they are
        ef = self.answer_fields(gw, req, served)
        usage = object_span(reply.content, "usage") if isinstance(reply.body.get("usage"), dict) else None
        cost = orjson.dumps(served.cost if served.cost is not None else ZERO_COST)
        inner = {"cost": cost} if usage is not None else {}
        return splice(reply.content, usage, inner, {"extra_fields": orjson.dumps(ef)})

    def answer_fields(self, gw: Gateway, req: Request, served: Served) -> dict[str, Any]:
        ef = super().answer_fields(gw, req, served)
        assert served.reply is not None
        ef.update(served.reply.extra_fields or {})  # e.g. that the usage is the gateway's estimate
        return ef

    def is_json(self, req: Request) -> bool:
        """Whether the answer is a JSON object (every media answer but a transcript asked for as text)."""
        return True

    def call_for(self, gw: Gateway, req: Request, provider: str, model: str) -> Call:
        form = req.state.get("form")
        if not isinstance(form, Form):
            return make_call(gw, req, provider, model)
        # The upload goes on as the client's bytes, re-encoded with this target's model by the provider.
        headers = {**req.forward_headers, "content-type": form.content_type}
        call = make_call(gw, req, provider, model, headers=headers)
        call.form = form
        return call


# -- embeddings ---------------------------------------------------------------------------------------


class EmbeddingsSurface(MediaSurface):
    """``POST {p}/v1/embeddings``: a string, a list of strings, a token array or a list of token arrays;
    ``dimensions``; ``encoding_format`` "float" or "base64" (passed on untouched)."""

    def __init__(self, integration: str | None) -> None:
        super().__init__(Op.EMBEDDINGS, integration)

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        body = parse_body(raw)
        return embeddings_request(gw, body, raw, require_model(body), started)


def embeddings_request(gw: Gateway, body: dict[str, Any], raw: bytes, model: str, started: float) -> Request:
    """An embeddings request from an OpenAI-shaped ``body`` (the client's, or a dialect's translation of
    its ``raw`` bytes): checked, with its fallbacks and the usage its size implies."""
    check_embedding_input(body.get("input"))
    check_embedding_options(body)
    req = json_request(gw, Op.EMBEDDINGS, body, raw, False, model, Op.EMBEDDINGS.value, started)
    req.estimate = Usage(input_tokens=max(1, len(raw) // 4))
    return req


def check_embedding_input(value: object) -> None:
    """Bifrost's and OpenAI's input rules, each a 400 naming what is wrong."""
    if value is None:
        raise invalid_request("input is required for embeddings", param="input")
    if isinstance(value, str):
        if not value:
            raise invalid_request("input must not be an empty string", param="input")
        return
    if not isinstance(value, list):
        raise invalid_request(
            "input must be a string, an array of strings, an array of tokens or an array of token arrays",
            param="input",
        )
    if not value:
        raise invalid_request("input must not be an empty array", param="input")
    if len(value) > MAX_EMBEDDING_INPUTS:
        raise invalid_request(
            f"input has {len(value)} items; at most {MAX_EMBEDDING_INPUTS} are allowed", param="input"
        )
    if all(_is_token(v) for v in value):
        return
    for i, item in enumerate(value):
        _check_item(item, f"input[{i}]")


def _check_item(item: object, where: str) -> None:
    if isinstance(item, str):
        if not item:
            raise invalid_request(f"{where} must not be an empty string", param="input")
    elif isinstance(item, list):
        if not item or not all(_is_token(t) for t in item):
            raise invalid_request(f"{where} must be a non-empty array of token ids", param="input")
    else:
        raise invalid_request(f"{where} must be a string or an array of token ids", param="input")


def _is_token(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_embedding_options(body: dict[str, Any]) -> None:
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in _ENCODINGS:
        raise invalid_request('encoding_format must be "float" or "base64"', param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and not (_is_token(dimensions) and dimensions > 0):
        raise invalid_request("dimensions must be a positive integer", param="dimensions")


# -- images -------------------------------------------------------------------------------------------


class ImageGenerationSurface(MediaSurface):
    """``POST {p}/v1/images/generations``: ``b64_json`` or ``url`` answers, priced by their usage
    tokens when reported, else per image of the asked size and quality."""

    def __init__(self, integration: str | None) -> None:
        super().__init__(Op.IMAGE_GENERATION, integration)

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        body = parse_body(raw)
        model = require_model(body)
        prompt = required_text(body, "prompt", "prompt cannot be empty")
        _refuse_stream(body.get("stream"))
        req = json_request(gw, Op.IMAGE_GENERATION, body, raw, False, model, self.request_type, started)
        req.estimate = image_estimate(prompt, body.get("n"), body.get("size"), body.get("quality"))
        return req


class ImageEditSurface(MediaSurface):
    """``POST {p}/v1/images/edits`` (multipart): ``image`` or ``image[]`` files, an optional ``mask``."""

    def __init__(self, integration: str | None) -> None:
        super().__init__(Op.IMAGE_EDIT, integration)

    def parse(self, gw: Gateway, raw: bytes, scope: Scope, started: float) -> Request:
        form = read_request_form(raw, scope)
        req = form_request(gw, form, Op.IMAGE_EDIT, self.request_type, started)
        if not form.files("image", "image[]"):
            raise invalid_request("at least one image is required", param="image")
        _refuse_stream(form.field("stream"))
        prompt = form.field("prompt") or ""
        n = _int_field(form, "n")
        req.estimate = image_estimate(prompt, n, form.field("size"), form.field("quality"))
        return req


def required_text(body: dict[str, Any], name: str, message: str) -> str:
    """A required non-empty string field (400 with Bifrost's ``message`` otherwise)."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise invalid_request(message, param=name)
    return value


def image_estimate(prompt: str, n: object, size: object, quality: object) -> Usage:
    """What an image request implies: its prompt's tokens (about 4 bytes each) and ``n`` images."""
    if n is not None and not (_is_token(n) and 1 <= n <= _MAX_IMAGES):
        raise invalid_request(f"n must be an integer from 1 to {_MAX_IMAGES}", param="n")
    count = n if isinstance(n, int) else 1
    media = Media(
        "image",
        images=count,
        size=size if isinstance(size, str) else "",
        quality=quality if isinstance(quality, str) else "",
    )
    return Usage(input_tokens=len(prompt.encode()) // 4, media=media)


def _refuse_stream(flag: object) -> None:
    if flag is True or flag == "true":
        raise invalid_request("streamed image generation is not supported by this gateway", param="stream")


# -- multipart requests -------------------------------------------------------------------------------


def read_request_form(raw: bytes, scope: Scope) -> Form:
    """The request's multipart form (400 when the body is not one)."""
    content_type = ""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
    return read_form(raw, content_type)


def form_request(gw: Gateway, form: Form, op: Op, request_type: str, started: float) -> Request:
    """A request whose body is a form: ``body`` holds its text fields, ``state["form"]`` the form; the
    model is checked as in a JSON body."""
    body: dict[str, Any] = {name: values[0] for name, values in form.texts.items()}
    model = require_model(body)
    fallbacks = [v for name in ("fallbacks", "fallbacks[]") for v in form.values(name)]
    for name in FORM_GATEWAY_FIELDS:
        body.pop(name, None)
    if fallbacks:
        body["fallbacks"] = fallbacks
    req = Request(op, body, form.raw, False, model, request_type, started)
    req.fallbacks = gw.resolver.fallbacks(fallbacks or None)
    req.state["form"] = form
    return req


def form_of(req: Request) -> Form:
    form = req.state.get("form")
    assert isinstance(form, Form)
    return form


def _int_field(form: Form, name: str) -> int | None:
    value = form.field(name)
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise invalid_request(f"{name} must be an integer", param=name)
    return int(value)
