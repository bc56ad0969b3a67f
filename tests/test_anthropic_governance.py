"""/anthropic is an inference route like any other: virtual keys, limits and usage settle there too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.governance.engine import Governance
from tests.anthropic_upstream import AnthropicUpstream
from tests.conftest import LiveServer, serve

KEY = "sk-bf-" + "a" * 43
HI: Any = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def governed() -> Iterator[tuple[LiveServer, Governance]]:
    claude = serve(AnthropicUpstream())
    config = {
        "providers": {
            "anthropic": {"keys": [{"value": "sk-ant-test"}], "network_config": {"base_url": claude.url}}
        },
        "client": {"enforce_auth_on_inference": True},
        "governance": {
            "store": {"type": "memory"},
            "counters": {"type": "memory"},
            "virtual_keys": [
                {"id": "vk", "name": "vk", "value": KEY, "allow_all_providers": True, "rate_limit_id": "r"}
            ],
            "rate_limits": [{"id": "r", "request_max_limit": 2, "request_reset_duration": "1h"}],
        },
    }
    app = create_app(GatewayConfig.from_dict(config))
    live = serve(app)
    yield live, app.state.gateway.governance
    live.stop()
    claude.stop()


async def test_messages_need_a_virtual_key_and_count_against_its_limits(
    governed: tuple[LiveServer, Governance],
) -> None:
    live, gov = governed
    async with anthropic.AsyncAnthropic(
        base_url=live.url + "/anthropic", api_key="sk-ant-x", max_retries=0
    ) as anon:
        with pytest.raises(anthropic.AuthenticationError):
            await anon.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HI)
    async with anthropic.AsyncAnthropic(
        base_url=live.url + "/anthropic", api_key=KEY, max_retries=0
    ) as client:
        await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HI)
        async with client.messages.stream(model="claude-haiku-4-5", max_tokens=10, messages=HI) as stream:
            await stream.get_final_message()
        with pytest.raises(anthropic.RateLimitError):
            await client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=HI)
    key = await gov.keys.get("vk")
    assert key is not None
    requests = next(u for u in await gov.usage(key) if u["kind"] == "requests")
    assert (requests["used"], requests["reserved"]) == (2, 0)  # the stream settled too
