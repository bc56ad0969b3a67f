"""A hit's accounting: one request against the key's request limit, no tokens, no budget, no cost; the
usage log marks it (and ``GET /api/logs`` filters on it); Prometheus counts it by type."""

from __future__ import annotations

from pathlib import Path

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.gateway import Gateway
from tests.cache.conftest import KEY_A, cached_config
from tests.upstream import Upstream

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
HEADERS = {"x-bf-vk": KEY_A, "x-bf-cache-key": "accounting"}


async def used(gw: Gateway, key_id: str) -> dict[str, float]:
    """What the key has used of each of its limits (requests, budget)."""
    gov = gw.governance
    assert gov is not None
    key = await gov.keys.get(key_id)
    assert key is not None
    return {row["kind"]: row["used"] for row in await gov.usage(key)}


async def test_a_hit_counts_as_a_request_and_costs_nothing(
    upstream_url: str, upstream: Upstream, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    data = cached_config(upstream_url)
    data["governance"]["logs"] = {"path": str(tmp_path / "logs.db"), "flush_interval_ms": 10}
    app = create_app(GatewayConfig.from_dict(data))
    gw: Gateway = app.state.gateway
    await gw.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            await _check(c, gw, upstream)
    finally:
        await gw.aclose()
    marked = [
        dict(span.attributes or {}).get("bifrost.cache.hit_type") for span in spans.get_finished_spans()
    ]
    assert marked.count("direct") == 1  # the hit's request span, and no other


async def _check(c: httpx.AsyncClient, gw: Gateway, upstream: Upstream) -> None:
    r = await c.post("/v1/chat/completions", json=CHAT, headers=HEADERS)
    after_miss = await used(gw, "vk-a")
    assert after_miss["requests"] == 1 and after_miss["budget"] > 0

    hit = await c.post("/v1/chat/completions", json=CHAT, headers=HEADERS)
    assert hit.headers["x-bifrost-cache-hit"] == "true" and len(upstream.state.requests) == 1
    assert await used(gw, "vk-a") == {"requests": 2, "budget": after_miss["budget"]}

    assert gw.logs is not None
    await gw.logs.flush()
    logs = (await c.get("/api/logs")).json()["logs"]
    assert {log["id"]: log["cache_hit"] for log in logs} == {
        r.headers["x-request-id"]: None,
        hit.headers["x-request-id"]: "direct",
    }
    [logged_hit] = (await c.get("/api/logs?cache_hits=direct")).json()["logs"]
    assert logged_hit["id"] == hit.headers["x-request-id"]
    assert (logged_hit["cost"], logged_hit["total_tokens"]) == (0, 0)

    metrics = (await c.get("/metrics")).text
    [line] = [m for m in metrics.splitlines() if m.startswith("bifrost_cache_hits_total{")]
    assert 'cache_type="direct"' in line and 'virtual_key_id="vk-a"' in line and line.endswith(" 1.0")
    upstream_calls = [m for m in metrics.splitlines() if m.startswith("bifrost_upstream_requests_total{")]
    assert [m.rsplit(" ", 1)[1] for m in upstream_calls] == ["1.0"]  # the hit reached no upstream
