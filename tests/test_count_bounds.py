"""Token counting stays bounded on huge inputs (issue 11): exact piecewise counts, no token lists above
a size, and the event loop keeps answering while a large count runs."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.tokens.count import MAX_RETURN_TOKENS_CHARS, text_pieces
from bifrost_asgi.tokens.encodings import get_encoding

PARTS = ["hello", "World", " ", "  ", "\n", "\n\n", " \n", "東京", "123", "4567", "'s", "don't", ",", ".",
         "!?", "\t", "é", "ǅ", "ÀB", "x̃", "  \n  ", "HELLO", "_", "—", "🚀", "\r\n"]  # fmt: skip


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base", "p50k_base"])
def test_counting_in_pieces_is_exact(encoding: str) -> None:
    enc = get_encoding(encoding)
    rng = random.Random(encoding)
    cuts = 0
    for _ in range(200):
        text = "".join(rng.choice(PARTS) for _ in range(rng.randint(50, 2000)))
        pieces = list(text_pieces(text, rng.randint(5, 200)))
        assert "".join(pieces) == text
        assert sum(len(enc.encode_ordinary(p)) for p in pieces) == len(enc.encode_ordinary(text))
        cuts += len(pieces) - 1
    assert cuts > 500  # the texts really were cut, many times


@pytest.fixture
async def client() -> httpx.AsyncClient:
    app = create_app(GatewayConfig.from_dict({"providers": {"openai": {"keys": [{"value": "sk-unused"}]}}}))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=120)


async def test_tokens_are_not_returned_for_a_huge_input(client: httpx.AsyncClient) -> None:
    text = "word " * (MAX_RETURN_TOKENS_CHARS // 5 + 1)
    r = await client.post("/v1/responses/input_tokens", json={"model": "openai/gpt-4o", "input": text})
    assert r.status_code == 400 and r.json()["error"]["param"] == "return_tokens"
    counted = await client.post(
        "/v1/responses/input_tokens", json={"model": "openai/gpt-4o", "input": text, "return_tokens": False}
    )
    assert counted.status_code == 200
    assert counted.json()["input_tokens"] == len(get_encoding("o200k_base").encode_ordinary(text)) + 3 + 1 + 3


async def test_the_gateway_answers_while_a_large_count_runs(client: httpx.AsyncClient) -> None:
    text = "The gateway counts every token, 東京 🚀.\n" * 400_000  # ~16 MB of text
    body = {"model": "openai/gpt-4o", "input": text, "return_tokens": False}
    count = asyncio.ensure_future(client.post("/v1/responses/input_tokens", json=body))
    await asyncio.sleep(0.05)  # the count is under way
    health = await client.get("/health")
    assert health.status_code == 200
    assert not count.done()  # answered while the count was still running
    assert (await count).status_code == 200
