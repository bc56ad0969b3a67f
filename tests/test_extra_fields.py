"""What the gateway adds to answers: raw bodies on request, forwarded headers, cost and its overrides."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from bifrost_asgi import GatewayConfig, create_app
from tests.conftest import gateway_config
from tests.upstream import Upstream


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


async def test_raw_bodies_only_when_asked(gateway_url: str, upstream: Upstream) -> None:
    async with httpx.AsyncClient() as h:
        plain = await h.post(gateway_url + "/v1/chat/completions", json=chat("openai/gpt-4o-mini"))
        raw = await h.post(
            gateway_url + "/v1/chat/completions",
            json=chat("openai/gpt-4o-mini"),
            headers={"x-bf-send-back-raw-response": "true", "x-bf-send-back-raw-request": "true"},
        )
    assert "raw_response" not in plain.json()["extra_fields"]
    extra = raw.json()["extra_fields"]
    assert extra["raw_request"] == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    assert extra["raw_response"]["id"] == "chatcmpl-up1"
    assert "extra_fields" not in extra["raw_response"]
    assert "sk-test-primary" not in raw.text  # the provider key travels in headers, never echoed


async def test_x_bf_eh_headers_are_forwarded_except_denied(gateway_url: str, upstream: Upstream) -> None:
    async with httpx.AsyncClient() as h:
        await h.post(
            gateway_url + "/v1/chat/completions",
            json=chat("openai/gpt-4o-mini"),
            headers={"x-bf-eh-openai-organization": "org-1", "x-bf-eh-authorization": "Bearer stolen"},
        )
    sent = upstream.state.requests[-1].headers
    assert sent["openai-organization"] == "org-1"
    assert sent["authorization"] == "Bearer sk-test-primary"


async def test_unknown_price_is_zero_cost_without_header(gateway_url: str) -> None:
    async with httpx.AsyncClient() as h:
        r = await h.post(gateway_url + "/v1/chat/completions", json=chat("openai/my-private-finetune"))
    assert r.json()["usage"]["cost"]["total_cost"] == 0
    assert "x-bifrost-cost-usd" not in r.headers


async def test_pricing_overrides_from_config(upstream_url: str, upstream: Upstream) -> None:
    data = gateway_config(upstream_url)
    data["pricing_overrides"] = {
        "openai/my-model": {"input_cost_per_token": 1e-3, "output_cost_per_token": 2e-3}
    }
    app = create_app(GatewayConfig.from_dict(data))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as h,
    ):
        r = await h.post("/v1/chat/completions", json=chat("openai/my-model"))
    cost = orjson.loads(r.content)["usage"]["cost"]
    # Upstream usage: 12 prompt, 5 completion tokens; no cache-read price: cached tokens cost the input rate.
    assert cost["input_tokens_cost"] == 12 * 1e-3
    assert cost["output_tokens_cost"] == 5 * 2e-3
    assert float(r.headers["x-bifrost-cost-usd"]) == 12 * 1e-3 + 5 * 2e-3
