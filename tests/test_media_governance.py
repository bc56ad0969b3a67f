"""Media routes under governance: virtual keys and access rules, limits and budgets reserved and
settled, one usage log record per request with its own request type, and the catalog's price (per
token, per character, per second, per image)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.gateway import Gateway
from tests.conftest import serve
from tests.media_upstream import MediaUpstream

KEY = "sk-bf-" + "m" * 43
IMAGE_COST = 40 * 5e-6 + 10 * 1e-5 + 4160 * 4e-5  # gpt-image-1 for the upstream's usage
COSTS = {
    "embedding": 8 * 2e-8,  # text-embedding-3-small, 8 tokens
    "speech": len("Hello there") * 1.5e-5,  # tts-1 per character
    "transcription": 3 * 1e-4,  # whisper-1, 3 seconds
    "image_generation": IMAGE_COST,
}


@pytest.fixture(scope="module")
def media_url() -> Iterator[str]:
    live = serve(MediaUpstream())
    yield live.url
    live.stop()


def governed(media_url: str, logs: Path, **key: Any) -> dict[str, Any]:
    vk = {
        "id": "vk",
        "name": "media",
        "value": KEY,
        "allow_all_providers": True,
        "rate_limit_id": "rl",
        **key,
    }
    return {
        "providers": {"openai": {"keys": [{"value": "sk-media"}], "network_config": {"base_url": media_url}}},
        "client": {"enforce_auth_on_inference": True},
        "governance": {
            "store": {"type": "memory"},
            "counters": {"type": "memory"},
            "logs": {"path": str(logs)},
            "virtual_keys": [vk],
            "rate_limits": [{"id": "rl", "request_max_limit": 100, "request_reset_duration": "1h"}],
            "budgets": [{"id": "b", "max_limit": 10, "reset_duration": "1M", "virtual_key_id": "vk"}],
        },
    }


@dataclass
class Running:
    app: Any
    gw: Gateway

    def client(self, key: str | None = KEY) -> openai.AsyncOpenAI:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://gw", timeout=30
        )
        return openai.AsyncOpenAI(
            base_url="http://gw/v1", api_key=key or "none", http_client=cast(Any, http), max_retries=0
        )


@asynccontextmanager
async def running(config: dict[str, Any]) -> AsyncIterator[Running]:
    app = create_app(GatewayConfig.from_dict(config))
    gw: Gateway = app.state.gateway
    await gw.start()
    try:
        yield Running(app, gw)
    finally:
        await gw.aclose()


async def logs(gw: Gateway) -> list[dict[str, Any]]:
    assert gw.logs is not None
    await gw.logs.flush()
    page = await gw.logs.store.search({"sort_by": ["timestamp"], "order": ["asc"]})
    entries: list[dict[str, Any]] = page["logs"]
    return entries


async def test_media_calls_are_charged_logged_and_priced(media_url: str, tmp_path: Path) -> None:
    async with running(governed(media_url, tmp_path / "logs.db")) as gateway:
        await _charged_logged_and_priced(gateway)


async def _charged_logged_and_priced(gateway: Running) -> None:
    client = gateway.client()
    await client.embeddings.create(model="openai/text-embedding-3-small", input="hello")
    speech = await client.audio.speech.create(model="openai/tts-1", voice="alloy", input="Hello there")
    assert len(speech.content) > 0
    await client.audio.transcriptions.create(model="openai/whisper-1", file=("a.wav", b"RIFF" + bytes(64)))
    await client.images.generate(model="openai/gpt-image-1", prompt="a cat")
    entries = await logs(gateway.gw)
    assert [e["object"] for e in entries] == list(COSTS)
    for entry in entries:
        assert entry["status"] == "success" and entry["virtual_key_id"] == "vk"
        assert entry["cost"] == pytest.approx(COSTS[entry["object"]]), entry["object"]
    by_type = {e["object"]: e for e in entries}
    # Speech reports no usage of its own: the characters it spoke are the charged estimate.
    assert by_type["speech"]["usage_estimated"] is True and by_type["speech"]["stream"] is True
    assert by_type["embedding"]["usage_estimated"] is False and by_type["embedding"]["input_tokens"] == 8
    assert by_type["image_generation"]["output_tokens"] == 4160
    governance = gateway.gw.governance
    assert governance is not None
    key = await governance.keys.get("vk")
    assert key is not None
    usage = {row["kind"]: row for row in await governance.usage(key)}
    assert usage["requests"]["used"] == 4 and usage["requests"]["reserved"] == 0
    assert usage["budget"]["used"] == pytest.approx(sum(COSTS.values())) and usage["budget"]["reserved"] == 0


async def test_media_needs_a_key_and_obeys_its_rules(media_url: str, tmp_path: Path) -> None:
    rules = [{"provider": "openai", "allowed_models": ["text-embedding-3-small"]}]
    config = governed(media_url, tmp_path / "logs.db", allow_all_providers=False, provider_configs=rules)
    async with running(config) as gateway:
        with pytest.raises(openai.AuthenticationError):
            await gateway.client(key=None).embeddings.create(model="openai/text-embedding-3-small", input="x")
        client = gateway.client()
        await client.embeddings.create(model="openai/text-embedding-3-small", input="x")
        with pytest.raises(openai.PermissionDeniedError, match="tts-1"):
            await client.audio.speech.create(model="openai/tts-1", voice="alloy", input="x")
        with pytest.raises(openai.PermissionDeniedError, match="whisper-1"):
            await client.audio.transcriptions.create(model="openai/whisper-1", file=("a.wav", b"x"))


async def test_an_exhausted_budget_refuses_media(media_url: str, tmp_path: Path) -> None:
    config = governed(media_url, tmp_path / "logs.db")
    config["governance"]["budgets"][0]["max_limit"] = IMAGE_COST / 2
    async with running(config) as gateway:
        client = gateway.client()
        await client.images.generate(model="openai/gpt-image-1", prompt="a cat")  # admitted, then overspent
        with pytest.raises(openai.APIStatusError) as refused:
            await client.embeddings.create(model="openai/text-embedding-3-small", input="x")
        assert refused.value.status_code == 402
