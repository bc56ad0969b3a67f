"""Every route takes the one journey: the same authorization, access rules and usage log records
whatever the dialect (issue 10: token counting used to skip authorization; a crashed /anthropic stream
used to be logged as a success)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.gateway import Gateway
from tests.anthropic_upstream import AnthropicUpstream
from tests.conftest import LiveServer, gateway_config, serve

KEY = "sk-bf-" + "a" * 43
GROQ_ONLY = "sk-bf-" + "g" * 43
MINI_ONLY = "sk-bf-" + "m" * 43
UNKNOWN = "sk-bf-" + "u" * 43

COUNT_PATHS = [
    "/v1/responses/input_tokens",
    *(
        f"/{p}{suffix}"
        for p in ("openai", "litellm", "langchain", "pydanticai")
        for suffix in (
            "/v1/responses/input_tokens",
            "/responses/input_tokens",
            "/openai/responses/input_tokens",
        )
    ),
]
ANTHROPIC_COUNT = "/anthropic/v1/messages/count_tokens"


def _keys() -> list[dict[str, Any]]:
    return [
        {"id": "all", "name": "all", "value": KEY, "allow_all_providers": True},
        {"id": "groq", "name": "groq", "value": GROQ_ONLY, "provider_configs": [{"provider": "groq"}]},
        {
            "id": "mini",
            "name": "mini",
            "value": MINI_ONLY,
            "provider_configs": [{"provider": "openai", "allowed_models": ["gpt-4o-mini"]}],
        },
    ]


@pytest.fixture
async def client(upstream_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    data = gateway_config(upstream_url)
    data["client"] = {"enforce_auth_on_inference": True}
    data["governance"] = {
        "store": {"type": "memory"},
        "counters": {"type": "memory"},
        "logs": {"path": str(tmp_path / "logs.db"), "flush_interval_ms": 10},
        "virtual_keys": _keys(),
    }
    app = create_app(GatewayConfig.from_dict(data))
    await app.state.gateway.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c
    await app.state.gateway.aclose()


def _count_body(path: str, model: str) -> dict[str, Any]:
    if path == ANTHROPIC_COUNT:
        return {"model": model, "messages": [{"role": "user", "content": "hello there"}]}
    return {"model": model, "input": "hello there"}


def _error_type(r: httpx.Response) -> str:
    body = r.json()
    if body.get("type") == "error":  # Anthropic's shape
        return str(body["error"]["type"])
    return str(body.get("type") or body["error"].get("type"))


@pytest.mark.parametrize("path", [*COUNT_PATHS, ANTHROPIC_COUNT])
async def test_token_counts_are_authorized_like_every_request(client: httpx.AsyncClient, path: str) -> None:
    body = _count_body(path, "openai/gpt-4o")

    anonymous = await client.post(path, json=body)
    assert anonymous.status_code == 401, anonymous.text

    made_up = await client.post(path, json=body, headers={"x-bf-vk": UNKNOWN})
    assert made_up.status_code == 403, made_up.text

    blocked = "permission_error" if path == ANTHROPIC_COUNT else "provider_blocked"
    other_provider = await client.post(path, json=body, headers={"authorization": f"Bearer {GROQ_ONLY}"})
    assert (other_provider.status_code, _error_type(other_provider)) == (403, blocked)

    blocked = "permission_error" if path == ANTHROPIC_COUNT else "model_blocked"
    other_model = await client.post(path, json=body, headers={"x-api-key": MINI_ONLY})
    assert (other_model.status_code, _error_type(other_model)) == (403, blocked)

    allowed = await client.post(path, json=body, headers={"x-bf-vk": KEY})
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["input_tokens"] > 0


async def test_a_model_the_key_allows_is_counted(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/responses/input_tokens",
        json=_count_body("", "openai/gpt-4o-mini"),
        headers={"x-bf-vk": MINI_ONLY},
    )
    assert r.status_code == 200, r.text


async def test_token_counts_leave_a_log_record_and_are_not_charged(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/responses/input_tokens", json=_count_body("", "openai/gpt-4o"), headers={"x-bf-vk": KEY}
    )
    assert r.status_code == 200
    gw = _gateway(client)
    assert gw.logs is not None
    await gw.logs.flush()
    logs = (await gw.logs.store.search({}))["logs"]
    assert [(log["object"], log["status"], log["virtual_key_id"]) for log in logs] == [
        ("count_tokens", "success", "all")
    ]
    assert gw.governance is not None
    key = await gw.governance.keys.get("all")
    assert key is not None
    assert await gw.governance.usage(key) == []  # no limit was reserved or charged


def _gateway(client: httpx.AsyncClient) -> Gateway:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    gateway: Gateway = transport.app.state.gateway  # type: ignore[attr-defined]
    return gateway


# -- /anthropic streams that fail mid-way ---------------------------------------------------------------


@pytest.fixture(scope="module")
def claude() -> Iterator[LiveServer]:
    live = serve(AnthropicUpstream())
    yield live
    live.stop()


async def test_an_anthropic_stream_that_fails_mid_way_is_logged_as_an_error(
    claude: LiveServer, tmp_path: Path
) -> None:
    config = {
        "providers": {
            "anthropic": {"keys": [{"value": "sk-ant"}], "network_config": {"base_url": claude.url}}
        },
        "governance": {"store": {"type": "memory"}, "logs": {"path": str(tmp_path / "logs.db")}},
    }
    app = create_app(GatewayConfig.from_dict(config))
    gw: Gateway = app.state.gateway
    await gw.start()
    body = {
        "model": "error-mid-stream",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            r = await c.post("/anthropic/v1/messages", json=body)
        assert r.status_code == 200
        assert b"event: error" in r.content  # the client sees the failure in Anthropic's framing
        assert gw.logs is not None
        await gw.logs.flush()
        logs = (await gw.logs.store.search({}))["logs"]
    finally:
        await gw.aclose()
    assert [(log["object"], log["status"], log["status_code"]) for log in logs] == [
        ("responses_stream", "error", 529)  # the upstream's overloaded_error event
    ]


class _Crashes:
    """A stream translator with a bug: it fails on the third event."""

    def __init__(self, **kwargs: Any) -> None:
        self.seen = 0

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        self.seen += 1
        if self.seen == 3:
            raise RuntimeError("a bug in a translator")
        return [{"type": "ping"}]


async def test_an_anthropic_stream_that_crashes_is_logged_as_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bifrost_asgi.surfaces.anthropic.ResponsesToMessagesStream", _Crashes)
    config = {
        "providers": {"mock": {}},
        "governance": {"store": {"type": "memory"}, "logs": {"path": str(tmp_path / "l.db")}},
    }
    app = create_app(GatewayConfig.from_dict(config))
    gw: Gateway = app.state.gateway
    await gw.start()
    body = {
        "model": "mock/mock-1",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            r = await c.post("/anthropic/v1/messages", json=body)
        assert gw.logs is not None
        await gw.logs.flush()
        logs = (await gw.logs.store.search({}))["logs"]
    finally:
        await gw.aclose()
    assert r.status_code == 200
    error = b'{"type":"error","error":{"type":"api_error","message":"stream failed: RuntimeError"}}'
    assert r.content.endswith(b"event: error\ndata: " + error + b"\n\n")
    assert [(log["object"], log["status"], log["status_code"]) for log in logs] == [
        ("responses_stream", "error", 500)
    ]


# -- a key's provider weights and bare models (issue 18) --------------------------------------------------

WEIGHTED = "sk-bf-" + "w" * 43


@pytest.fixture
async def weighted(upstream_url: str) -> AsyncIterator[httpx.AsyncClient]:
    data = gateway_config(upstream_url)
    data["providers"]["anthropic"] = {
        "keys": [{"value": "sk-ant-unused"}],
        "network_config": {"base_url": upstream_url},
    }
    rules = [{"provider": "anthropic", "weight": 1000}, {"provider": "openai", "weight": 0.001}]
    data["governance"] = {
        "store": {"type": "memory"},
        "virtual_keys": [{"id": "w", "name": "w", "value": WEIGHTED, "provider_configs": rules}],
    }
    app = create_app(GatewayConfig.from_dict(data))
    await app.state.gateway.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        yield c
    await app.state.gateway.aclose()


@pytest.mark.parametrize("path", ["/openai/v1/chat/completions", "/v1/chat/completions"])
async def test_a_bare_model_goes_to_a_provider_that_serves_it(weighted: httpx.AsyncClient, path: str) -> None:
    """Under /openai the prefix decides; on the unified route the key's weights choose only among the
    providers known to serve the model (anthropic, weighted 1000:0.001, does not serve gpt-4o-mini)."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(5):
        r = await weighted.post(path, json=body, headers={"x-bf-vk": WEIGHTED})
        assert r.status_code == 200, r.text
        assert r.headers["x-bifrost-provider"] == "openai"
