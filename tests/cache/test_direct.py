"""Direct (exact) caching through the OpenAI SDK: what is served from the cache, to whom, and for how long."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.cache.conftest import KEY_A, KEY_B, USER_HEADER, Cached, cached_config
from tests.upstream import ANSWER, Upstream

QUESTION: Any = [{"role": "user", "content": "What is the capital of France?"}]


def client(gateway: Cached, key: str = KEY_A, **headers: str) -> openai.OpenAI:
    return gateway.openai(key, **headers)


def ask(c: openai.OpenAI, **headers: str) -> tuple[dict[str, Any], Any]:
    """The answer as a dict, and its headers."""
    raw = c.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini",
        messages=QUESTION,
        extra_headers=headers,
    )
    return raw.parse().to_dict(), raw.headers


@pytest.fixture
def gateway(cached_gateway: Any, upstream_url: str) -> Cached:
    started: Cached = cached_gateway(cached_config(upstream_url))
    return started


def test_identical_request_is_served_from_the_cache(gateway: Cached, upstream: Upstream) -> None:
    c = client(gateway, **{"x-bf-cache-key": "session-1"})
    first, first_headers = ask(c)
    second, second_headers = ask(c)

    assert len(upstream.state.requests) == 1  # the second never reached the provider
    assert second["choices"] == first["choices"] and second["choices"][0]["message"]["content"] == ANSWER
    assert first["extra_fields"]["cache_debug"] == {
        "cache_hit": False, "requested_provider": "openai", "requested_model": "gpt-4o-mini",
    }  # fmt: skip
    debug = second["extra_fields"]["cache_debug"]
    assert debug["cache_hit"] is True and debug["hit_type"] == "direct"
    assert debug["requested_provider"] == "openai" and debug["requested_model"] == "gpt-4o-mini"
    assert debug["cache_id"] == second_headers["x-bifrost-cache-id"]
    assert "similarity" not in debug
    assert first_headers["x-bifrost-cache-hit"] == "false"
    assert (second_headers["x-bifrost-cache-hit"], second_headers["x-bifrost-cache-hit-type"]) == (
        "true",
        "direct",
    )
    # A hit costs nothing; the answer's usage is the original's.
    assert second["usage"]["total_tokens"] == first["usage"]["total_tokens"]
    assert second["usage"]["cost"]["total_cost"] == 0 and first["usage"]["cost"]["total_cost"] > 0
    assert float(second_headers["x-bifrost-cost-usd"]) == 0


def test_another_key_or_user_is_a_miss(gateway: Cached, upstream: Upstream) -> None:
    ask(client(gateway, **{"x-bf-cache-key": "shared"}))
    _, headers = ask(client(gateway, KEY_B, **{"x-bf-cache-key": "shared"}))
    assert headers["x-bifrost-cache-hit"] == "false"
    assert len(upstream.state.requests) == 2

    ask(client(gateway, **{"x-bf-cache-key": "shared", USER_HEADER: "alice"}))
    _, headers = ask(client(gateway, **{"x-bf-cache-key": "shared", USER_HEADER: "bob"}))
    assert headers["x-bifrost-cache-hit"] == "false"
    assert len(upstream.state.requests) == 4
    _, headers = ask(client(gateway, **{"x-bf-cache-key": "shared", USER_HEADER: "alice"}))
    assert headers["x-bifrost-cache-hit"] == "true"  # the same key and user again: served
    assert len(upstream.state.requests) == 4


def test_without_a_cache_key_nothing_is_cached(gateway: Cached, upstream: Upstream) -> None:
    c = client(gateway)
    first, headers = ask(c)
    ask(c)
    assert len(upstream.state.requests) == 2
    assert "cache_debug" not in first["extra_fields"] and "x-bifrost-cache-hit" not in headers


def test_another_cache_key_or_body_is_a_miss(gateway: Cached, upstream: Upstream) -> None:
    ask(client(gateway, **{"x-bf-cache-key": "one"}))
    ask(client(gateway, **{"x-bf-cache-key": "two"}))
    client(gateway, **{"x-bf-cache-key": "one"}).chat.completions.create(
        model="openai/gpt-4o-mini", messages=QUESTION, temperature=0.5
    )
    assert len(upstream.state.requests) == 3


def test_no_store_is_honoured(gateway: Cached, upstream: Upstream) -> None:
    c = client(gateway, **{"x-bf-cache-key": "session-1"})
    ask(c, **{"x-bf-cache-no-store": "true"})
    _, headers = ask(c)
    assert headers["x-bifrost-cache-hit"] == "false"  # the first answer was not kept
    _, headers = ask(c, **{"x-bf-cache-no-store": "true"})
    assert headers["x-bifrost-cache-hit"] == "true"  # no-store still reads what is there
    assert len(upstream.state.requests) == 2


def test_entries_expire_after_their_ttl(gateway: Cached, upstream: Upstream) -> None:
    now = [1_000_000.0]
    gateway.cache.clock = lambda: now[0]
    c = client(gateway, **{"x-bf-cache-key": "session-1"})
    ask(c)
    now[0] += 299
    assert ask(c)[1]["x-bifrost-cache-hit"] == "true"
    now[0] += 2  # past the configured 5 minutes
    assert ask(c)[1]["x-bifrost-cache-hit"] == "false"
    assert len(upstream.state.requests) == 2

    ask(c, **{"x-bf-cache-key": "short", "x-bf-cache-ttl": "10s"})
    now[0] += 11
    assert ask(c, **{"x-bf-cache-key": "short"})[1]["x-bifrost-cache-hit"] == "false"
    assert len(upstream.state.requests) == 4


@pytest.mark.parametrize(
    ("header", "value"),
    [("x-bf-cache-ttl", "soon"), ("x-bf-cache-ttl", "-5"), ("x-bf-cache-threshold", "1.5"),
     ("x-bf-cache-threshold", "high"), ("x-bf-cache-type", "fuzzy")],
)  # fmt: skip
def test_a_malformed_cache_header_is_a_400_naming_it(
    gateway: Cached, upstream: Upstream, header: str, value: str
) -> None:
    c = client(gateway, **{"x-bf-cache-key": "k", header: value})
    with pytest.raises(openai.BadRequestError) as err:
        ask(c)
    assert header in str(err.value)
    assert not upstream.state.requests


def test_every_family_is_cached(gateway: Cached, upstream: Upstream) -> None:
    c = client(gateway, **{"x-bf-cache-key": "families"})
    for _ in range(2):
        c.responses.create(model="openai/gpt-4o-mini", input="hi")
        c.completions.create(model="openai/gpt-4o-mini", prompt="hi")
    assert [r.path for r in upstream.state.requests] == ["/v1/responses", "/v1/completions"]
    again = c.responses.with_raw_response.create(model="openai/gpt-4o-mini", input="hi")
    assert again.headers["x-bifrost-cache-hit"] == "true"
    assert again.parse().output_text == ANSWER
    # The same body in another family is another entry.
    c.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert len(upstream.state.requests) == 3


def test_long_conversations_are_not_cached(gateway: Cached, upstream: Upstream) -> None:
    c = client(gateway, **{"x-bf-cache-key": "long"})
    turns: Any = [{"role": "user", "content": f"turn {i}"} for i in range(4)]  # the default threshold is 3
    for _ in range(2):
        c.chat.completions.create(model="openai/gpt-4o-mini", messages=turns)
    assert len(upstream.state.requests) == 2


def test_token_counts_are_never_cached(gateway: Cached, upstream: Upstream) -> None:
    c = client(gateway, **{"x-bf-cache-key": "counts"})
    for _ in range(2):
        raw = c.responses.input_tokens.with_raw_response.count(model="openai/gpt-4o-mini", input="hi")
        assert "x-bifrost-cache-hit" not in raw.headers
        answer: Any = raw.parse().to_dict()
        assert "cache_debug" not in answer["extra_fields"]


def test_the_system_prompt_may_be_left_out_of_the_match(
    cached_gateway: Any, upstream_url: str, upstream: Upstream
) -> None:
    def ask_with(gateway: Cached, system: str) -> Any:
        c = client(gateway, **{"x-bf-cache-key": "system"})
        turns: Any = [{"role": "system", "content": system}, *QUESTION]
        return c.chat.completions.with_raw_response.create(model="openai/gpt-4o-mini", messages=turns).headers

    plain: Cached = cached_gateway(cached_config(upstream_url))
    ask_with(plain, "Be brief.")
    assert ask_with(plain, "Be verbose.")["x-bifrost-cache-hit"] == "false"
    excluding: Cached = cached_gateway(cached_config(upstream_url, exclude_system_prompt=True))
    ask_with(excluding, "Be brief.")
    assert ask_with(excluding, "Be verbose.")["x-bifrost-cache-hit"] == "true"
    assert len(upstream.state.requests) == 3


def test_without_cache_by_model_another_model_is_served(
    cached_gateway: Any, upstream_url: str, upstream: Upstream
) -> None:
    gateway: Cached = cached_gateway(cached_config(upstream_url, cache_by_model=False))
    c = client(gateway, **{"x-bf-cache-key": "models"})
    c.chat.completions.create(model="openai/gpt-4o-mini", messages=QUESTION)
    raw = c.chat.completions.with_raw_response.create(model="openai/gpt-4o", messages=QUESTION)
    assert raw.headers["x-bifrost-cache-hit"] == "true"
    answer: Any = raw.parse().to_dict()
    assert answer["extra_fields"]["cache_debug"]["requested_model"] == "gpt-4o"
    assert len(upstream.state.requests) == 1


def test_the_raw_passthrough_is_never_cached(gateway: Cached, upstream: Upstream) -> None:
    body = {"model": "gpt-4o-mini", "messages": QUESTION}
    for _ in range(2):
        r = httpx.post(
            gateway.url + "/openai_passthrough/v1/chat/completions",
            json=body,
            headers={"x-bf-vk": KEY_A, "x-bf-cache-key": "raw"},
        )
        assert r.status_code == 200 and "x-bifrost-cache-hit" not in r.headers
    assert len(upstream.state.requests) == 2
