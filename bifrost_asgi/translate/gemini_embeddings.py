"""OpenAI embeddings requests to Gemini's ``embedContent`` / ``batchEmbedContents`` and the answers back.

- One string goes to ``embedContent`` (``{"content": {"parts": [{"text"}]}}``), a list of strings to
  ``batchEmbedContents`` (one request per string, in order). Token arrays are OpenAI's own tokenizer's
  ids, which Gemini cannot read: a 400.
- ``dimensions`` becomes ``outputDimensionality``; Bifrost's ``task_type`` and ``title`` become
  ``taskType`` and ``title``.
- The answer is OpenAI's ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
  "model", "usage"}``, each vector a list of floats or, for ``encoding_format: "base64"`` (the openai
  SDK's default), base64 of little-endian float32 as OpenAI sends it.
- Usage: Gemini's ``usageMetadata.promptTokenCount`` or per-embedding ``statistics.tokenCount`` when it
  reports them; otherwise an estimate (4 bytes of text per token), flagged as one.

The other direction serves Google's own ``:embedContent`` / ``:batchEmbedContents`` on ``/genai`` for any
provider (`gemini_to_embeddings_request`, `embeddings_to_gemini_response`), with the same option names:

- Each request's ``content`` must be text parts; the parts of one content are joined with a newline
  (Gemini embeds a content's parts as one text). ``embedContent`` becomes a string ``input``,
  ``batchEmbedContents`` a list, answered in order. A request naming another model than the path's is a
  400, as is a batch whose requests do not share their options (OpenAI's body has one set).
- The answer is ``{"embedding": {"values"}}`` or ``{"embeddings": [{"values"}]}``, with the reported usage
  as ``usageMetadata.promptTokenCount``.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from bifrost_asgi.errors import bad_response, invalid_request

__all__ = [
    "EMBED_METHODS",
    "embeddings_to_gemini",
    "embeddings_to_gemini_response",
    "gemini_texts",
    "gemini_to_embeddings",
    "gemini_to_embeddings_request",
]

# Gemini's two embedding methods: one content, or a batch of them.
EMBED_METHODS = ("embedContent", "batchEmbedContents")
# The options both shapes carry: Bifrost's (OpenAI-side) name, Gemini's, and the type each must have.
_OPTIONS: tuple[tuple[str, str, type], ...] = (
    ("dimensions", "outputDimensionality", int),
    ("task_type", "taskType", str),
    ("title", "title", str),
)


def gemini_texts(body: dict[str, Any]) -> list[str]:
    """The texts to embed (the surface has checked the input's shape)."""
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise invalid_request("gemini embeddings take text input, not token arrays", param="input")
    return texts


def embeddings_to_gemini(body: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
    """The Gemini method (``embedContent`` or ``batchEmbedContents``) and its request body."""
    texts = gemini_texts(body)
    options = {theirs: body[ours] for ours, theirs, kind in _OPTIONS if isinstance(body.get(ours), kind)}
    name = "models/" + model.removeprefix("models/")
    requests = [{"model": name, "content": {"parts": [{"text": t}]}, **options} for t in texts]
    if isinstance(body.get("input"), str):
        single = dict(requests[0])
        del single["model"]
        return "embedContent", single
    return "batchEmbedContents", {"requests": requests}


def gemini_to_embeddings(
    upstream: dict[str, Any], body: dict[str, Any], model: str, provider: str
) -> tuple[dict[str, Any], bool]:
    """OpenAI's embeddings answer, and whether its usage is the gateway's estimate."""
    vectors = _vectors(upstream, provider)
    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": i, "embedding": _pack(values) if as_base64 else values}
        for i, values in enumerate(vectors)
    ]
    tokens = _reported_tokens(upstream)
    estimated = tokens is None
    if tokens is None:
        tokens = sum(max(1, len(t.encode()) // 4) for t in gemini_texts(body))
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}, estimated


def _vectors(upstream: dict[str, Any], provider: str) -> list[list[float]]:
    found = upstream.get("embeddings")
    if found is None and isinstance(upstream.get("embedding"), dict):
        found = [upstream["embedding"]]
    if not isinstance(found, list):
        raise bad_response(f"provider {provider} returned an embeddings answer without embeddings")
    return [_floats(item.get("values") if isinstance(item, dict) else None, provider) for item in found]


def _reported_tokens(upstream: dict[str, Any]) -> int | None:
    metadata = upstream.get("usageMetadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("promptTokenCount"), int):
        return int(metadata["promptTokenCount"])
    items = upstream.get("embeddings") or [upstream.get("embedding")]
    counts = [
        item["statistics"]["tokenCount"]
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("statistics"), dict)
        and isinstance(item["statistics"].get("tokenCount"), int | float)
    ]
    return int(sum(counts)) if counts else None


def _pack(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")


# -- Google's requests to OpenAI's, and the answers back ---------------------------------------------------


def gemini_to_embeddings_request(body: dict[str, Any], method: str, model: str) -> dict[str, Any]:
    """An OpenAI embeddings body (``encoding_format`` float) for Google's ``method`` request on ``model``;
    a 400 naming the field for anything that cannot be put into it."""
    if method == "embedContent":
        requests: Any = [body]
    else:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests or not all(isinstance(r, dict) for r in requests):
            raise invalid_request(
                "requests must be a non-empty array of embedContent requests", param="requests"
            )
    texts = [_request_text(r, model, f"requests[{i}]") for i, r in enumerate(requests)]
    options = [_request_options(r) for r in requests]
    if any(o != options[0] for o in options):
        raise invalid_request(
            "every request of a batch must have the same taskType, title and outputDimensionality",
            param="requests",
        )
    inputs: str | list[str] = texts[0] if method == "embedContent" else texts
    return {"model": model, "input": inputs, "encoding_format": "float", **options[0]}


def _request_text(request: dict[str, Any], model: str, where: str) -> str:
    named = request.get("model")
    if named is not None and str(named).removeprefix("models/") != model.removeprefix("models/"):
        raise invalid_request(
            f"{where}.model {named!r} is not the model of the path ({model})", param="model"
        )
    content = request.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise invalid_request(f"{where}.content must have parts", param="content")
    texts = [part.get("text") if isinstance(part, dict) else None for part in parts]
    if not all(isinstance(t, str) for t in texts):
        raise invalid_request(f"{where}.content: only text parts can be embedded", param="content")
    return "\n".join(texts)  # type: ignore[arg-type]  # all str, checked above


def _request_options(request: dict[str, Any]) -> dict[str, Any]:
    """A request's options under Bifrost's names (Vertex nests them in ``embedContentConfig``); a wrong
    type is left for the embeddings surface's own checks to refuse."""
    nested = request.get("embedContentConfig")
    source = {**(nested if isinstance(nested, dict) else {}), **request}
    return {ours: source[theirs] for ours, theirs, _ in _OPTIONS if source.get(theirs) is not None}


def embeddings_to_gemini_response(
    answer: dict[str, Any], method: str, inputs: int, provider: str
) -> dict[str, Any]:
    """OpenAI's embeddings answer as Google's ``method`` answer, vectors in input order; an answer without
    one vector per input is the upstream's fault (a 502), never a short success."""
    data = answer.get("data")
    if not isinstance(data, list) or len(data) != inputs or not all(isinstance(d, dict) for d in data):
        raise bad_response(f"provider {provider} returned an embeddings answer without one vector per input")
    ordered = sorted(data, key=lambda d: d.get("index") if isinstance(d.get("index"), int) else 0)
    vectors = [{"values": _floats(d.get("embedding"), provider)} for d in ordered]
    result: dict[str, Any] = (
        {"embedding": vectors[0]} if method == "embedContent" else {"embeddings": vectors}
    )
    usage = answer.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if isinstance(tokens, int):
        result["usageMetadata"] = {"promptTokenCount": tokens, "totalTokenCount": tokens}
    return result


def _floats(values: Any, provider: str) -> list[float]:
    if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
        raise bad_response(f"provider {provider} returned an embedding that is not a list of numbers")
    return values
