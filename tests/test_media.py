"""Embeddings, images, speech and transcription end to end: the official openai SDK, unmodified, against
a live gateway under uvicorn, in front of upstream-shaped servers for openai, Azure (deployments) and
Gemini (embeddings), and the offline mock. What reached the upstreams is checked from their records.
"""

from __future__ import annotations

import base64
import struct
import time
import warnings
from collections.abc import Iterator
from typing import Any, cast

import httpx
import openai
import orjson
import pytest

from bifrost_asgi import GatewayConfig, create_app
from tests.conftest import LiveServer, serve
from tests.media_upstream import (
    AUDIO,
    AUDIO_PIECES,
    EMBED_USAGE,
    GEMINI_COUNTED,
    PIECE_DELAY,
    PNG_B64,
    TEXT_ANSWERS,
    TRANSCRIPT,
    AzureMediaShim,
    GeminiEmbedUpstream,
    MediaUpstream,
    packed,
    running,
    vector,
)

Obj = dict[str, Any]
AUDIO_FILE = b"RIFF" + bytes(range(256)) * 64 + b"--not-a-boundary\r\n"  # bytes that must arrive unchanged
DEPLOYMENTS = {"text-embedding-3-small": "emb-deploy", "dall-e-3": "img-deploy", "tts-1": "tts-deploy",
               "whisper-1": "stt-deploy"}  # fmt: skip
# (base path, model) pairs every SDK call is tried with: /v1 with provider/model, /openai/v1 bare (openai).
EMBEDDERS = [
    ("/v1", "openai/text-embedding-3-small"),
    ("/openai/v1", "text-embedding-3-small"),
    ("/v1", "azure/text-embedding-3-small"),
    ("/openai/v1", "azure/text-embedding-3-small"),
    ("/v1", "gemini/gemini-embedding-001"),
    ("/v1", "mock/mock-embed"),
]


@pytest.fixture(scope="module")
def media() -> Iterator[tuple[MediaUpstream, str]]:
    with running(MediaUpstream()) as served:
        yield served


@pytest.fixture(scope="module")
def azure(media: tuple[MediaUpstream, str]) -> Iterator[tuple[AzureMediaShim, str]]:
    with running(AzureMediaShim(media[0])) as served:
        yield served


@pytest.fixture(scope="module")
def gemini() -> Iterator[tuple[GeminiEmbedUpstream, str]]:
    with running(GeminiEmbedUpstream()) as served:
        yield served


def media_config(media_url: str, azure_url: str, gemini_url: str) -> Obj:
    fast = {"max_retries": 1, "retry_backoff_initial": 1, "retry_backoff_max": 5}
    azure_key = {"endpoint": azure_url, "deployments": DEPLOYMENTS, "api_version": "2024-10-21"}
    return {
        "providers": {
            "openai": {"keys": [{"value": "sk-media"}], "network_config": {"base_url": media_url, **fast}},
            "azure": {"keys": [{"value": "az-key", "azure_key_config": azure_key}]},
            "gemini": {"keys": [{"value": "gm-key"}], "network_config": {"base_url": gemini_url, **fast}},
            "deepseek": {"keys": [{"value": "sk-ds"}], "network_config": {"base_url": media_url}},
            "mock": {},
        }
    }


@pytest.fixture(scope="module")
def gateway(
    media: tuple[MediaUpstream, str],
    azure: tuple[AzureMediaShim, str],
    gemini: tuple[GeminiEmbedUpstream, str],
) -> Iterator[LiveServer]:
    live = serve(create_app(GatewayConfig.from_dict(media_config(media[1], azure[1], gemini[1]))))
    yield live
    live.stop()


@pytest.fixture
def upstream(media: tuple[MediaUpstream, str], azure: tuple[AzureMediaShim, str]) -> MediaUpstream:
    media[0].state.reset()
    azure[0].seen.clear()
    return media[0]


def sdk(gateway: LiveServer, base: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + base, api_key="sk-anything", max_retries=0)


