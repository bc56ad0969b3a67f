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
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from bifrost_asgi.errors import bad_response, invalid_request

__all__ = ["embeddings_to_gemini", "gemini_to_embeddings", "gemini_texts"]


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
    options: dict[str, Any] = {}
    if isinstance(body.get("dimensions"), int):
        options["outputDimensionality"] = body["dimensions"]
    for ours, theirs in (("task_type", "taskType"), ("title", "title")):
        if isinstance(body.get(ours), str):
            options[theirs] = body[ours]
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
    vectors = []
    for item in found:
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
            raise bad_response(f"provider {provider} returned an embedding that is not a list of numbers")
        vectors.append(values)
    return vectors


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
