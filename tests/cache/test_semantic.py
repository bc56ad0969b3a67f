"""Semantic mode: a paraphrase is served the cached answer when its embedding is close enough, and not
when it is not (or when the request asks for closer matches). Embeddings come from an upstream-shaped
server whose vectors are words counted over a small vocabulary, so similarities are known exactly."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cache.conftest import Cached, cached_config
from tests.media_upstream import running
from tests.upstream import ANSWER, Upstream
from tests.upstream_base import Recorded, RecordingState, UpstreamApp, send_json

# Word -> dimension; a synonym shares its word's dimension, and every other word is ignored.
VOCABULARY = {"capital": 0, "france": 1, "french": 1, "city": 2, "weather": 3, "germany": 4}
DIMENSION = 5
ASKED = "What is the capital of France?"  # capital, france
PARAPHRASE = "Which city is the French capital?"  # capital, france, city: similarity 2/sqrt(6) = 0.816
UNRELATED = "What is the capital of Germany?"  # capital, germany: similarity 0.5


class WordEmbeddings(UpstreamApp):
    """``POST /v1/embeddings``: each input's word counts over `VOCABULARY`."""

    def __init__(self) -> None:
        self.state = RecordingState()

    async def handle(self, request: Recorded, receive: Any, send: Any) -> None:
        text = request.body["input"]
        vector = [0.0] * DIMENSION
        for word in re.findall(r"[a-z]+", text.lower()):
            if word in VOCABULARY:
                vector[VOCABULARY[word]] += 1.0
        body = {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": request.body["model"],
            "usage": {"prompt_tokens": 7, "total_tokens": 7},
        }
        await send_json(send, 200, body, [(b"content-type", b"application/json")])


def _vector_store(kind: str, folder: Path) -> dict[str, Any]:
    """Bifrost's ``vector_store`` entry for each store semantic mode can search."""
    if kind == "sqlite":  # the embedded default's backend (sqlite-vec), in the test's own file
        return {"enabled": True, "type": "sqlite", "config": {"path": str(folder / "vectors.db")}}
    if kind == "qdrant":  # qdrant-client's local mode: the same client code a Qdrant server gets
        return {"enabled": True, "type": "qdrant", "config": {"location": ":memory:"}}
    return {"enabled": True, "type": "memory"}


@pytest.fixture(scope="module")
def words() -> Iterator[tuple[WordEmbeddings, str]]:
    with running(WordEmbeddings()) as served:
        yield served


@pytest.fixture(params=["sqlite", "qdrant", "memory"])
def gateway(
    request: Any, cached_gateway: Any, upstream_url: str, words: tuple[WordEmbeddings, str], tmp_path: Path
) -> Cached:
    words[0].state.reset()
    data = cached_config(upstream_url, provider="words", embedding_model="bag-of-words", dimension=DIMENSION)
    data["providers"]["words"] = {
        "kind": "openai", "keys": [{"value": "sk-words"}], "network_config": {"base_url": words[1]},
    }  # fmt: skip
    data["vector_store"] = _vector_store(request.param, tmp_path)
    started: Cached = cached_gateway(data)
    return started


def ask(gateway: Cached, question: str, **headers: str) -> tuple[dict[str, Any], Any]:
    c = gateway.openai()
    raw = c.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": question}],
        extra_headers={"x-bf-cache-key": "semantic", **headers},
    )
    return raw.parse().to_dict(), raw.headers