def extra(obj: Any) -> Obj:
    fields: Obj = obj.model_extra["extra_fields"]
    return fields


def images_of(resp: Any) -> list[Any]:
    data: list[Any] = resp.data
    return data


def floats32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


# -- embeddings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "model"), EMBEDDERS)
def test_embeddings_float_and_the_sdks_default_base64(
    gateway: LiveServer, upstream: MediaUpstream, base: str, model: str
) -> None:
    client = sdk(gateway, base)
    floats = client.embeddings.create(model=model, input=["one", "two"], encoding_format="float")
    decoded = client.embeddings.create(model=model, input="one")  # the SDK asks for base64 and decodes it
    assert [d.index for d in floats.data] == [0, 1]
    assert extra(floats)["request_type"] == "embedding"
    if model.startswith("mock/"):
        assert decoded.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
        return
    assert [d.embedding for d in floats.data] == [vector(0, 4), vector(1, 4)]
    assert decoded.data[0].embedding == floats32(vector(0, 4))
    assert extra(decoded)["provider"] == (model.partition("/")[0] if "/" in model else "openai")


def test_base64_embeddings_pass_through_untouched_with_usage_and_cost(
    gateway: LiveServer, upstream: MediaUpstream
) -> None:
    raw = sdk(gateway).embeddings.with_raw_response.create(
        model="openai/text-embedding-3-small", input=["a", "b"], encoding_format="base64", dimensions=3
    )
    body = orjson.loads(raw.content)
    assert [d["embedding"] for d in body["data"]] == [packed(vector(0, 3)), packed(vector(1, 3))]
    sent = upstream.state.requests[-1].body
    assert sent == {"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "base64",
                    "dimensions": 3}  # fmt: skip
    # text-embedding-3-small: 2e-8 per input token.
    assert body["usage"] == {
        **EMBED_USAGE,
        "cost": {**body["usage"]["cost"], "total_cost": pytest.approx(8 * 2e-8)},
    }
    assert float(raw.headers["x-bifrost-cost-usd"]) == pytest.approx(8 * 2e-8)
    assert raw.headers["x-bifrost-request-type"] == "embedding"
    assert body["extra_fields"]["resolved_model_used"] == "text-embedding-3-small"


def test_azure_embeddings_go_to_the_deployment(
    gateway: LiveServer, azure: tuple[AzureMediaShim, str]
) -> None:
    azure[0].seen.clear()
    resp = sdk(gateway).embeddings.create(
        model="azure/text-embedding-3-small", input="x", encoding_format="float"
    )
    assert azure[0].seen == [("emb-deploy", "embeddings", "api-version=2024-10-21")]
    assert extra(resp)["model_deployment"] == "emb-deploy"


