"""Virtual keys, limits and budgets through the gateway's HTTP API (one process, in-memory stores).

The error table of spec §5.2/§6.2, the headers a key is accepted from, admission under concurrency,
and settlement of streamed and cancelled-stream usage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.governance.engine import Governance
from tests.conftest import gateway_config
from tests.schemas import assert_valid, bifrost_error_validator
from tests.upstream import GPT_4O_MINI_COST as COST
from tests.upstream import Upstream

KEY = "sk-bf-" + "k" * 43
OTHER = "sk-bf-" + "o" * 43


def governed(upstream_url: str, **governance: Any) -> dict[str, Any]:
    data = gateway_config(upstream_url)
    data["governance"] = {"store": {"type": "memory"}, "counters": {"type": "memory"}, **governance}
    return data


def vk(id: str, value: str, **fields: Any) -> dict[str, Any]:
    return {"id": id, "name": id, "value": value, "allow_all_providers": True, **fields}


@pytest.fixture
async def client_for(upstream_url: str) -> AsyncIterator[Any]:
    apps: list[Any] = []

    async def make(data: dict[str, Any]) -> httpx.AsyncClient:
        app = create_app(GatewayConfig.from_dict(data))
        await app.state.gateway.start()
        apps.append(app)
        limits = httpx.Limits(max_connections=500)
        transport = httpx.ASGITransport(app=app)
        return httpx.AsyncClient(transport=transport, base_url="http://gw", limits=limits, timeout=30)

    yield make
    for app in apps:
        await app.state.gateway.aclose()


def gov_of(client: httpx.AsyncClient) -> Governance:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    gateway: Gateway = transport.app.state.gateway  # type: ignore[attr-defined]
    assert gateway.governance is not None
    return gateway.governance


def chat(model: str = "openai/gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, **extra}


def governance_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert_valid(bifrost_error_validator(), body)
    assert body["type"] == code  # governance codes go in the top-level type, as Bifrost
    return body


def in_header(header: str, key: str) -> dict[str, str]:
    return {header: f"Bearer {key}" if header == "authorization" else key}


async def requests_used(client: httpx.AsyncClient, key_id: str) -> float:
    key = await gov_of(client).keys.get(key_id)
    assert key is not None
    [row] = [u for u in await gov_of(client).usage(key) if u["kind"] == "requests"]
    used: float = row["used"]
    return used


@pytest.mark.parametrize("header", ["x-bf-vk", "authorization", "x-api-key", "x-goog-api-key", "api-key"])
async def test_key_accepted_from_each_header(client_for: Any, upstream_url: str, header: str) -> None:
    data = governed(
        upstream_url,
        virtual_keys=[vk("vk-1", KEY, rate_limit_id="rl"), vk("vk-2", OTHER, rate_limit_id="rl")],
        rate_limits=[{"id": "rl", "request_max_limit": 100, "request_reset_duration": "1h"}],
    )
    data["client"] = {"enforce_auth_on_inference": True}
    c = await client_for(data)
    governance_error(await c.post("/v1/chat/completions", json=chat()), 401, "virtual_key_required")

    r = await c.post("/v1/chat/completions", json=chat(), headers=in_header(header, KEY))
    assert r.status_code == 200, r.text
    # Charged to the key the header carried, and to no other.
    assert (await requests_used(c, "vk-1"), await requests_used(c, "vk-2")) == (1, 0)

    unknown = "sk-bf-" + "u" * 43
    r = await c.post("/v1/chat/completions", json=chat(), headers=in_header(header, unknown))
    governance_error(r, 403, "virtual_key_not_found")
    assert (await requests_used(c, "vk-1"), await requests_used(c, "vk-2")) == (1, 0)


async def test_error_table(client_for: Any, upstream_url: str) -> None:
    keys = [
        vk(
            "active",
            KEY,
            allow_all_providers=False,
            provider_configs=[
                {
                    "provider": "openai",
                    "allowed_models": ["gpt-4o-mini", "regex:gpt-4\\.1.*"],
                    "blacklisted_models": ["gpt-4.1-nano"],
                }
            ],
        ),
        vk("inactive", OTHER, is_active=False),
    ]
    c = await client_for(governed(upstream_url, virtual_keys=keys))
    unknown = "sk-bf-" + "u" * 43
    governance_error(
        await c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": unknown}),
        403,
        "virtual_key_not_found",
    )
    body = governance_error(
        await c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": OTHER}),
        403,
        "virtual_key_blocked",
    )
    assert body["error"]["message"] == "Virtual key is inactive"
    body = governance_error(
        await c.post("/v1/chat/completions", json=chat("groq/llama"), headers={"x-bf-vk": KEY}),
        403,
        "provider_blocked",
    )
    assert body["error"]["message"] == "Provider 'groq' is not allowed for this virtual key"
    governance_error(
        await c.post("/v1/chat/completions", json=chat("openai/gpt-4o"), headers={"x-bf-vk": KEY}),
        403,
        "model_blocked",
    )
    governance_error(
        await c.post("/v1/chat/completions", json=chat("openai/gpt-4.1-nano"), headers={"x-bf-vk": KEY}),
        403,
        "model_blocked",
    )
    ok = await c.post("/v1/chat/completions", json=chat("openai/gpt-4.1-mini"), headers={"x-bf-vk": KEY})
    assert ok.status_code == 200
    assert KEY not in ok.text and OTHER not in body["error"]["message"]


async def test_expired_key(client_for: Any, upstream_url: str) -> None:
    c = await client_for(governed(upstream_url))
    key, value = await gov_of(c).create_key("old", expires_at=time.time() - 1, allow_all_providers=True)
    body = governance_error(
        await c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": value}),
        403,
        "virtual_key_blocked",
    )
    assert body["error"]["message"] == "Virtual key has expired"


async def test_enforced_auth_requires_a_key(client_for: Any, upstream_url: str) -> None:
    data = governed(upstream_url, virtual_keys=[vk("vk-1", KEY)])
    data["client"] = {"enforce_auth_on_inference": True}
    c = await client_for(data)
    governance_error(await c.post("/v1/chat/completions", json=chat()), 401, "virtual_key_required")
    # The SDK's dummy api key is not a virtual key: still missing.
    r = await c.post("/v1/chat/completions", json=chat(), headers={"authorization": "Bearer sk-dummy"})
    governance_error(r, 401, "virtual_key_required")
    assert (await c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": KEY})).status_code == 200


async def test_unknown_key_rejected_even_without_governance(gateway_url: str) -> None:
    async with httpx.AsyncClient() as h:
        r = await h.post(gateway_url + "/v1/chat/completions", json=chat(), headers={"x-bf-vk": KEY})
    governance_error(r, 403, "virtual_key_not_found")


# The upstream reports 12 + 5 = 17 tokens per call.
UPSTREAM_TOKENS = 17


@pytest.mark.parametrize(
    ("rate_limit", "code", "kind", "served"),
    [
        ({"request_max_limit": 2, "request_reset_duration": "1h"}, "request_limited", "requests", 2),
        ({"request_max_limit": 3, "request_reset_duration": "1h"}, "request_limited", "requests", 3),
        # Tokens block once used reaches the limit: 2 x 17 = 34 blocks the third call, 35 lets it through.
        ({"token_max_limit": 34, "token_reset_duration": "1h"}, "token_limited", "tokens", 2),
        ({"token_max_limit": 35, "token_reset_duration": "1h"}, "token_limited", "tokens", 3),
        ({"token_max_limit": 1, "token_reset_duration": "1h"}, "token_limited", "tokens", 1),
    ],
)
async def test_rate_limits(
    client_for: Any, upstream_url: str, rate_limit: dict[str, Any], code: str, kind: str, served: int
) -> None:
    data = governed(
        upstream_url,
        virtual_keys=[vk("vk-1", KEY, rate_limit_id="rl")],
        rate_limits=[{"id": "rl", **rate_limit}],
    )
    c = await client_for(data)
    responses = [
        await c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": KEY}) for _ in range(5)
    ]
    assert [r.status_code for r in responses] == [200] * served + [429] * (5 - served)
    for refused in responses[served:]:
        governance_error(refused, 429, code)
    key = await gov_of(c).keys.get("vk-1")
    assert key is not None
    [row] = [u for u in await gov_of(c).usage(key) if u["kind"] == kind]
    per_call = 1 if kind == "requests" else UPSTREAM_TOKENS
    assert (row["used"], row["reserved"]) == (served * per_call, 0)  # refused calls are not counted


async def test_both_limits_is_rate_limited(client_for: Any, upstream_url: str) -> None:
    limits = {
        "id": "rl",
        "request_max_limit": 1,
        "request_reset_duration": "1h",
        "token_max_limit": 1,
        "token_reset_duration": "1h",
    }
    c = await client_for(
        governed(upstream_url, virtual_keys=[vk("vk-1", KEY, rate_limit_id="rl")], rate_limits=[limits])
    )
    assert (await c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": KEY})).status_code == 200
    governance_error(
        await c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": KEY}), 429, "rate_limited"
    )


async def test_budget_blocks_the_request_after_the_crossing_one(client_for: Any, upstream_url: str) -> None:
    data = governed(
        upstream_url,
        virtual_keys=[vk("vk-1", KEY)],
        budgets=[{"id": "b", "max_limit": COST * 2.5, "reset_duration": "1d", "virtual_key_id": "vk-1"}],
    )
    c = await client_for(data)
    codes = [
        (await c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": KEY})).status_code
        for _ in range(4)
    ]
    assert codes == [200, 200, 200, 402]  # the third crosses the limit and is let through (spec §6.3)
    r = await c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": KEY})
    body = governance_error(r, 402, "budget_exceeded")
    assert "budget exceeded" in body["error"]["message"]


async def test_team_and_customer_budgets_are_charged_too(client_for: Any, upstream_url: str) -> None:
    data = governed(
        upstream_url,
        virtual_keys=[vk("vk-1", KEY, team_id="t1")],
        teams=[{"id": "t1", "name": "team", "customer_id": "c1"}],
        customers=[{"id": "c1", "name": "acme"}],
        budgets=[
            {"id": "tb", "max_limit": 1.0, "reset_duration": "1M", "team_id": "t1"},
            {"id": "cb", "max_limit": COST * 0.5, "reset_duration": "1M", "customer_id": "c1"},
        ],
    )
    c = await client_for(data)
    assert (await c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": KEY})).status_code == 200
    body = governance_error(
        await c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": KEY}), 402, "budget_exceeded"
    )
    assert body["error"]["message"].startswith("Customer budget exceeded")
    usage = await gov_of(c).usage(await gov_of(c).keys.get("vk-1"))  # type: ignore[arg-type]
    team_row = next(u for u in usage if u["limit"].startswith("team:"))
    assert team_row["used"] == pytest.approx(COST)


async def test_exactly_the_limit_under_concurrency(client_for: Any, upstream_url: str) -> None:
    data = governed(
        upstream_url,
        virtual_keys=[vk("vk-1", KEY, rate_limit_id="rl")],
        rate_limits=[{"id": "rl", "request_max_limit": 50, "request_reset_duration": "1h"}],
    )
    c = await client_for(data)
    results = await asyncio.gather(
        *(
            c.post("/v1/chat/completions", json=chat("mock/mock-1"), headers={"x-bf-vk": KEY})
            for _ in range(200)
        )
    )
    codes = [r.status_code for r in results]
    assert codes.count(200) == 50
    assert codes.count(429) == 150


async def test_budget_under_concurrency(client_for: Any, upstream_url: str) -> None:
    budget = COST * 20
    data = governed(
        upstream_url,
        virtual_keys=[vk("vk-1", KEY)],
        budgets=[{"id": "b", "max_limit": budget, "reset_duration": "1d", "virtual_key_id": "vk-1"}],
    )
    c = await client_for(data)
    results = await asyncio.gather(
        *(c.post("/v1/chat/completions", json=chat(), headers={"x-bf-vk": KEY}) for _ in range(100))
    )
    ok = [r for r in results if r.status_code == 200]
    assert {r.status_code for r in results} == {200, 402}
    spent = sum(r.json()["usage"]["cost"]["total_cost"] for r in ok)
    assert spent <= budget + COST + 1e-12
    key = await gov_of(c).keys.get("vk-1")
    assert key is not None
    row = next(u for u in await gov_of(c).usage(key) if u["kind"] == "budget")
    assert row["used"] == pytest.approx(spent)
    assert row["reserved"] == pytest.approx(0)  # every reservation settled or released


async def test_streamed_usage_is_charged(client_for: Any, upstream_url: str) -> None:
    data = governed(
        upstream_url,
        virtual_keys=[vk("vk-1", KEY)],
        budgets=[{"id": "b", "max_limit": 1.0, "reset_duration": "1d", "virtual_key_id": "vk-1"}],
    )
    c = await client_for(data)
    r = await c.post("/v1/chat/completions", json=chat(stream=True), headers={"x-bf-vk": KEY})
    assert r.status_code == 200
    key = await gov_of(c).keys.get("vk-1")
    assert key is not None
    row = next(u for u in await gov_of(c).usage(key) if u["kind"] == "budget")
    assert row["used"] == pytest.approx(COST)
    assert row["reserved"] == 0


async def test_cancelled_stream_is_charged_for_what_was_delivered(
    upstream_url: str, upstream: Upstream, tmp_path: Any
) -> None:
    from tests.conftest import serve

    data = governed(
        upstream_url,
        virtual_keys=[vk("vk-1", KEY, rate_limit_id="rl")],
        rate_limits=[{"id": "rl", "token_max_limit": 1_000_000, "token_reset_duration": "1d"}],
        budgets=[{"id": "b", "max_limit": 1.0, "reset_duration": "1d", "virtual_key_id": "vk-1"}],
    )
    app = create_app(GatewayConfig.from_dict(data))
    live = serve(app)
    try:
        async with httpx.AsyncClient(timeout=10) as h:
            request = h.build_request(
                "POST",
                live.url + "/v1/chat/completions",
                json=chat("openai/slow-stream", stream=True),
                headers={"x-bf-vk": KEY},
            )
            resp = await h.send(request, stream=True)
            seen = 0
            async for chunk in resp.aiter_bytes():
                seen += chunk.count(b"data: ")
                if seen >= 3:
                    break
            await resp.aclose()
        gov: Governance = app.state.gateway.governance
        key = await gov.keys.get("vk-1")
        assert key is not None
        for _ in range(50):
            rows = {u["kind"]: u for u in await gov.usage(key)}
            if rows["tokens"]["reserved"] == 0:
                break
            await asyncio.sleep(0.1)
        assert rows["tokens"]["reserved"] == 0
        assert rows["tokens"]["used"] >= 3  # at least the delivered chunks, plus the input estimate
        assert rows["budget"]["reserved"] == 0
    finally:
        live.stop()


async def test_weighted_provider_choice_for_bare_models(client_for: Any, upstream_url: str) -> None:
    key = vk(
        "vk-1",
        KEY,
        allow_all_providers=False,
        provider_configs=[{"provider": "groq", "weight": 1.0}, {"provider": "openai", "weight": 0.0}],
    )
    c = await client_for(governed(upstream_url, virtual_keys=[key]))
    r = await c.post("/v1/chat/completions", json=chat("llama-3.1-8b-instant"), headers={"x-bf-vk": KEY})
    assert r.status_code == 200, r.text
    assert r.json()["extra_fields"]["provider"] == "groq"


async def test_seeded_key_values_are_stored_hashed(client_for: Any, upstream_url: str) -> None:
    c = await client_for(governed(upstream_url, virtual_keys=[vk("vk-1", KEY)]))
    key = await gov_of(c).keys.get("vk-1")
    assert key is not None
    assert KEY not in key.model_dump_json()
    assert key.key_hash and key.key_prefix == KEY[6:14]
