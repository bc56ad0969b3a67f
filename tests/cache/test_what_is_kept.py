"""What is never kept: answers that call the client's tools (unless configured), Messages streams that
failed or were cut off (a native Anthropic upstream)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.anthropic_upstream import AnthropicUpstream
from tests.cache.conftest import Cached, cached_config
from tests.cache.test_streams import events, framing, sse, without_gateway_fields
from tests.media_upstream import running
from tests.test_anthropic_integration import WEATHER

CACHE = {"x-bf-cache-key": "kept"}
HI: Any = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def claude() -> Iterator[tuple[AnthropicUpstream, str]]:
    with running(AnthropicUpstream()) as served:
        yield served


def start(
    cached_gateway: Any, upstream_url: str, claude: tuple[AnthropicUpstream, str], **config: Any
) -> anthropic.Anthropic:
    return started(cached_gateway, upstream_url, claude, **config).anthropic(**CACHE)


def started(
    cached_gateway: Any, upstream_url: str, claude: tuple[AnthropicUpstream, str], **config: Any
) -> Cached:
    """A caching gateway with the Anthropic upstream as provider ``anthropic``."""
    claude[0].state.reset()
    data = cached_config(upstream_url, **config)
    data["providers"]["anthropic"] = {
        "keys": [{"value": "sk-ant"}],
        "network_config": {"base_url": claude[1]},
    }
    gateway: Cached = cached_gateway(data)
    return gateway


def test_tool_calls_are_not_kept_unless_configured(
    cached_gateway: Any, upstream_url: str, claude: Any
) -> None:
    ant = start(cached_gateway, upstream_url, claude)
    ask: Any = {"model": "claude-sonnet-4-6", "max_tokens": 50, "messages": HI, "tools": [WEATHER]}
    for _ in range(2):
        assert ant.messages.create(**ask).stop_reason == "tool_use"
        with ant.messages.stream(**ask) as stream:
            assert stream.get_final_message().stop_reason == "tool_use"
    assert len(claude[0].state.requests) == 4
    ant.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=HI)
    ant.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=HI)
    assert len(claude[0].state.requests) == 5  # a plain answer is kept

    ant = start(cached_gateway, upstream_url, claude, cache_tool_calls=True)
    for _ in range(2):
        ant.messages.create(**ask)
    assert len(claude[0].state.requests) == 1


@pytest.mark.parametrize("model", ["error-mid-stream", "truncated-stream"])
def test_a_failed_or_cut_off_stream_is_not_kept(
    cached_gateway: Any, upstream_url: str, claude: Any, model: str
) -> None:
    ant = start(cached_gateway, upstream_url, claude)
    for _ in range(2):
        with (
            pytest.raises(anthropic.APIError),
            ant.messages.stream(model=model, max_tokens=50, messages=HI) as stream,
        ):
            stream.get_final_message()
    assert len(claude[0].state.requests) == 2


def test_a_translated_stream_is_replayed_as_it_was_sent(
    cached_gateway: Any, upstream_url: str, claude: Any
) -> None:
    gateway = started(cached_gateway, upstream_url, claude)
    body = {"model": "anthropic/claude-sonnet-4-6", "input": "Hi", "stream": True}  # Messages -> Responses
    first, _ = sse(gateway, "/v1/responses", body)
    second, headers = sse(gateway, "/v1/responses", body)
    assert headers["x-bifrost-cache-hit"] == "true" and len(claude[0].state.requests) == 1
    assert framing(second) == framing(first)
    assert without_gateway_fields(events(second)) == without_gateway_fields(events(first))
    [done] = [data for name, data in events(second) if name == "response.completed"]
    assert done["response"]["usage"]["cost"]["total_cost"] == 0  # the replayed usage, free