def test_gemini_embeddings_translate_dimensions_and_usage(
    gateway: LiveServer, gemini: tuple[GeminiEmbedUpstream, str]
) -> None:
    app = gemini[0]
    app.state.reset()
    client = sdk(gateway)
    batch = client.embeddings.create(
        model="gemini/gemini-embedding-001", input=["abcdefgh", "ijkl"], dimensions=2, encoding_format="float"
    )
    single = client.embeddings.create(model=f"gemini/{GEMINI_COUNTED}", input="abc", encoding_format="float")
    first, second = app.state.requests
    assert first.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert first.body == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "abcdefgh"}]},
         "outputDimensionality": 2},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "ijkl"}]},
         "outputDimensionality": 2},
    ]}  # fmt: skip
    assert second.path == f"/v1beta/models/{GEMINI_COUNTED}:embedContent"
    assert second.body == {"content": {"parts": [{"text": "abc"}]}}
    assert [d.embedding for d in batch.data] == [vector(0, 2), vector(1, 2)]
    # No usage from Gemini: 4 bytes a token, and the answer says it is an estimate.
    assert (batch.usage.prompt_tokens, extra(batch)["usage_is_estimate"]) == (3, True)
    assert single.usage.prompt_tokens == 7 and "usage_is_estimate" not in extra(single)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "input is required for embeddings"),
        ("", "input must not be an empty string"),
        ([], "input must not be an empty array"),
        (["x"] * 2049, "input has 2049 items; at most 2048 are allowed"),
        ([{"text": "x"}], "input[0] must be a string or an array of token ids"),
        (["ok", 7], "input[1] must be a string or an array of token ids"),
        ([[1, 2], [-1]], "input[1] must be a non-empty array of token ids"),
        (12, "input must be a string, an array of strings"),
    ],
)
def test_embedding_input_limits_are_a_clear_400(
    gateway: LiveServer, upstream: MediaUpstream, value: object, message: str
) -> None:
    body = {"model": "openai/text-embedding-3-small"} | ({} if value is None else {"input": value})
    resp = httpx.post(gateway.url + "/v1/embeddings", json=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert message in error["message"] and error["param"] == "input"
    assert upstream.state.requests == []


def test_token_arrays_are_accepted(gateway: LiveServer, upstream: MediaUpstream) -> None:
    resp = sdk(gateway).embeddings.create(model="openai/text-embedding-3-small", input=[[1, 2], [3]])
    assert len(resp.data) == 2 and upstream.state.requests[-1].body["input"] == [[1, 2], [3]]


# -- images ---------------------------------------------------------------------------------------------


def test_images_generate_b64_json_priced_by_image_tokens(
    gateway: LiveServer, upstream: MediaUpstream
) -> None:
    raw = sdk(gateway).images.with_raw_response.generate(model="openai/gpt-image-1", prompt="a cat", n=2)
    image = raw.parse()
    assert [d.b64_json for d in images_of(image)] == [PNG_B64, PNG_B64]
    # gpt-image-1: 40 text tokens at 5e-6, 10 image tokens at 1e-5 in, 4160 image tokens at 4e-5 out.
    cost = 40 * 5e-6 + 10 * 1e-5 + 4160 * 4e-5
    assert float(raw.headers["x-bifrost-cost-usd"]) == pytest.approx(cost)
    assert image.usage is not None and (image.usage.model_extra or {})["cost"]["total_cost"] == pytest.approx(
        cost
    )
    assert extra(image)["request_type"] == "image_generation"
    assert upstream.state.requests[-1].body == {"model": "gpt-image-1", "prompt": "a cat", "n": 2}


def test_azure_dalle_urls_priced_per_image_of_the_asked_size(
    gateway: LiveServer, upstream: MediaUpstream, azure: tuple[AzureMediaShim, str]
) -> None:
    raw = sdk(gateway).images.with_raw_response.generate(
        model="azure/dall-e-3", prompt="a cat", size="1024x1792", quality="hd"
    )
    assert [d.url for d in images_of(raw.parse())] == ["https://images.invalid/1.png"]
    # azure/hd/1024-x-1792/dall-e-3: 7.19343e-08 a pixel.
    assert float(raw.headers["x-bifrost-cost-usd"]) == pytest.approx(1024 * 1792 * 7.19343e-08)
    assert azure[0].seen[-1][:2] == ("img-deploy", "images/generations")


def test_mock_images_and_an_escaped_usage_in_a_prompt(gateway: LiveServer, upstream: MediaUpstream) -> None:
    images = images_of(sdk(gateway).images.generate(model="mock/mock-image", prompt="a dog", n=3))
    assert len(images) == 3 and base64.b64decode(images[0].b64_json or "").startswith(b"\x89PNG")
    # An answer without usage whose text mentions one is passed on intact.
    dalle = sdk(gateway).images.generate(model="openai/dall-e-2", prompt="x", response_format="b64_json")
    assert images_of(dalle)[0].revised_prompt == 'a "usage": {} cat' and dalle.usage is None


def test_images_edit_forwards_the_upload(gateway: LiveServer, upstream: MediaUpstream) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    edited = sdk(gateway).images.edit(
        model="openai/gpt-image-1", image=("in.png", png, "image/png"), prompt="make it blue", n=1
    )
    assert images_of(edited)[0].b64_json == PNG_B64
    form = upstream.state.forms[-1]
    assert form.fields["model"] == ["gpt-image-1"] and form.fields["prompt"] == ["make it blue"]
    assert form.files["image"] == [("in.png", png)]


def test_images_on_a_provider_without_them_is_a_400_and_fallbacks_apply(
    gateway: LiveServer, upstream: MediaUpstream
) -> None:
    with pytest.raises(openai.BadRequestError, match="image_generation is not served by provider gemini"):
        sdk(gateway).images.generate(model="gemini/imagen-3.0-generate-001", prompt="x")
    served = sdk(gateway).images.generate(
        model="gemini/imagen-3.0-generate-001", prompt="x", extra_body={"fallbacks": ["openai/gpt-image-1"]}
    )
    assert extra(served)["provider"] == "openai" and extra(served)["routing_info"]["is_fallback"] is True
    with pytest.raises(openai.BadRequestError, match="embedding is not served by provider deepseek"):
        sdk(gateway).embeddings.create(model="deepseek/deepseek-chat", input="x")


# -- speech ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["openai/tts-1", "azure/tts-1"])
def test_speech_create_and_streamed_as_it_arrives(
    gateway: LiveServer, upstream: MediaUpstream, model: str
) -> None:
    client = sdk(gateway)
    whole = client.audio.speech.create(model=model, voice="alloy", input="Hello there")
    assert whole.content == AUDIO and whole.response.headers["content-type"] == "audio/mpeg"
    upstream.state.reset()
    started = time.perf_counter()
    with client.audio.speech.with_streaming_response.create(model=model, voice="alloy", input="Hi") as resp:
        arrived = []
        for chunk in resp.iter_bytes():
            arrived.append((time.perf_counter(), chunk))
    assert b"".join(c for _, c in arrived) == AUDIO
    # The first piece reached the client before the upstream had written the last one.
    assert arrived[0][0] < upstream.state.speech_sent[-1]
    assert upstream.state.speech_sent[-1] - started >= PIECE_DELAY * (len(AUDIO_PIECES) - 1)
    assert resp.headers["x-bifrost-request-type"] == "speech"
    upstream_model = "tts-deploy" if model.startswith("azure/") else "tts-1"
    assert upstream.state.requests[-1].body == {"model": upstream_model, "voice": "alloy", "input": "Hi"}


def test_speech_sse_passes_events_with_extra_fields(gateway: LiveServer, upstream: MediaUpstream) -> None:
    body = {"model": "openai/gpt-4o-mini-tts", "voice": "alloy", "input": "Hello", "stream_format": "sse"}
    resp = httpx.post(gateway.url + "/v1/audio/speech", json=body)
    assert resp.headers["content-type"] == "text/event-stream"
    events = [line[6:] for line in resp.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    parsed = [orjson.loads(e) for e in events[:-1]]
    assert [p["type"] for p in parsed] == ["speech.audio.delta"] * len(AUDIO_PIECES) + ["speech.audio.done"]
    assert b"".join(base64.b64decode(p["audio"]) for p in parsed[:-1]) == AUDIO
    assert all(p["extra_fields"]["request_type"] == "speech_stream" for p in parsed)
    # gpt-4o-mini-tts: 5 text tokens at 6e-7, 40 audio tokens at 1.2e-5.
    assert parsed[-1]["usage"]["cost"]["total_cost"] == pytest.approx(5 * 6e-7 + 40 * 1.2e-5)


def test_a_speech_event_stream_without_its_done_event_ends_in_an_error(
    gateway: LiveServer, upstream: MediaUpstream
) -> None:
    body = {"model": "openai/short-speech", "voice": "alloy", "input": "Hello", "stream_format": "sse"}
    resp = httpx.post(gateway.url + "/v1/audio/speech", json=body)
    events = [line[6:] for line in resp.text.split("\n\n") if line.startswith("data: ")]
    assert "[DONE]" not in events
    last = orjson.loads(events[-1])
    assert last["error"]["message"] == "provider openai ended the stream before its final event"


def test_speech_cut_off_upstream_aborts_the_response(gateway: LiveServer, upstream: MediaUpstream) -> None:
    body = {"model": "openai/broken-speech", "voice": "alloy", "input": "Hello"}
    received = b""
    with (
        pytest.raises(httpx.HTTPError),
        httpx.stream("POST", gateway.url + "/v1/audio/speech", json=body) as resp,
    ):
        assert resp.status_code == 200
        for chunk in resp.iter_bytes():
            received += chunk
    assert received == b"".join(AUDIO_PIECES[:2])  # what arrived, and then no clean end


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"voice": "alloy"}, "input is required for speech completion"),
        ({"input": "hi"}, "voice is required for speech completion"),
        ({"input": "hi", "voice": "alloy", "stream_format": "mp3"}, 'stream_format must be "audio" or "sse"'),
    ],
)
def test_speech_validation(gateway: LiveServer, upstream: MediaUpstream, body: Obj, message: str) -> None:
    resp = httpx.post(gateway.url + "/v1/audio/speech", json={"model": "openai/tts-1", **body})
    assert resp.status_code == 400 and resp.json()["error"]["message"] == message


