"""Gemini's ``:embedContent`` and ``:batchEmbedContents`` on the genai dialect: Google's ``google-genai``
SDK, unmodified, through ``/genai`` (and a framework prefix) to an OpenAI-shaped and a Gemini-shaped
upstream; the embeddings surface's checks, pricing and log record; errors in Google's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.gateway import Gateway
from tests.conftest import LiveServer, serve, started
from tests.gemini_upstream import genai_client as client
from tests.media_upstream import (
    EMBED_USAGE,
    GEMINI_COUNTED,
    GeminiEmbedUpstream,
    MediaUpstream,
    running,
    vector,
)

Obj = dict[str, Any]
X: Obj = {"parts": [{"text": "x"}]}  # a content to embed
KEY = "sk-bf-" + "e" * 43
OPENAI_EMBED = "openai/text-embedding-3-small"
GECKO = "text-embedding-004"


@pytest.fixture(scope="module")
def media() -> Iterator[tuple[MediaUpstream, str]]:
    with running(MediaUpstream()) as served:
        yield served


@pytest.fixture(scope="module")
def gemini() -> Iterator[tuple[GeminiEmbedUpstream, str]]:
    with running(GeminiEmbedUpstream()) as served:
        yield served


def config(media_url: str, gemini_url: str, **extra: Any) -> Obj:
    fast = {"max_retries": 0}
    return {
        "providers": {
            "openai": {"keys": [{"value": "sk-media"}], "network_config": {"base_url": media_url, **fast}},
            "gemini": {"keys": [{"value": "gm-key"}], "network_config": {"base_url": gemini_url, **fast}},
        },
        **extra,
    }


@pytest.fixture(scope="module")
def gateway(
    media: tuple[MediaUpstream, str], gemini: tuple[GeminiEmbedUpstream, str]
) -> Iterator[LiveServer]:
    live = serve(create_app(GatewayConfig.from_dict(config(media[1], gemini[1]))))
    yield live
    live.stop()


@pytest.fixture
def openai_up(media: tuple[MediaUpstream, str]) -> MediaUpstream:
    media[0].state.reset()
    return media[0]


@pytest.fixture
def gemini_up(gemini: tuple[GeminiEmbedUpstream, str]) -> GeminiEmbedUpstream:
    gemini[0].state.reset()
    return gemini[0]


def values(answer: types.EmbedContentResponse) -> list[list[float]]:
    assert answer.embeddings is not None
    return [e.values or [] for e in answer.embeddings]


# -- through the SDK -------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/genai", "/langchain"])
def test_the_sdk_embeds_several_contents_through_an_openai_model(
    gateway: LiveServer, openai_up: MediaUpstream, prefix: str
) -> None:
    cfg = types.EmbedContentConfig(output_dimensionality=3, task_type="RETRIEVAL_DOCUMENT")
    answer = client(gateway.url, prefix).models.embed_content(
        model=OPENAI_EMBED, contents=["first text", "second text"], config=cfg
    )
    assert values(answer) == [vector(0, 3), vector(1, 3)]
    assert answer.usage_metadata is not None and answer.usage_metadata.prompt_token_count == 8
    (seen,) = openai_up.state.requests
    assert seen.path == "/v1/embeddings"
    assert seen.headers["authorization"] == "Bearer sk-media"  # the gateway's key, never the client's
    # Gemini's task type means nothing to OpenAI, which refuses unknown parameters: it stays behind.
    assert seen.body == {
        "model": "text-embedding-3-small", "input": ["first text", "second text"], "encoding_format": "float",
        "dimensions": 3,
    }  # fmt: skip


def test_the_sdk_embeds_one_content_through_an_openai_model(
    gateway: LiveServer, openai_up: MediaUpstream
) -> None:
    answer = client(gateway.url).models.embed_content(model=OPENAI_EMBED, contents="just one")
    assert values(answer) == [vector(0, 4)]
    assert openai_up.state.requests[0].body["input"] == ["just one"]  # the SDK always sends a batch


def test_the_sdk_embeds_through_a_gemini_model(gateway: LiveServer, gemini_up: GeminiEmbedUpstream) -> None:
    # (The SDK folds several contents into one for models named gemini-embedding-*: another name here.)
    cfg = types.EmbedContentConfig(output_dimensionality=2, task_type="RETRIEVAL_QUERY", title="T")
    answer = client(gateway.url).models.embed_content(model=GECKO, contents=["a b", "c"], config=cfg)
    assert values(answer) == [vector(0, 2), vector(1, 2)]
    # Gemini reported no usage: the gateway's estimate (4 bytes a token, at least 1 per text).
    assert answer.usage_metadata is not None and answer.usage_metadata.prompt_token_count == 2
    (seen,) = gemini_up.state.requests
    assert seen.path == f"/v1beta/models/{GECKO}:batchEmbedContents"
    assert seen.headers["x-goog-api-key"] == "gm-key"
    options = {"outputDimensionality": 2, "taskType": "RETRIEVAL_QUERY", "title": "T"}
    assert seen.body == {
        "requests": [
            {"model": f"models/{GECKO}", "content": {"parts": [{"text": "a b"}]}, **options},
            {"model": f"models/{GECKO}", "content": {"parts": [{"text": "c"}]}, **options},
        ]
    }


def test_a_gemini_model_reports_its_own_usage(gateway: LiveServer, gemini_up: GeminiEmbedUpstream) -> None:
    body = {"content": X, "taskType": "CLUSTERING"}
    resp = httpx.post(f"{gateway.url}/genai/v1beta/models/{GEMINI_COUNTED}:embedContent", json=body)
    assert resp.json() == {
        "embedding": {"values": vector(0, 4)},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
    }
    (seen,) = gemini_up.state.requests
    assert seen.path.endswith(":embedContent") and seen.body == {
        **body,
        "content": {"parts": [{"text": "x"}]},
    }


def test_embed_content_answers_one_embedding(gateway: LiveServer, openai_up: MediaUpstream) -> None:
    body = {"content": {"parts": [{"text": "one"}, {"text": "two"}]}, "outputDimensionality": 2}
    resp = httpx.post(f"{gateway.url}/genai/v1beta/models/{OPENAI_EMBED}:embedContent", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "embedding": {"values": vector(0, 2)},
        "usageMetadata": {"promptTokenCount": EMBED_USAGE["prompt_tokens"], "totalTokenCount": 8},
    }
    assert float(resp.headers["x-bifrost-cost-usd"]) > 0
    assert resp.headers["x-bifrost-request-type"] == "embedding"
    assert openai_up.state.requests[0].body["input"] == "one\ntwo"  # a content's parts are one text


# -- errors, in Google's shape --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        ("embedContent", {"content": {"parts": [{"inlineData": {"data": "AA=="}}]}}, "only text parts"),
        ("embedContent", {"content": {}}, "content must have parts"),
        ("embedContent", {"content": {"parts": [{"text": ""}]}}, "must not be an empty string"),
        ("embedContent", {"content": X, "outputDimensionality": "big"}, "dimensions"),
        ("batchEmbedContents", {"requests": []}, "non-empty array"),
        ("batchEmbedContents", {"requests": [{"model": "models/other", "content": X}]},
         "is not the model of the path"),
        ("batchEmbedContents", {"requests": [{"content": X, "taskType": "A"},
                                             {"content": {"parts": [{"text": "y"}]}, "taskType": "B"}]},
         "the same taskType"),
    ],
)  # fmt: skip
def test_a_request_that_cannot_be_embedded_is_a_google_400(
    gateway: LiveServer, openai_up: MediaUpstream, method: str, body: Obj, message: str
) -> None:
    resp = httpx.post(f"{gateway.url}/genai/v1beta/models/{OPENAI_EMBED}:{method}", json=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT" and message in error["message"]
    assert openai_up.state.requests == []


def test_an_upstream_failure_reaches_the_sdk_as_googles_error(
    gateway: LiveServer, openai_up: MediaUpstream
) -> None:
    with pytest.raises(errors.ServerError) as raised:
        client(gateway.url).models.embed_content(model="openai/status-503", contents="x")
    assert raised.value.code == 503 and raised.value.status == "UNAVAILABLE"


def test_an_answer_without_a_vector_per_input_is_a_502(gateway: LiveServer, openai_up: MediaUpstream) -> None:
    with pytest.raises(errors.ServerError) as raised:
        client(gateway.url).models.embed_content(model="openai/html-embeddings", contents="x")
    assert raised.value.code == 502


# -- governance: charged and logged like /v1/embeddings ---------------------------------------------------


@pytest.fixture
async def governed(
    media: tuple[MediaUpstream, str], gemini: tuple[GeminiEmbedUpstream, str], tmp_path: Path
) -> AsyncIterator[tuple[Any, Gateway]]:
    vk = {"id": "vk", "name": "embed", "value": KEY, "allow_all_providers": True}
    extra = {
        "client": {"enforce_auth_on_inference": True},
        "governance": {
            "store": {"type": "memory"},
            "counters": {"type": "memory"},
            "logs": {"path": str(tmp_path / "logs.db")},
            "virtual_keys": [vk],
            "budgets": [{"id": "b", "max_limit": 10, "reset_duration": "1M", "virtual_key_id": "vk"}],
        },
    }
    async with started(config(media[1], gemini[1], **extra)) as running:
        yield running


def async_client(gw_app: Any, key: str) -> genai.Client:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=gw_app), base_url="http://gw", timeout=30)
    options = types.HttpOptions(base_url="http://gw/genai", httpx_async_client=http)
    return genai.Client(api_key=key, http_options=options)


async def test_embeddings_are_authorized_charged_and_logged(
    governed: tuple[Any, Gateway], openai_up: MediaUpstream
) -> None:
    app, gw = governed
    with pytest.raises(errors.ClientError) as raised:
        await async_client(app, "not-a-key").aio.models.embed_content(model=OPENAI_EMBED, contents="x")
    assert raised.value.code in (401, 403)
    await async_client(app, KEY).aio.models.embed_content(model=OPENAI_EMBED, contents=["a", "b"])
    assert gw.logs is not None and gw.governance is not None
    await gw.logs.flush()
    entries = (await gw.logs.store.search({"status": ["success"]}))["logs"]
    (entry,) = entries
    assert entry["object"] == "embedding" and entry["virtual_key_id"] == "vk"
    assert entry["input_tokens"] == 8 and entry["usage_estimated"] is False
    assert entry["cost"] == pytest.approx(8 * 2e-8)  # text-embedding-3-small
    key = await gw.governance.keys.get("vk")
    assert key is not None
    budget = next(row for row in await gw.governance.usage(key) if row["kind"] == "budget")
    assert budget["used"] == pytest.approx(8 * 2e-8) and budget["reserved"] == 0
