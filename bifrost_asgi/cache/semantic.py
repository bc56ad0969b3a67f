"""Semantic mode's embedding of a request, through the gateway's own embeddings executor: the configured
provider's keys, transport and error mapping, as any embeddings request to it would use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from bifrost_asgi.cache.config import CacheConfig
from bifrost_asgi.errors import bad_response
from bifrost_asgi.providers.base import Call, Op

if TYPE_CHECKING:  # the gateway owns the cache
    from bifrost_asgi.gateway import Gateway

__all__ = ["embed"]


async def embed(gw: Gateway, config: CacheConfig, text: str) -> tuple[list[float], int]:
    """The text's embedding and the input tokens it took; a BifrostError when the provider fails or
    answers with something that is not an embedding of the configured dimension."""
    assert config.provider is not None and config.embedding_model is not None  # semantic mode only
    name, model = config.provider, config.embedding_model
    body = {"model": model, "input": text, "encoding_format": "float"}
    net = gw.config.providers[name].network_config
    call = Call(
        Op.EMBEDDINGS, body, orjson.dumps(body), model, stream=False, passthrough=True,
        timeout=net.default_request_timeout_in_seconds, max_answer_bytes=gw.max_answer,
        max_event_bytes=gw.max_event,
    )  # fmt: skip
    provider = gw.executor(name, Op.EMBEDDINGS)
    keys = [k for k in gw.config.providers[name].keys if k.serves(model)] if provider.uses_keys else []
    reply = await provider.send(call, keys[0] if keys else None)
    answer = orjson.loads(reply.content) if reply.content is not None else reply.body
    return _vector(answer, config.dimension, name), _tokens(answer)


def _vector(answer: Any, dimension: int, provider: str) -> list[float]:
    try:
        vector = answer["data"][0]["embedding"]
        if len(vector) == dimension and all(isinstance(v, int | float) for v in vector):
            return [float(v) for v in vector]
    except (KeyError, IndexError, TypeError):
        pass
    raise bad_response(f"provider {provider} did not answer with an embedding of {dimension} dimensions")


def _tokens(answer: Any) -> int:
    usage = answer.get("usage") if isinstance(answer, dict) else None
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return tokens if isinstance(tokens, int) else 0
