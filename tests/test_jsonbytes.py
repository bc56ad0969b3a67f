"""Reading ``usage`` out of a large JSON answer and splicing fields in, without parsing it whole."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from bifrost_asgi.jsonbytes import object_span, splice

USAGE: dict[str, Any] = {"prompt_tokens": 8, "nested": {"a": "}"}, "total_tokens": 8}
BODY: dict[str, Any] = {
    "object": "list",
    "data": [{"index": 0, "embedding": 'AAAA"usage": {}', "note": 'say "usage": {"x": 1}'}],
    "usage": USAGE,
}


@pytest.mark.parametrize("indent", [None, 2])
def test_the_last_usage_object_is_found_whatever_the_layout(indent: int | None) -> None:
    content = json.dumps(BODY, indent=indent).encode()
    span = object_span(content, "usage")
    assert span is not None
    assert orjson.loads(content[span[0] : span[1]]) == BODY["usage"]


def test_no_usage_or_a_null_one_is_none() -> None:
    assert object_span(b'{"data": [], "text": "\\"usage\\": {}"}', "usage") is None  # escaped: not a key
    assert object_span(b'{"usage": null}', "usage") is None
    assert object_span(b'{"usage": {"a": "unterminated', "usage") is None


def test_splice_adds_fields_inside_usage_and_at_the_end() -> None:
    content = json.dumps(BODY, indent=2).encode() + b"\n"
    usage = object_span(content, "usage")
    spliced = splice(content, usage, {"cost": b'{"total_cost":1}'}, {"extra_fields": b"{}"})
    assert orjson.loads(spliced) == {
        **BODY, "usage": {**USAGE, "cost": {"total_cost": 1}}, "extra_fields": {}
    }  # fmt: skip


def test_splice_into_empty_objects() -> None:
    assert orjson.loads(splice(b'{"usage": {}}', (10, 12), {"cost": b"0"}, {"e": b"1"})) == {
        "usage": {"cost": 0}, "e": 1
    }  # fmt: skip
    assert orjson.loads(splice(b"{ }", None, {}, {"e": b"1"})) == {"e": 1}
    with pytest.raises(ValueError):
        splice(b"[1]", None, {}, {"e": b"1"})
