"""Token counting behind the provider interface, so a count runs through the same journey as any other
request: authorization, the key's access rules, fallbacks and a usage log record.

For each configured provider the gateway holds one counter (``Gateway.executor(provider,
Op.COUNT_TOKENS)``):

- `LocalCounter` counts with tiktoken in-process: OpenAI models exactly (on openai/azure), every other
  model as a flagged ``o200k_base`` estimate.
- `UpstreamCounter` asks the provider's own count API (anthropic, gemini; openai when
  ``count_tokens.openai_mode`` is "provider") and, if the deployment allows it, falls back to a flagged
  local estimate when that API cannot be reached.

Both answer ``{"input_tokens", "input_tokens_details", "tokens"?, "token_strings"?}``; what the count is
(estimate or not, which tokenizer) travels in ``Reply.extra_fields``.
"""

from __future__ import annotations

from typing import Any

from bifrost_asgi.config import CountTokensConfig, KeyConfig
from bifrost_asgi.errors import BifrostError, bad_response
from bifrost_asgi.providers.base import Call, ChunkStream, Provider, Reply

__all__ = ["LocalCounter", "UpstreamCounter"]

# Upstream failures after which a deployment may choose a flagged local estimate instead.
_UNREACHABLE = frozenset({"provider_connection_failed", "request_timed_out"})


class LocalCounter:
    """Counts a Responses-shaped body (or the seed-003 ``messages`` form) locally; never streams.

    ``exact`` says whether this provider serves OpenAI's models with OpenAI's tokenizers, so that an
    exact tiktoken count is the provider's count too.
    """

    uses_keys = False

    def __init__(self, name: str, config: CountTokensConfig, *, exact: bool) -> None:
        self.name = name
        self._config = config
        self._exact = exact

    async def send(self, call: Call, key: KeyConfig | None) -> Reply:
        # Imported on first use: tiktoken is heavy, and most processes never count.
        from bifrost_asgi.tokens.count import count_request_tokens_async

        return_tokens = bool(call.body.get("return_tokens", self._config.return_tokens))
        c = await count_request_tokens_async(call.body, call.model, return_tokens=return_tokens)
        body: dict[str, Any] = {
            "input_tokens": c.input_tokens,
            "input_tokens_details": {
                "text_tokens": c.details_text_tokens,
                "image_tokens": c.image_tokens,
                "audio_tokens": c.audio_tokens,
                "cached_read_tokens": 0,
                "cached_write_tokens": 0,
            },
        }
        # Absent rather than null: the seed schema types `tokens` as an array.
        if c.tokens is not None:
            body["tokens"] = c.tokens
        if c.token_strings is not None:
            body["token_strings"] = c.token_strings
        # Exact only with the model's own tokenizer, on a provider that uses it, with nothing estimated.
        info: dict[str, Any] = {"is_estimate": not (c.exact and self._exact), "tokenizer": c.encoding}
        if c.estimated:
            info["estimated_parts"] = list(c.estimated)
        return Reply(body, extra_fields=info)

    async def open_stream(self, call: Call, key: KeyConfig | None) -> ChunkStream:
        raise AssertionError("token counts are never streamed")  # surfaces never ask

    def models(self) -> list[str]:
        return []


class UpstreamCounter:
    """A provider's own count API, its answer normalised; optionally a local estimate when unreachable."""

    def __init__(self, provider: Provider, fallback: LocalCounter | None) -> None:
        self.name = provider.name
        self.uses_keys = provider.uses_keys
        self._provider = provider
        self._fallback = fallback

    async def send(self, call: Call, key: KeyConfig | None) -> Reply:
        try:
            reply = await self._provider.send(call, key)
        except BifrostError as err:
            if self._fallback is not None and err.error_type in _UNREACHABLE:
                return await self._fallback.send(call, key)
            raise
        tokens = reply.body.get("input_tokens")
        if not isinstance(tokens, int):
            raise bad_response("upstream count_tokens answer has no input_tokens")
        body = {"input_tokens": tokens, "input_tokens_details": reply.body.get("input_tokens_details") or {}}
        return Reply(body, reply.headers, reply.raw_request, reply.raw_response, {"is_estimate": False})

    async def open_stream(self, call: Call, key: KeyConfig | None) -> ChunkStream:
        raise AssertionError("token counts are never streamed")

    def models(self) -> list[str]:
        return self._provider.models()
