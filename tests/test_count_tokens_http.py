"""Token counting through the official SDK, under every prefix, pinned against tiktoken's own output."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import openai
import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.tokens.count import REPLY_PRIMING, TOKENS_PER_MESSAGE
from tests.conftest import gateway_config
from tests.schemas import assert_valid, count_tokens_validator
from tests.test_count_tokens import png
from tests.test_tokenizer import reference_encoding
from tests.upstream import Upstream

PREFIXES = ["", "/openai", "/litellm", "/langchain", "/pydanticai"]


def model_for(prefix: str, model: str = "gpt-4o") -> str:
    return model if prefix == "/openai" else f"openai/{model}"


def encoded(text: str, encoding: str = "o200k_base") -> list[int]:
    return list(reference_encoding(encoding).encode_ordinary(text))


def expected_messages(encoding: str, *messages: tuple[str, str]) -> tuple[int, list[int]]:
    """The cookbook count by tiktoken itself: text tokens plus 3 + role per message, plus 3 priming."""
    enc = reference_encoding(encoding)
    text = [t for _, content in messages for t in enc.encode_ordinary(content)]
    framing = sum(TOKENS_PER_MESSAGE + len(enc.encode_ordinary(role)) for role, _ in messages) + REPLY_PRIMING
    return len(text) + framing, text


INPUTS: list[tuple[str, Any, list[tuple[str, str]]]] = [
    ("plain", "Hello, world! How are you today?", [("user", "Hello, world! How are you today?")]),
    (
        "non-ascii",
        "Grüße aus Köln — 東京で会いましょう 🚀🎉",
        [("user", "Grüße aus Köln — 東京で会いましょう 🚀🎉")],
    ),
    ("special-token text", "say <|endoftext|> literally", [("user", "say <|endoftext|> literally")]),
    ("empty", "", [("user", "")]),
    (
        "multi-turn",
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "input_text", "text": "What is 2+2?"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "4"}]},
            {"role": "user", "content": "And 3+3?"},
        ],
        [("system", "You are terse."), ("user", "What is 2+2?"), ("assistant", "4"), ("user", "And 3+3?")],
    ),
]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(("name", "value", "messages"), INPUTS, ids=[i[0] for i in INPUTS])
async def test_exact_counts_through_the_sdk(
    gateway_url: str, prefix: str, name: str, value: Any, messages: list[tuple[str, str]]
) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway_url}{prefix}/v1", api_key="x", max_retries=0) as c:
        counted = await c.responses.input_tokens.count(model=model_for(prefix), input=value)
    body: dict[str, Any] = counted.model_dump(mode="json")
    assert_valid(count_tokens_validator(), body)
    total, tokens = expected_messages("o200k_base", *messages)
    assert body["input_tokens"] == total
    assert body["total_tokens"] == total
    assert body["tokens"] == tokens
    enc = reference_encoding("o200k_base")
    assert body["token_strings"] == [
        enc.decode_single_token_bytes(t).decode("utf-8", "replace") for t in tokens
    ]
    assert body["input_tokens_details"]["text_tokens"] == total  # no images or audio here
    assert body["extra_fields"]["is_estimate"] is False
    assert body["extra_fields"]["provider"] == "openai"


async def test_encoding_follows_the_model(gateway_url: str) -> None:
    async with openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key="x") as c:
        gpt4 = await c.responses.input_tokens.count(model="openai/gpt-4", input="tokenization differs")
    total, _ = expected_messages("cl100k_base", ("user", "tokenization differs"))
    assert gpt4.input_tokens == total
    assert gpt4.model_dump()["extra_fields"]["tokenizer"] == "cl100k_base"


async def test_instructions_and_tools_are_counted(gateway_url: str) -> None:
    tool = {"type": "function", "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}  # fmt: skip
    async with openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key="x") as c:
        bare = await c.responses.input_tokens.count(model="openai/gpt-4o", input="hi")
        full = await c.responses.input_tokens.count(
            model="openai/gpt-4o",
            input="hi",
            instructions="Be brief",
            tools=[tool],  # type: ignore[list-item]
        )
    # Instructions become a system message: 3 + "system" + its text. The tool adds the cookbook's framing
    # for o200k_base (7 per function, 3 for its properties, 3 per property, 12 once) to its two lines.
    instructions, _ = expected_messages("o200k_base", ("system", "Be brief"))
    tool_text = [t for line in ("get_weather:Weather for a city", "city:string:") for t in encoded(line)]
    tool_tokens = 7 + 3 + 3 + 12 + len(tool_text)
    assert bare.input_tokens == expected_messages("o200k_base", ("user", "hi"))[0]
    assert full.input_tokens == bare.input_tokens + instructions - REPLY_PRIMING + tool_tokens


async def test_images_each_detail(gateway_url: str) -> None:
    url = "data:image/png;base64," + base64.b64encode(png(1024, 1024)).decode()
    counts = {}
    async with openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key="x") as c:
        for detail in ("low", "high"):
            part = {"type": "input_image", "image_url": url, "detail": detail}
            items: Any = [{"role": "user", "content": [part]}]
            r = await c.responses.input_tokens.count(model="openai/gpt-4o", input=items)
            counts[detail] = r.model_dump()["input_tokens_details"]["image_tokens"]
    # OpenAI's published gpt-4o figures: low = 85; 1024x1024 high -> 768x768 -> 4 tiles -> 85 + 4 x 170.
    assert counts == {"low": 85, "high": 765}


async def test_tokens_can_be_switched_off_per_request(gateway_url: str) -> None:
    async with httpx.AsyncClient() as h:
        body_in = {"model": "openai/gpt-4o", "input": "hello there", "return_tokens": False}
        r = await h.post(gateway_url + "/v1/responses/input_tokens", json=body_in)
    body = r.json()
    assert_valid(count_tokens_validator(), body)
    assert "tokens" not in body
    assert "token_strings" not in body
    assert body["input_tokens"] == expected_messages("o200k_base", ("user", "hello there"))[0]


async def test_seed_003_messages_form(gateway_url: str) -> None:
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hello there"}],
            "instructions": "Be brief", "fallbacks": ["groq/llama"]}  # fmt: skip
    async with httpx.AsyncClient() as h:
        r = await h.post(gateway_url + "/v1/responses/input_tokens", json=body)
    assert r.status_code == 200, r.text
    expected, _ = expected_messages("o200k_base", ("system", "Be brief"), ("user", "hello there"))
    assert r.json()["input_tokens"] == expected


async def test_other_providers_are_flagged_estimates(gateway_url: str) -> None:
    async with httpx.AsyncClient() as h:
        r = await h.post(
            gateway_url + "/v1/responses/input_tokens", json={"model": "groq/llama-3.1-8b", "input": "hi"}
        )
    extra = r.json()["extra_fields"]
    assert extra["provider"] == "groq"
    assert extra["is_estimate"] is True
    assert extra["tokenizer"] == "o200k_base"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": "x"}, "model is required"),
        ({"model": "openai/gpt-4o"}, "input is required for responses"),
        ({"model": "openai/gpt-4o", "input": 42}, "input"),
        ({"model": "openai/gpt-4o", "input": [42]}, "input[0]"),
        ({"model": "openai/gpt-4o", "input": "x", "return_tokens": "no"}, "return_tokens must be a boolean"),
    ],
)
async def test_bad_input_is_400(gateway_url: str, body: dict[str, Any], message: str) -> None:
    async with httpx.AsyncClient() as h:
        r = await h.post(gateway_url + "/v1/responses/input_tokens", json=body)
    assert r.status_code == 400
    assert message in r.json()["error"]["message"]


async def test_provider_mode_forwards_to_the_upstream(upstream_url: str, upstream: Upstream) -> None:
    data = gateway_config(upstream_url)
    data["count_tokens"] = {"openai_mode": "provider"}
    app = create_app(GatewayConfig.from_dict(data))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as h,
    ):
        r = await h.post(
            "/v1/responses/input_tokens",
            json={"model": "openai/gpt-4o", "input": "hi", "return_tokens": True},
        )
    body = r.json()
    assert body["input_tokens"] == 42  # the upstream's answer
    assert body["extra_fields"]["is_estimate"] is False
    sent = upstream.state.requests[-1]
    assert sent.path == "/v1/responses/input_tokens"
    assert sent.body == {"model": "gpt-4o", "input": "hi"}  # gateway-only fields stripped
