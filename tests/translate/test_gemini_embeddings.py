"""OpenAI embeddings requests to Gemini's and the answers back (translate/gemini_embeddings.py)."""

from __future__ import annotations

import base64
import struct

import pytest

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.translate.gemini_embeddings import (
    embeddings_to_gemini,
    embeddings_to_gemini_response,
    gemini_to_embeddings,
    gemini_to_embeddings_request,
)


def test_a_list_goes_to_batch_with_every_option() -> None:
    body = {"input": ["a", "b"], "dimensions": 3, "task_type": "RETRIEVAL_QUERY", "title": "t"}
    method, request = embeddings_to_gemini(body, "models/gemini-embedding-001")
    assert method == "batchEmbedContents"
    options = {"outputDimensionality": 3, "taskType": "RETRIEVAL_QUERY", "title": "t"}
    assert request == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, **options},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, **options},
    ]}  # fmt: skip


def test_token_arrays_are_refused() -> None:
    with pytest.raises(BifrostError, match="not token arrays") as refused:
        embeddings_to_gemini({"input": [[1, 2]]}, "m")
    assert refused.value.status_code == 400


def test_base64_answers_are_little_endian_float32_and_counts_are_taken_when_reported() -> None:
    upstream = {"embeddings": [{"values": [0.5, -1.0], "statistics": {"tokenCount": 4}}]}
    body, estimated = gemini_to_embeddings(
        upstream, {"input": ["hi"], "encoding_format": "base64"}, "m", "gemini"
    )
    assert struct.unpack("<2f", base64.b64decode(body["data"][0]["embedding"])) == (0.5, -1.0)
    assert (body["usage"], estimated) == ({"prompt_tokens": 4, "total_tokens": 4}, False)


@pytest.mark.parametrize("upstream", [{}, {"embeddings": [{"values": ["x"]}]}, {"embeddings": [7]}])
def test_malformed_answers_are_a_bad_response(upstream: dict[str, object]) -> None:
    with pytest.raises(BifrostError) as failed:
        gemini_to_embeddings(upstream, {"input": "x"}, "m", "gemini")
    assert failed.value.status_code == 502 and failed.value.error_type == "provider_bad_response"


# -- Google's requests on /genai, to OpenAI's and back ----------------------------------------------------


def test_vectors_come_back_in_input_order_with_the_reported_usage() -> None:
    answer = {
        "data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1.0]}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    assert embeddings_to_gemini_response(answer, "batchEmbedContents", 2, "openai") == {
        "embeddings": [{"values": [1.0]}, {"values": [2.0]}],
        "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
    }


@pytest.mark.parametrize(
    "answer",
    [{}, {"data": [{"index": 0, "embedding": [1.0]}]}, {"data": [{"embedding": "AAAA"}, {"embedding": [1]}]}],
)
def test_an_answer_without_a_vector_of_numbers_per_input_is_a_502(answer: dict[str, object]) -> None:
    with pytest.raises(BifrostError) as refused:
        embeddings_to_gemini_response(answer, "batchEmbedContents", 2, "openai")
    assert refused.value.status_code == 502


def test_vertex_style_options_are_read_too() -> None:
    body = {"content": {"parts": [{"text": "x"}]}, "embedContentConfig": {"outputDimensionality": 8}}
    request = gemini_to_embeddings_request(body, "embedContent", "text-embedding-004")
    assert request == {
        "model": "text-embedding-004",
        "input": "x",
        "encoding_format": "float",
        "dimensions": 8,
    }
