"""Model strings: ``provider/model`` parsing, bare-name resolution and fallback lists (spec §1.3)."""

from __future__ import annotations

import logging

import pytest

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.routing import Resolver, check_model_string

CATALOG = {"gpt-4o": ("azure", "openai"), "llama-3": ("groq",), "solo": ("openai",)}


def resolver(*configured: str) -> Resolver:
    return Resolver(configured or ("openai", "azure", "groq", "rotator"), CATALOG)


@pytest.mark.parametrize(
    ("model", "split"),
    [
        ("openai/gpt-4o", ("openai", "gpt-4o")),
        ("openai/org/model:tag", ("openai", "org/model:tag")),  # only the first slash separates
        ("rotator/gpt-4o", ("rotator", "gpt-4o")),  # a configured custom provider is known
        ("anthropic/claude", ("anthropic", "claude")),  # known, even though not configured
        ("nonsense/model", (None, "nonsense/model")),
        ("openai/", (None, "openai/")),
        ("/gpt-4o", (None, "/gpt-4o")),
        ("gpt-4o", (None, "gpt-4o")),
        ("", (None, "")),
    ],
)
def test_split(model: str, split: tuple[str | None, str]) -> None:
    assert resolver().split(model) == split


def test_a_prefixed_model_goes_to_its_provider() -> None:
    assert resolver().resolve("groq/gpt-4o", "openai") == ("groq", "gpt-4o")
    assert resolver().resolve("openai/unknown-model") == ("openai", "unknown-model")


def test_a_bare_model_goes_to_the_first_catalog_candidate_unless_the_preferred_one_serves_it() -> None:
    assert resolver().resolve("gpt-4o") == ("azure", "gpt-4o")
    assert resolver().resolve("gpt-4o", "openai") == ("openai", "gpt-4o")
    assert resolver().resolve("llama-3", "openai") == ("groq", "llama-3")  # openai does not serve it


def test_the_candidates_for_a_bare_model_are_its_catalog_providers_in_order() -> None:
    # What a bare model's admission estimate and the integration routes consult (none: not a catalog model).
    assert resolver().candidates("gpt-4o") == ("azure", "openai")
    assert resolver().candidates("new-model") == ()
    assert resolver().candidates("openai/gpt-4o") == ()  # a prefixed model string is not a bare model


def test_forcing_the_preferred_provider() -> None:
    assert resolver().resolve("llama-3", "openai", force=True) == ("openai", "llama-3")
    assert resolver().resolve("new-model", "openai", force=True) == ("openai", "new-model")
    # Forcing a provider that is not configured falls back to the catalog.
    assert resolver("groq").resolve("llama-3", "openai", force=True) == ("groq", "llama-3")
    assert resolver().resolve("llama-3", None, force=True) == ("groq", "llama-3")


def refusal(call: object) -> BifrostError:
    assert callable(call)
    with pytest.raises(BifrostError) as caught:
        call()
    return caught.value


def test_an_empty_model_is_refused() -> None:
    err = refusal(lambda: resolver().resolve(""))
    assert (err.status_code, err.message, err.param) == (400, "model is required", "model")


def test_a_bare_model_outside_the_catalog_is_refused() -> None:
    err = refusal(lambda: resolver().resolve("mystery", "openai"))
    assert (err.status_code, err.error_type, err.param) == (400, "invalid_request_error", "model")
    assert err.message == (
        "provider is required in model field (format: provider/model) — no providers found for "
        'model "mystery" in model catalog to auto-resolve'
    )


def test_a_provider_that_is_not_configured_is_refused() -> None:
    err = refusal(lambda: resolver("openai").resolve("anthropic/claude"))
    assert (err.status_code, err.is_bifrost_error) == (400, False)
    assert err.message == "failed to get config for provider: anthropic is not configured in this gateway"
    # A bare name whose only catalog candidates are not configured is refused the same way.
    err = refusal(lambda: Resolver(["openai"], {"llama-3": ("groq",)}).resolve("llama-3"))
    assert err.message == "failed to get config for provider: groq is not configured in this gateway"


def test_fallbacks_keep_known_providers_in_order(caplog: pytest.LogCaptureFixture) -> None:
    values = ["groq/llama-3", "nonsense/x", "gpt-4o", "openai/gpt-4o", "anthropic/claude"]
    with caplog.at_level(logging.DEBUG, logger="bifrost_asgi.routing"):
        targets = resolver().fallbacks(values)
    assert targets == [("groq", "llama-3"), ("openai", "gpt-4o"), ("anthropic", "claude")]
    assert [r.getMessage() for r in caplog.records] == [
        "fallback 'nonsense/x' dropped: no known provider prefix",
        "fallback 'gpt-4o' dropped: no known provider prefix",
    ]
    assert resolver().fallbacks(None) == []
    assert resolver().fallbacks([]) == []


@pytest.mark.parametrize("values", ["openai/gpt-4o", {"a": 1}, ["openai/gpt-4o", 3], [None]])
def test_fallbacks_must_be_an_array_of_strings(values: object) -> None:
    err = refusal(lambda: resolver().fallbacks(values))
    assert (err.status_code, err.message, err.param) == (
        400,
        "fallbacks must be an array of strings",
        "fallbacks",
    )


# -- bounds: a model string is echoed into headers and logs --------------------------------------------------


def test_model_strings_are_bounded_and_free_of_control_characters() -> None:
    longest = "openai/" + "m" * 249
    assert check_model_string(longest, "model") == longest  # exactly 256 characters
    err = refusal(lambda: check_model_string(longest + "m", "model"))
    assert (err.status_code, err.message, err.param) == (400, "model is longer than 256 characters", "model")
    for bad in ("gpt\n4o", "gpt\x00", "gpt\x7f", "gpt\x9f"):
        err = refusal(lambda: check_model_string(bad, "fallbacks"))  # noqa: B023
        assert (err.message, err.param) == ("fallbacks contains control characters", "fallbacks")
    assert check_model_string("gpt-4o é", "model") == "gpt-4o é"


def test_fallbacks_are_bounded_and_checked() -> None:
    assert len(resolver().fallbacks(["groq/llama-3"] * 32)) == 32
    err = refusal(lambda: resolver().fallbacks(["groq/llama-3"] * 33))
    assert (err.message, err.param) == ("fallbacks holds more than 32 entries", "fallbacks")
    err = refusal(lambda: resolver().fallbacks(["groq/llama-3", "groq/\x00"]))
    assert (err.message, err.param) == ("fallbacks contains control characters", "fallbacks")


def test_resolving_under_an_integration_prefix() -> None:
    assert resolver().resolve_under("gpt-4o", None) == ("azure", "gpt-4o")  # no prefix: the catalog's first
    assert resolver().resolve_under("gpt-4o", "litellm") == ("openai", "gpt-4o")  # prefers openai
    assert resolver().resolve_under("llama-3", "litellm") == ("groq", "llama-3")  # where it serves it
    assert resolver().resolve_under("llama-3", "openai") == ("openai", "llama-3")  # /openai: always openai
    assert resolver().resolve_under("groq/llama-3", "openai") == ("groq", "llama-3")
