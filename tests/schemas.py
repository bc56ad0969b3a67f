"""The seed pages' schemas, as JSON Schema validators for our bodies.

Seed 001 carries a real OpenAPI excerpt (CountTokensResponse, BifrostError, extra fields); seeds 002 and
004 carry example bodies, from which a type schema is derived: every field present must have the
example's type (or be null), and fields the examples show as one shape where the API allows several
(message ``content``, ``instructions``, ...) are left free.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SEEDS = Path(__file__).parent / "seeds"

# Paths where the example shows one of several allowed shapes.
_FREE = {
    "responses": {"output[].content", "output[].output", "output[].action", "instructions", "tool_choice",
                  "conversation", "prompt", "output[].summary", "tools[].parameters", "text.format.schema",
                  "reasoning.effort", "reasoning.summary", "incomplete_details"},
    "completions": {"choices[].log_probs", "choices[].message", "choices[].delta"},
}  # fmt: skip


def _seed(prefix: str) -> str:
    return next(SEEDS.glob(prefix + "_*.txt")).read_text()


# Custom provider names are valid provider values in Bifrost too (custom providers are registered by
# name at run time); the seed's enum lists only the standard ones. The tests configure these.
CUSTOM_PROVIDERS = ["mock", "shorttimeout", "rotator", "allbad", "limited", "refused"]


@cache
def _openapi() -> dict[str, Any]:
    text = _seed("001")
    block = text.split("````yaml", 1)[1].split("\n", 1)[1].split("````", 1)[0]
    doc: dict[str, Any] = yaml.safe_load(block)
    doc["components"]["schemas"]["ModelProvider"]["enum"] += CUSTOM_PROVIDERS
    return doc


def openapi_validator(component: str) -> Draft202012Validator:
    doc = _openapi()
    schema = {"components": doc["components"], "$ref": f"#/components/schemas/{component}"}
    return Draft202012Validator(schema)


def _example(prefix: str) -> Any:
    text = _seed(prefix)
    start = text.index("{")
    return json.JSONDecoder().raw_decode(text[start:])[0]


def _schema_of(example: Any, path: str, free: set[str]) -> dict[str, Any]:
    if path in free:
        return {}
    if isinstance(example, dict):
        props = {k: _schema_of(v, f"{path}.{k}" if path else k, free) for k, v in example.items()}
        return {"type": ["object", "null"], "properties": props}
    if isinstance(example, list):
        items = _schema_of(example[0], path + "[]", free) if example else {}
        return {"type": ["array", "null"], "items": items}
    if isinstance(example, bool):
        return {"type": ["boolean", "null"]}
    if isinstance(example, int | float):
        return {"type": ["number", "null"]}
    return {"type": ["string", "null"]}


def example_validator(prefix: str, kind: str) -> Draft202012Validator:
    return Draft202012Validator(_schema_of(_example(prefix), "", _FREE.get(kind, set())))


def assert_valid(validator: Draft202012Validator, body: Any) -> None:
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])


def responses_validator() -> Draft202012Validator:
    return example_validator("002", "responses")


def completions_validator() -> Draft202012Validator:
    return example_validator("004", "completions")


def bifrost_error_validator() -> Draft202012Validator:
    return openapi_validator("BifrostError")


def count_tokens_validator() -> Draft202012Validator:
    return openapi_validator("CountTokensResponse")