def test_mock_speech_formats(gateway: LiveServer) -> None:
    client = sdk(gateway)
    mp3 = client.audio.speech.create(model="mock/tts", voice="alloy", input="Hello")
    wav = client.audio.speech.create(model="mock/tts", voice="alloy", input="Hello", response_format="wav")
    assert mp3.content[:2] == b"\xff\xfb" and wav.content[:4] == b"RIFF"
    assert wav.response.headers["content-type"] == "audio/wav"
    with pytest.raises(openai.BadRequestError, match="mock speaks mp3, wav and pcm"):
        client.audio.speech.create(model="mock/tts", voice="alloy", input="x", response_format="opus")


# -- transcriptions and translations --------------------------------------------------------------------


@pytest.mark.parametrize("base", ["/v1", "/openai/v1"])
def test_transcriptions_forward_the_upload_byte_for_byte(
    gateway: LiveServer, upstream: MediaUpstream, base: str
) -> None:
    model = "openai/whisper-1" if base == "/v1" else "whisper-1"
    raw = sdk(gateway, base).audio.transcriptions.with_raw_response.create(
        model=model, file=("talk.wav", AUDIO_FILE, "audio/wav"), language="en"
    )
    transcript = raw.parse()
    assert transcript.text == TRANSCRIPT
    form = upstream.state.forms[-1]
    assert form.files == {"file": [("talk.wav", AUDIO_FILE)]}
    assert form.fields == {"model": ["whisper-1"], "language": ["en"]}
    # whisper-1: 3 seconds at 1e-4 a second.
    assert float(raw.headers["x-bifrost-cost-usd"]) == pytest.approx(3e-4)
    assert extra(transcript)["request_type"] == "transcription"


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_text_transcripts_are_passed_on_as_text(
    gateway: LiveServer, upstream: MediaUpstream, fmt: str
) -> None:
    raw = sdk(gateway).audio.transcriptions.with_raw_response.create(
        model="openai/gpt-4o-transcribe",
        file=("a.mp3", AUDIO_FILE),
        response_format=cast(Any, fmt),
    )
    assert raw.content == TEXT_ANSWERS[fmt].encode()
    assert raw.headers["content-type"] == "text/plain; charset=utf-8"
    assert raw.headers["x-bifrost-provider"] == "openai"


