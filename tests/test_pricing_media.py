"""Media prices from the shipped catalog: per token for embeddings and gpt-image, per character and
per audio token for speech, per second and per audio token for transcription, per image or per pixel of
the produced size for dall-e style models (Bifrost's compute*Cost rules over LiteLLM's fields)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from bifrost_asgi.pricing import (
    Media,
    PricingTable,
    Usage,
    usage_from_images,
    usage_from_speech,
    usage_from_transcription,
)
from tests.test_pricing import cold_caches as cold_caches  # noqa: F401  (autouse: each test prices afresh)

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


# -- each rule on a small catalog written for it: which field prices what, and what it falls back to ---------


def priced(entry: Mapping[str, object], usage: Usage, model: str = "m") -> dict[str, float] | None:
    return PricingTable({model: {"litellm_provider": "openai", **entry}}, captured="x").cost(
        "openai", model, usage
    )


def parts(inputs: float, outputs: float, request: float = 0.0) -> dict[str, float]:
    return {"input_tokens_cost": inputs, "output_tokens_cost": outputs, "reasoning_tokens_cost": 0.0,
            "request_cost": request, "total_cost": inputs + outputs + request}  # fmt: skip


def test_media_costs_have_the_token_costs_parts_and_a_request_fee() -> None:
    entry = {"input_cost_per_character": 2.0, "output_cost_per_second": 3.0, "input_cost_per_request": 0.5}
    speech = Usage(media=Media("speech", characters=4, seconds=5.0))
    assert priced(entry, speech) == parts(4 * 2.0, 5 * 3.0, request=0.5)


def test_speech_output_per_audio_token_else_per_token_else_per_second() -> None:
    spoken = Usage(input_tokens=3, output_tokens=10, media=Media("speech", seconds=5.0))
    rates = {"input_cost_per_token": 1.0, "output_cost_per_token": 2.0, "output_cost_per_second": 7.0}
    assert priced({**rates, "output_cost_per_audio_token": 4.0}, spoken) == parts(3.0, 10 * 4.0)
    assert priced(rates, spoken) == parts(3.0, 10 * 2.0)
    assert priced(rates, Usage(input_tokens=3, media=Media("speech", seconds=5.0))) == parts(3.0, 5 * 7.0)


def test_transcription_audio_and_text_tokens_at_their_own_rates() -> None:
    heard = Usage(input_tokens=10, output_tokens=2, media=Media("transcription", audio_tokens=8))
    rates = {"input_cost_per_token": 1.0, "output_cost_per_token": 3.0}
    assert priced({**rates, "input_cost_per_audio_token": 5.0}, heard) == parts(8 * 5.0 + 2 * 1.0, 2 * 3.0)
    assert priced(rates, heard) == parts(10 * 1.0, 2 * 3.0)  # no audio token price: the input price
    timed = Usage(media=Media("transcription", seconds=30.0))
    per_second = {"input_cost_per_second": 1.0}
    assert priced({**per_second, "input_cost_per_audio_per_second": 2.0}, timed) == parts(30 * 2.0, 0.0)
    assert priced(per_second, timed) == parts(30 * 1.0, 0.0)


def test_image_tokens_at_their_own_rates_else_the_token_rates() -> None:
    made = Usage(input_tokens=10, output_tokens=100, media=Media("image", image_tokens=4))
    rates = {"input_cost_per_token": 1.0, "output_cost_per_token": 2.0}
    own = {"input_cost_per_image_token": 3.0, "output_cost_per_image_token": 5.0}
    assert priced({**rates, **own}, made) == parts(6 * 1.0 + 4 * 3.0, 100 * 5.0)
    assert priced(rates, made) == parts(10 * 1.0, 100 * 2.0)


def test_images_per_image_else_per_pixel_output_price_first() -> None:
    two = Usage(input_tokens=10, media=Media("image", images=2, size="4x8"))  # the prompt, and 32 pixels each
    prompt = {"input_cost_per_token": 1.0}
    per_image = {"output_cost_per_image": 3.0, "input_cost_per_image": 5.0}
    assert priced({**prompt, **per_image}, two) == parts(10.0, 2 * 3.0)
    assert priced({**prompt, "input_cost_per_image": 5.0}, two) == parts(10.0, 2 * 5.0)
    per_pixel = {"output_cost_per_pixel": 0.5, "input_cost_per_pixel": 0.25}
    assert priced({**prompt, **per_pixel}, two) == parts(10.0, 2 * 32 * 0.5)
    assert priced({**prompt, "input_cost_per_pixel": 0.25}, two) == parts(10.0, 2 * 32 * 0.25)


@pytest.mark.parametrize("size", ["", "big", "1024xlarge", "widex1024", "x", "4x8x2"])
def test_an_image_size_that_is_not_w_x_h_has_no_pixels_to_price(size: str) -> None:
    odd = Usage(media=Media("image", images=1, size=size))
    assert priced({"output_cost_per_pixel": 0.5}, odd) == parts(0.0, 0.0)
    # ... and names no per-size entry: the model's own price applies.
    table = PricingTable({f"standard/{size.replace('x', '-x-')}/m": {"litellm_provider": "openai",
                          "output_cost_per_image": 9.0}, "m": {"litellm_provider": "openai",
                          "output_cost_per_image": 1.0}}, captured="x")  # fmt: skip
    assert table.cost("openai", "m", odd) == parts(0.0, 1.0)


def test_a_per_size_entry_prices_only_images_produced() -> None:
    sized = {"litellm_provider": "openai", "input_cost_per_token": 9.0}
    table = PricingTable(
        {"standard/4-x-8/m": sized, "m": {"litellm_provider": "openai", "input_cost_per_token": 1.0}},
        captured="x",
    )
    none_made = Usage(input_tokens=10, media=Media("image", images=0, size="4x8"))
    assert table.cost("openai", "m", none_made) == parts(10.0, 0.0)
    one_made = Usage(input_tokens=10, media=Media("image", images=1, size="4x8"))
    assert table.cost("openai", "m", one_made) == parts(90.0, 0.0)


def test_media_usage_is_read_field_by_field() -> None:
    images = {
        "input_tokens": 50,
        "output_tokens": 40,
        "total_tokens": 90,
        "input_tokens_details": {"image_tokens": 10},
    }
    assert usage_from_images(images) == Usage(50, 40, total_tokens=90, media=Media("image", image_tokens=10))
    heard = {
        "input_tokens": 10,
        "output_tokens": 2,
        "total_tokens": 12,
        "input_token_details": {"audio_tokens": 8},
    }
    assert usage_from_transcription(heard) == Usage(
        10, 2, total_tokens=12, media=Media("transcription", audio_tokens=8)
    )
    for seconds, read in ((0.5, 0.5), (-3, 0.0), ("60", 0.0)):
        assert usage_from_transcription({"type": "duration", "seconds": seconds}) == Usage(
            media=Media("transcription", seconds=read)
        )
