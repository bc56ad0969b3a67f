"""Gateways with the semantic_cache plugin on, served by uvicorn in front of the counting upstream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.adapters.principal import PRINCIPAL_SCOPE_KEY, Principal
from bifrost_asgi.cache.runtime import ResponseCache
from bifrost_asgi.gateway import Gateway
from tests.conftest import LiveServer, serve
from tests.governance.conftest import redis_url  # noqa: F401  (the fixture: the local Redis server)
from tests.governance.test_governance_http import governed, vk

KEY_A = "sk-bf-" + "a" * 43
KEY_B = "sk-bf-" + "b" * 43
USER_HEADER = "x-test-user"


def with_cache(data: dict[str, Any], **config: Any) -> dict[str, Any]:
    """``data`` with the semantic_cache plugin enabled (direct mode, 5 minutes, unless ``config`` says)."""
    return {
        **data,
        "plugins": [{"name": "semantic_cache", "enabled": True, "config": {"ttl": "5m", **config}}],
    }


def cached_config(upstream_url: str, **config: Any) -> dict[str, Any]:
    """Two virtual keys (a request limit on the first, a budget on both) in front of the upstream."""
    data = governed(
        upstream_url,
        virtual_keys=[vk("vk-a", KEY_A, rate_limit_id="rl"), vk("vk-b", KEY_B)],
        rate_limits=[{"id": "rl", "request_max_limit": 100, "request_reset_duration": "1h"}],
        budgets=[{"id": "b", "max_limit": 10.0, "reset_duration": "1d", "virtual_key_id": "vk-a"}],
    )
    return with_cache(data, **config)


class HostUsers:
    """A host app's authentication stand-in: the ``x-test-user`` header names the user (as a token)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            user = dict(scope["headers"]).get(USER_HEADER.encode())
            if user is not None:
                scope[PRINCIPAL_SCOPE_KEY] = Principal(user.decode(), via="token")
        await self.app(scope, receive, send)


@dataclass
class Cached:
    """A started gateway, and the SDK clients made for it (closed with it)."""

    url: str
    gw: Gateway
    clients: list[Any] = field(default_factory=list)

    @property
    def cache(self) -> ResponseCache:
        assert self.gw.cache is not None
        return self.gw.cache

    def openai(self, key: str = KEY_A, **headers: str) -> openai.OpenAI:
        c = openai.OpenAI(base_url=self.url + "/v1", api_key=key, default_headers=headers, max_retries=0)
        self.clients.append(c)
        return c

    def anthropic(self, key: str = KEY_A, **headers: str) -> anthropic.Anthropic:
        url = self.url + "/anthropic"
        c = anthropic.Anthropic(base_url=url, api_key=key, default_headers=headers, max_retries=0)
        self.clients.append(c)
        return c


@pytest.fixture
def cached_gateway() -> Iterator[Callable[[dict[str, Any]], Cached]]:
    """Start gateways (behind `HostUsers`) from config dicts; stopped after the test."""
    live: list[LiveServer] = []
    started: list[Cached] = []

    def start(data: dict[str, Any]) -> Cached:
        app = create_app(GatewayConfig.from_dict(data))
        server = serve(HostUsers(app))
        live.append(server)
        started.append(Cached(server.url, app.state.gateway))
        return started[-1]

    yield start
    for gateway in started:
        for c in gateway.clients:
            c.close()
    for server in live:
        server.stop()