def test_verbose_json_and_token_usage(gateway: LiveServer, upstream: MediaUpstream) -> None:
    raw = sdk(gateway).audio.transcriptions.with_raw_response.create(
        model="openai/gpt-4o-transcribe", file=("a.mp3", AUDIO_FILE), response_format="verbose_json"
    )
    body = orjson.loads(raw.content)
    assert (body["task"], body["duration"], body["text"]) == ("transcribe", 3.0, TRANSCRIPT)
    # gpt-4o-transcribe: 90 audio tokens at 2.5e-6, 10 text tokens at 2.5e-6, 20 out at 1e-5.
    assert body["usage"]["cost"]["total_cost"] == pytest.approx(100 * 2.5e-6 + 20 * 1e-5)


def test_streamed_transcription(gateway: LiveServer, upstream: MediaUpstream) -> None:
    stream = sdk(gateway).audio.transcriptions.create(
        model="openai/gpt-4o-transcribe", file=("a.mp3", AUDIO_FILE), stream=True
    )
    events = list(stream)
    assert "".join(e.delta for e in events if e.type == "transcript.text.delta") == TRANSCRIPT
    assert events[-1].type == "transcript.text.done"
    assert upstream.state.forms[-1].fields["stream"] == ["true"]


def test_azure_and_mock_transcriptions_and_translations(
    gateway: LiveServer, upstream: MediaUpstream, azure: tuple[AzureMediaShim, str]
) -> None:
    client = sdk(gateway)
    azured = client.audio.transcriptions.create(model="azure/whisper-1", file=("a.wav", AUDIO_FILE))
    assert azured.text == TRANSCRIPT and azure[0].seen[-1][:2] == ("stt-deploy", "audio/transcriptions")
    assert upstream.state.forms[-1].fields["model"] == ["stt-deploy"]
    with warnings.catch_warnings():  # the SDK marks translations deprecated; the API still serves them
        warnings.simplefilter("ignore", DeprecationWarning)
        translated = client.audio.translations.create(model="openai/whisper-1", file=("a.wav", AUDIO_FILE))
    assert translated.text == TRANSCRIPT and upstream.state.forms[-1].path == "/v1/audio/translations"
    mocked = client.audio.transcriptions.create(model="mock/whisper", file=("a.wav", AUDIO_FILE))
    assert mocked.text.startswith("[mock]")


