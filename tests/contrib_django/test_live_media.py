"""Embeddings, speech and transcription through the Django app on the live sites (uvicorn: the async
view; gunicorn: the sync view): a signed-in user's multipart upload passes Django's CSRF check and
reaches the gateway whole, speech audio streams (never read whole into one HttpResponse), and a
script's key works through the openai SDK. The site's `mock` provider answers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

pytest.importorskip("django")

from openai import OpenAI  # noqa: E402

from .live import Browser, Site  # noqa: E402

TRANSCRIBE = "/ai/v1/audio/transcriptions"
SPEECH = "/ai/v1/audio/speech"
KEYS = "/ai/api/me/virtual-keys"


@pytest.fixture
def alice(site: Site) -> Iterator[Browser]:
    username, _ = site.create_user("media-")
    browser = site.browser(username)
    yield browser
    browser.http.close()


def test_a_session_upload_passes_the_csrf_check_and_is_transcribed(alice: Browser) -> None:
    audio = ("talk.wav", b"RIFF" + bytes(range(256)) * 64, "audio/wav")
    refused = alice.http.post(TRANSCRIBE, files={"file": audio}, data={"model": "mock/whisper"})
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "csrf_failed"
    response = alice.http.post(
        TRANSCRIBE,
        files={"file": audio},
        data={"model": "mock/whisper", "response_format": "srt"},
        headers={"X-CSRFToken": alice.csrf},
    )
    assert response.status_code == 200, response.text
    assert response.text.startswith("1\n00:00:00,000 --> ") and "[mock]" in response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_speech_audio_is_streamed(alice: Browser) -> None:
    body = {"model": "mock/tts", "voice": "alloy", "input": "Hello", "response_format": "wav"}
    headers = {"X-CSRFToken": alice.csrf}
    with alice.http.stream("POST", SPEECH, json=body, headers=headers) as response:
        assert response.status_code == 200
        audio = b"".join(response.iter_bytes())
        assert response.headers["content-type"] == "audio/wav"
        # A StreamingHttpResponse: no Content-Length up front, the body goes out as it comes.
        assert "content-length" not in response.headers and response.headers["x-accel-buffering"] == "no"
    assert audio.startswith(b"RIFF") and len(audio) > 1000


def test_a_key_embeds_through_the_openai_sdk(site: Site, alice: Browser) -> None:
    created = alice.call("POST", KEYS, {"name": "embedder"})
    assert created.status_code == 200, created.text
    key = created.json()["virtual_key"]
    with OpenAI(api_key=key["value"], base_url=f"{site.url}/ai/v1", max_retries=0) as client:
        vectors = client.embeddings.create(model="mock/embed", input=["a", "b"])
    assert [len(d.embedding) for d in vectors.data] == [8, 8]
    # Charged to the key (the site gives every key a rate limit, so its request counter moves).
    deadline = time.monotonic() + 10
    while (used := requests_used(alice, key["id"])) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert used == 1


def requests_used(browser: Browser, key_id: str) -> int:
    rows = browser.call("GET", f"{KEYS}/{key_id}/usage").json()["limits"]
    return int(next(row["used"] for row in rows if row["kind"] == "requests"))
