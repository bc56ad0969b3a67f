"""Streams: kept when they complete, replayed event by event with the original framing and fresh
chunk indexes; a stream that failed is never kept. Embeddings and Anthropic Messages are cached too."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.cache.conftest import KEY_A, Cached, cached_config
from tests.media_upstream import MediaUpstream, running
from tests.upstream import ANSWER, Upstream

CACHE = {"x-bf-cache-key": "streams"}
QUESTION: Any = [{"role": "user", "content": "Say hello"}]
Event = tuple[str | None, Any]


@pytest.fixture
def gateway(cached_gateway: Any, upstream_url: str) -> Cached:
    started: Cached = cached_gateway(cached_config(upstream_url))
    return started


def sse(gateway: Cached, path: str, body: dict[str, Any]) -> tuple[bytes, httpx.Headers]:
    """The raw event stream and the headers of one streamed request."""
    headers = {"x-bf-vk": KEY_A, **CACHE}
    with httpx.stream("POST", gateway.url + path, json=body, headers=headers, timeout=30) as r:
        assert r.status_code == 200, r.read()
        return r.read(), r.headers


def events(raw: bytes) -> list[Event]:
    """Each event's name and data, parsed."""
    out: list[Event] = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        lines = block.split("\n")
        name = next((line[7:] for line in lines if line.startswith("event: ")), None)
        data = next(line[6:] for line in lines if line.startswith("data: "))
        out.append((name, data if data == "[DONE]" else orjson.loads(data)))
    return out


def without_gateway_fields(parsed: list[Event]) -> list[Event]:
    """The events as the provider made them: extra_fields and usage.cost (the gateway's) taken out."""
    out = []
    for name, data in parsed:
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k != "extra_fields"}
            for holder in (data, data.get("response")):
                if isinstance(holder, dict) and isinstance(holder.get("usage"), dict):
                    holder["usage"] = {k: v for k, v in holder["usage"].items() if k != "cost"}
        out.append((name, data))
    return out


def framing(raw: bytes) -> list[list[str]]:
    """Each event's line kinds (``event``, ``data``), in order."""
    blocks = [block for block in raw.decode().split("\n\n") if block]
    return [[line.split(":", 1)[0] for line in block.split("\n")] for block in blocks]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "openai/gpt-4o-mini", "messages": QUESTION, "stream": True}),
        ("/v1/responses", {"model": "openai/gpt-4o-mini", "input": "Say hello", "stream": True}),
        ("/v1/completions", {"model": "openai/gpt-4o-mini", "prompt": "Say hello", "stream": True}),
    ],
)
def test_a_stream_is_replayed_as_it_was_sent(
    gateway: Cached, upstream: Upstream, path: str, body: dict[str, Any]
) -> None:
    first, first_headers = sse(gateway, path, body)
    second, second_headers = sse(gateway, path, body)

    assert len(upstream.state.requests) == 1
    assert (first_headers["x-bifrost-cache-hit"], second_headers["x-bifrost-cache-hit"]) == ("false", "true")
    assert framing(second) == framing(first)
    original, replayed = events(first), events(second)
    assert without_gateway_fields(replayed) == without_gateway_fields(original)
    extras = [data["extra_fields"] for _, data in replayed if isinstance(data, dict)]
    assert [ef["chunk_index"] for ef in extras] == list(range(len(extras)))
    for ef in extras:  # every replayed event says where it came from
        assert ef["cache_debug"]["cache_hit"] is True and ef["cache_debug"]["hit_type"] == "direct"
    for _, data in original:
        assert not isinstance(data, dict) or data["extra_fields"]["cache_debug"]["cache_hit"] is False


def test_the_sdk_reads_a_replayed_stream(gateway: Cached, upstream: Upstream) -> None:
    c = gateway.openai(**CACHE)
    texts = []
    for _ in range(2):
        stream = c.chat.completions.create(model="openai/gpt-4o-mini", messages=QUESTION, stream=True)
        texts.append("".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices))
    assert texts == [ANSWER, ANSWER]
    assert len(upstream.state.requests) == 1


def test_a_failed_stream_is_not_kept(gateway: Cached, upstream: Upstream) -> None:
    body = {"model": "openai/broken-stream", "messages": QUESTION, "stream": True}
    for _ in range(2):
        raw, headers = sse(gateway, "/v1/chat/completions", body)
        assert headers["x-bifrost-cache-hit"] == "false"
        assert b"[DONE]" not in raw  # it ended in an error event
    assert len(upstream.state.requests) == 2


def test_a_stream_and_a_json_answer_are_separate_entries(gateway: Cached, upstream: Upstream) -> None:
    body = {"model": "openai/gpt-4o-mini", "messages": QUESTION}
    r = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers={"x-bf-vk": KEY_A, **CACHE})
    assert r.headers["x-bifrost-cache-hit"] == "false"
    _, headers = sse(gateway, "/v1/chat/completions", {**body, "stream": True})
    assert headers["x-bifrost-cache-hit"] == "false"
    assert len(upstream.state.requests) == 2


def _no_id(event: Event) -> Event:
    name, data = event
    if isinstance(data.get("message"), dict):
        data["message"].pop("id")
    return name, data


def test_anthropic_messages_are_cached_json_and_stream(gateway: Cached, upstream: Upstream) -> None:
    ant = gateway.anthropic(**CACHE)
    ask: Any = {"model": "openai/gpt-4o-mini", "max_tokens": 50, "messages": QUESTION}
    first = ant.messages.with_raw_response.create(**ask)
    second = ant.messages.with_raw_response.create(**ask)
    assert second.headers["x-bifrost-cache-hit"] == "true"
    assert second.parse().content == first.parse().content
    assert len(upstream.state.requests) == 1

    original, _ = sse(gateway, "/anthropic/v1/messages", {**ask, "stream": True})
    replayed, headers = sse(gateway, "/anthropic/v1/messages", {**ask, "stream": True})
    assert headers["x-bifrost-cache-hit"] == "true" and framing(replayed) == framing(original)
    # Messages events carry no extra_fields; only the id the translation mints for each message differs.
    assert [_no_id(e) for e in events(replayed)] == [_no_id(e) for e in events(original)]
    assert len(upstream.state.requests) == 2
    with ant.messages.stream(**ask) as stream:
        assert stream.get_final_text() == ANSWER


def test_embeddings_are_cached(cached_gateway: Any, upstream_url: str) -> None:
    with running(MediaUpstream()) as (media, media_url):
        data = cached_config(upstream_url)
        network = {"base_url": media_url}
        data["providers"]["media"] = {
            "kind": "openai",
            "keys": [{"value": "sk-m"}],
            "network_config": network,
        }
        gateway = cached_gateway(data)
        c = gateway.openai(**CACHE)
        first = c.embeddings.with_raw_response.create(model="media/text-embedding-3-small", input="hello")
        second = c.embeddings.with_raw_response.create(model="media/text-embedding-3-small", input="hello")
        assert len(media.state.requests) == 1
    assert second.headers["x-bifrost-cache-hit"] == "true"
    assert second.parse().data[0].embedding == first.parse().data[0].embedding
    assert orjson.loads(second.content)["extra_fields"]["cache_debug"]["hit_type"] == "direct"