def test_form_fallbacks_are_used_and_never_forwarded(gateway: LiveServer, upstream: MediaUpstream) -> None:
    resp = sdk(gateway).audio.transcriptions.create(
        model="openai/status-503",
        file=("a.wav", AUDIO_FILE),
        extra_body={"fallbacks": ["openai/whisper-1"]},
    )
    assert extra(resp)["routing_info"]["is_fallback"] is True
    assert [f.fields["model"] for f in upstream.state.forms] == [["status-503"]] * 2 + [["whisper-1"]]
    assert all("fallbacks" not in f.fields and "fallbacks[]" not in f.fields for f in upstream.state.forms)


@pytest.mark.parametrize(
    ("files", "fields", "message"),
    [
        ({"file": ("a.wav", b"x")}, {}, "model is required"),
        ({}, {"model": "openai/whisper-1"}, "file is required"),
    ],
)
def test_transcription_validation(
    gateway: LiveServer, upstream: MediaUpstream, files: Obj, fields: Obj, message: str
) -> None:
    resp = httpx.post(
        gateway.url + "/v1/audio/transcriptions", files=files or {"other": ("x", b"")}, data=fields
    )
    assert resp.status_code == 400 and resp.json()["error"]["message"] == message
    not_a_form = httpx.post(gateway.url + "/v1/audio/transcriptions", json={"model": "openai/whisper-1"})
    assert not_a_form.status_code == 400 and "multipart/form-data" in not_a_form.json()["error"]["message"]
    assert upstream.state.forms == []


def test_uploads_are_bounded_by_the_body_limit(media: tuple[MediaUpstream, str]) -> None:
    config = {"providers": {"openai": {"keys": [{"value": "k"}], "network_config": {"base_url": media[1]}}},
              "client": {"max_request_body_size_mb": 0.01}}  # fmt: skip
    live = serve(create_app(GatewayConfig.from_dict(config)))
    try:
        with pytest.raises(openai.APIStatusError) as too_big:
            sdk(live).audio.transcriptions.create(model="openai/whisper-1", file=("a.wav", bytes(20_000)))
        assert too_big.value.status_code == 413
    finally:
        live.stop()