def test_a_paraphrase_is_served_above_the_threshold(gateway: Cached, upstream: Upstream) -> None:
    first, _ = ask(gateway, ASKED)
    answer, headers = ask(gateway, PARAPHRASE)

    assert len(upstream.state.requests) == 1
    assert answer["choices"][0]["message"]["content"] == ANSWER
    debug = answer["extra_fields"]["cache_debug"]
    assert debug["cache_hit"] is True and debug["hit_type"] == "semantic"
    assert debug["similarity"] == pytest.approx(2 / math.sqrt(6)) and debug["threshold"] == 0.8
    assert (debug["provider_used"], debug["model_used"], debug["input_tokens"]) == (
        "words",
        "bag-of-words",
        7,
    )
    assert headers["x-bifrost-cache-hit-type"] == "semantic"
    assert float(headers["x-bifrost-cache-similarity"]) == pytest.approx(2 / math.sqrt(6), abs=1e-6)
    # The miss said what its lookup cost, as Bifrost does.
    assert first["extra_fields"]["cache_debug"]["cache_hit"] is False
    assert first["extra_fields"]["cache_debug"]["provider_used"] == "words"


def test_a_question_below_the_threshold_is_a_miss(gateway: Cached, upstream: Upstream) -> None:
    ask(gateway, ASKED)
    _, headers = ask(gateway, UNRELATED)
    assert headers["x-bifrost-cache-hit"] == "false"
    assert len(upstream.state.requests) == 2


def test_a_request_may_only_raise_the_threshold(gateway: Cached, upstream: Upstream) -> None:
    ask(gateway, ASKED)
    _, headers = ask(gateway, PARAPHRASE, **{"x-bf-cache-threshold": "0.9"})
    assert headers["x-bifrost-cache-hit"] == "false"  # 0.816 is below what this request asked for
    _, headers = ask(gateway, UNRELATED, **{"x-bf-cache-threshold": "0.1"})
    assert headers["x-bifrost-cache-hit"] == "false"  # a lower threshold than configured is not taken
    assert len(upstream.state.requests) == 3


def test_cache_type_chooses_the_lookup(gateway: Cached, upstream: Upstream, words: Any) -> None:
    ask(gateway, ASKED)
    _, headers = ask(gateway, PARAPHRASE, **{"x-bf-cache-type": "direct"})
    assert headers["x-bifrost-cache-hit"] == "false"  # direct only: the wording must be the same
    calls = len(words[0].state.requests)
    _, headers = ask(gateway, ASKED, **{"x-bf-cache-type": "direct"})
    assert headers["x-bifrost-cache-hit-type"] == "direct"
    assert len(words[0].state.requests) == calls  # nothing was embedded for it
    _, headers = ask(gateway, ASKED, **{"x-bf-cache-type": "semantic"})
    assert headers["x-bifrost-cache-hit-type"] == "semantic"


def test_an_embedding_failure_is_a_miss_not_an_error(
    cached_gateway: Any, upstream_url: str, upstream: Upstream, tmp_path: Path
) -> None:
    data = cached_config(upstream_url, provider="openai", embedding_model="status-500", dimension=DIMENSION)
    data["vector_store"] = _vector_store("memory", tmp_path)
    gateway: Cached = cached_gateway(data)
    for _ in range(2):
        answer, headers = ask(gateway, PARAPHRASE + " (unique)")
        assert answer["choices"][0]["message"]["content"] == ANSWER
    # Both served by the provider; the second found the first by its exact wording.
    assert [r.path for r in upstream.state.requests].count("/v1/chat/completions") == 1


def test_an_embedding_of_the_wrong_size_is_a_miss(
    cached_gateway: Any,
    upstream_url: str,
    upstream: Upstream,
    words: tuple[WordEmbeddings, str],
    tmp_path: Path,
) -> None:
    data = cached_config(
        upstream_url, provider="words", embedding_model="bag-of-words", dimension=DIMENSION + 1
    )
    data["providers"]["words"] = {
        "kind": "openai",
        "keys": [{"value": "sk"}],
        "network_config": {"base_url": words[1]},
    }
    data["vector_store"] = _vector_store("sqlite", tmp_path)
    gateway: Cached = cached_gateway(data)
    ask(gateway, ASKED)
    _, headers = ask(gateway, PARAPHRASE)
    assert headers["x-bifrost-cache-hit"] == "false"
    assert len(upstream.state.requests) == 2
