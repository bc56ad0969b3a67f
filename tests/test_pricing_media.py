"""Media prices from the shipped catalog: per token for embeddings and gpt-image, per character and
per audio token for speech, per second and per audio token for transcription, per image or per pixel of
the produced size for dall-e style models (Bifrost's compute*Cost rules over LiteLLM's fields)."""

from __future__ import annotations

import pytest

from bifrost_asgi.pricing import (
    Media,
    PricingTable,
    Usage,
    usage_from_images,
    usage_from_speech,
    usage_from_transcription,
)

TABLE = PricingTable.default()


def total(provider: str, model: str, usage: Usage) -> float:
    cost = TABLE.cost(provider, model, usage)
    assert cost is not None
    return cost["total_cost"]


def test_embeddings_are_priced_per_input_token() -> None:
    assert total("openai", "text-embedding-3-small", Usage(input_tokens=1000)) == pytest.approx(1000 * 2e-8)
    assert total("gemini", "gemini-embedding-001", Usage(input_tokens=10)) == pytest.approx(10 * 1.5e-7)
    assert total("azure", "text-embedding-3-large", Usage(input_tokens=10)) == pytest.approx(10 * 1.43e-7)


def test_speech_per_character_else_per_token() -> None:
    chars = Usage(input_tokens=3, media=Media("speech", characters=12))
    assert total("openai", "tts-1", chars) == pytest.approx(12 * 1.5e-5)
    assert total("openai", "tts-1-hd", chars) == pytest.approx(12 * 3e-5)
    # gpt-4o-mini-tts has no character price: its text tokens, and the audio tokens it reports.
    reported = usage_from_speech({"input_tokens": 5, "output_tokens": 40, "total_tokens": 45})
    assert reported is not None
    assert total("openai", "gpt-4o-mini-tts", reported) == pytest.approx(5 * 6e-7 + 40 * 1.2e-5)
    assert total("openai", "gpt-4o-mini-tts", chars) == pytest.approx(3 * 6e-7)


def test_transcription_per_audio_token_else_per_second() -> None:
    tokens = usage_from_transcription(
        {
            "type": "tokens",
            "input_tokens": 100,
            "output_tokens": 20,
            "input_token_details": {"audio_tokens": 90},
        }
    )
    seconds = usage_from_transcription({"type": "duration", "seconds": 60})
    assert tokens is not None and seconds is not None
    assert total("openai", "gpt-4o-mini-transcribe", tokens) == pytest.approx(
        90 * 1.25e-6 + 10 * 1.25e-6 + 20 * 5e-6
    )
    assert total("openai", "whisper-1", seconds) == pytest.approx(60 * 1e-4)
    assert total("groq", "whisper-large-v3", seconds) == pytest.approx(60 * 3.083e-05)
    assert usage_from_transcription({"type": "duration", "seconds": True}) == Usage(
        media=Media("transcription")
    )


def test_images_per_token_when_reported_else_per_image_or_pixel() -> None:
    reported = usage_from_images(
        {"input_tokens": 50, "output_tokens": 4160, "input_tokens_details": {"image_tokens": 10}}
    )
    assert reported is not None
    assert total("openai", "gpt-image-1", reported) == pytest.approx(40 * 5e-6 + 10 * 1e-5 + 4160 * 4e-5)
    # Per image of the produced size and quality (high/1024-x-1536/gpt-image-1: 0.25 each).
    asked = Usage(media=Media("image", images=2, size="1024x1536", quality="high"))
    assert total("openai", "gpt-image-1", asked) == pytest.approx(2 * 0.25)
    # Per pixel (azure/standard/1024-x-1024/dall-e-3), standard being dall-e's default quality.
    default = Usage(media=Media("image", images=1, size="1024x1024"))
    assert total("azure", "dall-e-3", default) == pytest.approx(1024 * 1024 * 4.19617e-08)


def test_unknown_media_prices_are_none() -> None:
    assert TABLE.cost("openai", "no-such-tts", Usage(media=Media("speech", characters=5))) is None