# -- the offline mock, and what is refused before any upstream call ------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "expect"),
    [
        ("/v1/audio/speech", {"voice": "a", "input": "Hi", "response_format": "pcm"}, b"\x00\x00"),
        ("/v1/audio/speech", {"voice": "a", "input": "Hi", "stream_format": "sse"}, b'"speech.audio.done"'),
        (
            "/v1/images/generations",
            {"prompt": "x", "response_format": "url"},
            b'"url":"data:image/png;base64,',
        ),
        (
            "/v1/embeddings",
            {"input": [[1, 2]], "encoding_format": "base64", "dimensions": 2},
            b'"embedding":"',
        ),
    ],
)
def test_mock_media_json(gateway: LiveServer, path: str, body: Obj, expect: bytes) -> None:
    resp = httpx.post(gateway.url + path, json={"model": "mock/m", **body})
    assert resp.status_code == 200 and expect in resp.content


@pytest.mark.parametrize(
    ("route", "fields", "expect"),
    [
        ("transcriptions", {"response_format": "verbose_json"}, b'"task":"transcribe"'),
        ("translations", {"response_format": "verbose_json"}, b'"task":"translate"'),
        ("transcriptions", {"response_format": "vtt"}, b"WEBVTT\n"),
        ("transcriptions", {"response_format": "text"}, b"[mock] This is a mock transcript"),
        ("transcriptions", {"stream": "true"}, b'"transcript.text.done"'),
    ],
)
def test_mock_transcripts(gateway: LiveServer, route: str, fields: Obj, expect: bytes) -> None:
    resp = httpx.post(
        f"{gateway.url}/v1/audio/{route}",
        data={"model": "mock/w", **fields},
        files={"file": ("a.wav", b"RIFF")},
    )
    assert resp.status_code == 200 and expect in resp.content


@pytest.mark.parametrize(
    ("path", "request_kwargs", "message"),
    [
        (
            "/v1/embeddings",
            {"json": {"input": "x", "encoding_format": "int8"}},
            'encoding_format must be "float"',
        ),
        (
            "/v1/embeddings",
            {"json": {"input": "x", "dimensions": 0}},
            "dimensions must be a positive integer",
        ),
        ("/v1/embeddings", {"json": {"input": [""]}}, "input[0] must not be an empty string"),
        ("/v1/images/generations", {"json": {"prompt": "x", "stream": True}}, "streamed image generation"),
        ("/v1/images/generations", {"json": {"prompt": "x", "n": 11}}, "n must be an integer from 1 to 10"),
        (
            "/v1/images/edits",
            {"data": {"prompt": "x"}, "files": {"mask": ("m.png", b"x")}},
            "at least one image is required",
        ),  # fmt: skip
        (
            "/v1/images/edits",
            {"data": {"n": "two"}, "files": {"image": ("i.png", b"x")}},
            "n must be an integer",
        ),
        (
            "/v1/audio/speech",
            {"json": {"input": "x", "voice": "a", "response_format": 3}},
            "response_format must be a string",
        ),  # fmt: skip
        (
            "/v1/audio/translations",
            {"data": {"stream": "true"}, "files": {"file": ("a.wav", b"x")}},
            "translations are not streamed",
        ),  # fmt: skip
    ],
)
def test_media_requests_refused_before_any_upstream_call(
    gateway: LiveServer, upstream: MediaUpstream, path: str, request_kwargs: Obj, message: str
) -> None:
    kwargs = dict(request_kwargs)
    if "json" in kwargs:
        kwargs["json"] = {"model": "openai/m", **kwargs["json"]}
    else:
        kwargs["data"] = {"model": "openai/m", **kwargs["data"]}
    resp = httpx.post(gateway.url + path, **kwargs)
    assert resp.status_code == 400 and message in resp.json()["error"]["message"]
    assert upstream.state.requests == []


def test_a_media_answer_that_is_not_json_is_a_bad_response(
    gateway: LiveServer, upstream: MediaUpstream
) -> None:
    resp = httpx.post(gateway.url + "/v1/embeddings", json={"model": "openai/html-embeddings", "input": "x"})
    assert resp.status_code == 502 and resp.json()["error"]["type"] == "provider_bad_response"
