"""Exact-shape checks against the openai SDK's types: every required field present, no field invented.

The SDK's models accept unknown fields (they are forward compatible), so validating alone would let a
translator invent fields OpenAI never sends (``name`` on ``response.function_call_arguments.done`` once
did). These helpers validate and then walk the parsed model, reporting every field that landed in
``model_extra`` at any depth, except Bifrost's documented extensions.
"""

from __future__ import annotations

import typing
from typing import Any

import orjson
from openai import BaseModel
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

Obj = dict[str, Any]

# Bifrost's own usage fields (pricing reads them to charge cache reads and writes at their own rates),
# documented in docs/behaviour.md, and fields OpenAI sends beyond its SDK's types; nothing else.
BIFROST_EXTENSIONS = frozenset(
    {
        "input_tokens_details.cached_read_tokens",
        "input_tokens_details.cached_write_tokens",
        "prompt_tokens_details.cached_read_tokens",
        "prompt_tokens_details.cached_write_tokens",
        "prompt_tokens_details.cache_write_tokens",
        # Chat answers carry reasoning as OpenRouter/Bifrost do: text plus replayable details.
        "message.reasoning",
        "message.reasoning_details",
        "delta.reasoning",
        "delta.reasoning_details",
        # OpenAI's own, which its SDK does not declare: a searched chat answer streams its citations
        # in one delta (openai/openai-java#297, openai/openai-agents-python#4252).
        "delta.annotations",
    }
)


def _event_models() -> dict[str, type[BaseModel]]:
    members = typing.get_args(typing.get_args(ResponseStreamEvent)[0])
    return {typing.get_args(model.model_fields["type"].annotation)[0]: model for model in members}


EVENT_MODELS = _event_models()


def invented(model: Any, path: str = "") -> list[str]:
    """Dotted paths of every field in ``model`` (recursively) that its SDK type does not declare."""
    if isinstance(model, list):
        return [p for value in model for p in invented(value, path)]
    if not isinstance(model, BaseModel):
        return []
    found = [f"{path}{key}" for key in model.model_extra or {}]
    for name in type(model).model_fields:
        found += invented(getattr(model, name), f"{path}{name}.")
    return [p for p in found if _tail(p) not in BIFROST_EXTENSIONS]


def _tail(path: str) -> str:
    return ".".join(path.split(".")[-2:])


def _exact(model: type[BaseModel], body: Obj) -> BaseModel:
    # Round-trip through JSON first: that is what the client parses.
    parsed = model.model_validate(orjson.loads(orjson.dumps(body)))
    extra = invented(parsed)
    assert not extra, f"{model.__name__} fields OpenAI never sends: {extra}"
    return parsed


def check_events(events: list[Obj]) -> None:
    """Numbered from 0, each exactly one of the SDK's Responses stream events."""
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    for event in events:
        _exact(EVENT_MODELS[event["type"]], event)


def check_response(body: Obj) -> Response:
    parsed = _exact(Response, body)
    assert isinstance(parsed, Response)
    return parsed


def check_chat(body: Obj) -> None:
    _exact(ChatCompletion, body)


def check_chunks(chunks: list[Obj]) -> None:
    for chunk in chunks:
        _exact(ChatCompletionChunk, chunk)
