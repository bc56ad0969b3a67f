"""Cost calculation against the packaged catalog.

Expected values are written from the catalog's numbers (quoted next to each test), never computed by the code
under test, so a change in the catalog or the formula shows up here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest

from bifrost_asgi import pricing
from bifrost_asgi.pricing import PricingTable, Usage, usage_from_chat, usage_from_responses


@pytest.fixture(scope="module")
def table() -> PricingTable:
    return PricingTable.default()


@pytest.fixture(autouse=True)
def cold_caches() -> None:
    """Each test prices from scratch: the process-wide caches (rates per entry, lookups of the shared default
    table) would otherwise answer from an earlier test, and a broken rule could pass unseen."""
    pricing._RATES_CACHE.clear()
    pricing._rate_fields.cache_clear()
    PricingTable.default()._resolved.clear()


def assert_costs(actual: Mapping[str, float] | None, **expected: float) -> None:
    assert actual is not None
    assert set(actual) == set(expected)
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=1e-12), name


def costs(
    input_tokens: float,
    output_tokens: float,
    *,
    reasoning: float = 0.0,
    request: float = 0.0,
    search: float | None = None,
) -> dict[str, float]:
    """The expected dict: parts as given, total as their sum."""
    parts = {
        "input_tokens_cost": input_tokens,
        "output_tokens_cost": output_tokens,
        "reasoning_tokens_cost": reasoning,
        "request_cost": request,
    }
    if search is not None:
        parts["search_queries_cost"] = search
    return {**parts, "total_cost": sum(parts.values())}


# --- the default table --------------------------------------------------------------------------------------


def test_default_is_parsed_once_and_knows_its_capture_date() -> None:
    assert PricingTable.default() is PricingTable.default()
    assert PricingTable.default().captured == "2026-11-22"


def test_entries_are_read_only(table: PricingTable) -> None:
    entry = table.lookup("openai", "gpt-4o")
    assert entry is not None
    with pytest.raises(TypeError):
        entry["input_cost_per_token"] = 0  # type: ignore[index]


# --- gpt-4o: input 2.5e-06, cache read 1.25e-06, output 1e-05 -----------------------------------------------


def test_gpt_4o_plain(table: PricingTable) -> None:
    usage = Usage(input_tokens=1000, output_tokens=200)
    assert_costs(table.cost("openai", "gpt-4o", usage), **costs(1000 * 2.5e-06, 200 * 1e-05))


def test_gpt_4o_cached_read(table: PricingTable) -> None:
    usage = Usage(input_tokens=1117, output_tokens=46, cached_read_tokens=1024)
    expected = costs((1117 - 1024) * 2.5e-06 + 1024 * 1.25e-06, 46 * 1e-05)
    assert_costs(table.cost("openai", "gpt-4o", usage), **expected)


def test_gpt_4o_reasoning_is_priced_at_the_output_rate(table: PricingTable) -> None:
    usage = Usage(input_tokens=100, output_tokens=500, reasoning_tokens=300)
    expected = costs(100 * 2.5e-06, (500 - 300) * 1e-05, reasoning=300 * 1e-05)
    assert_costs(table.cost("openai", "gpt-4o", usage), **expected)


def test_exact_rounded_values(table: PricingTable) -> None:
    # 1000 * 2.5e-06 is 0.0025000000000000005 in binary; the result is rounded to 12 places.
    result = table.cost("openai", "gpt-4o", Usage(input_tokens=1000, output_tokens=200))
    assert result == {
        "input_tokens_cost": 0.0025,
        "output_tokens_cost": 0.002,
        "reasoning_tokens_cost": 0.0,
        "request_cost": 0.0,
        "total_cost": 0.0045,
    }


def test_cached_counts_are_clamped_to_the_prompt(table: PricingTable) -> None:
    usage = Usage(input_tokens=100, output_tokens=0, cached_read_tokens=80, cached_write_tokens=50)
    # gpt-4o has no cache-creation price: the 20 written tokens that fit are billed at the input rate.
    expected = costs(80 * 1.25e-06 + 20 * 2.5e-06, 0.0)
    assert_costs(table.cost("openai", "gpt-4o", usage), **expected)


def test_reasoning_is_clamped_to_the_completion(table: PricingTable) -> None:
    usage = Usage(input_tokens=0, output_tokens=10, reasoning_tokens=25)
    assert_costs(table.cost("openai", "gpt-4o", usage), **costs(0.0, 0.0, reasoning=10 * 1e-05))


# --- separate rates -----------------------------------------------------------------------------------------


def test_reasoning_rate_when_the_entry_has_one(table: PricingTable) -> None:
    # perplexity/sonar-deep-research: input 2e-06, output 8e-06, reasoning 3e-06, search 0.005 per query.
    usage = Usage(input_tokens=1000, output_tokens=4000, reasoning_tokens=3000, num_search_queries=4)
    expected = costs(1000 * 2e-06, 1000 * 8e-06, reasoning=3000 * 3e-06, search=4 * 0.005)
    assert_costs(table.cost("perplexity", "sonar-deep-research", usage), **expected)


def test_anthropic_cache_read_and_write(table: PricingTable) -> None:
    # claude-sonnet-4-5: input 3e-06, cache read 3e-07, cache creation 3.75e-06, output 1.5e-05.
    usage = Usage(input_tokens=10_000, output_tokens=800, cached_read_tokens=6000, cached_write_tokens=3000)
    expected = costs((10_000 - 6000 - 3000) * 3e-06 + 6000 * 3e-07 + 3000 * 3.75e-06, 800 * 1.5e-05)
    assert_costs(table.cost("anthropic", "claude-sonnet-4-5", usage), **expected)


def test_deepseek_cache_hit_price(table: PricingTable) -> None:
    # deepseek/deepseek-chat: input 2.8e-07, cache hit 2.8e-08, output 4.2e-07.
    usage = Usage(input_tokens=5000, output_tokens=100, cached_read_tokens=4000)
    expected = costs(1000 * 2.8e-07 + 4000 * 2.8e-08, 100 * 4.2e-07)
    assert_costs(table.cost("deepseek", "deepseek-chat", usage), **expected)


def test_search_queries_are_priced_at_the_medium_context_size(table: PricingTable) -> None:
    # gpt-4o-mini: input 1.5e-07, output 6e-07, search_context_size_medium 0.025.
    usage = Usage(input_tokens=2000, output_tokens=300, num_search_queries=2)
    expected = costs(2000 * 1.5e-07, 300 * 6e-07, search=2 * 0.025)
    assert_costs(table.cost("openai", "gpt-4o-mini", usage), **expected)


def test_per_request_fee(table: PricingTable) -> None:
    # perplexity/sonar-small-online: input_cost_per_request 0.005, input 0, output 2.8e-07.
    usage = Usage(input_tokens=500, output_tokens=1000)
    expected = costs(0.0, 1000 * 2.8e-07, request=0.005)
    assert_costs(table.cost("perplexity", "sonar-small-online", usage), **expected)


# --- tiers --------------------------------------------------------------------------------------------------


def test_above_200k_tier_applies_past_200k_input_tokens(table: PricingTable) -> None:
    # gemini/gemini-2.5-pro above 200k: input 2.5e-06, cache read 2.5e-07, output 1.5e-05.
    usage = Usage(input_tokens=250_000, output_tokens=1000, cached_read_tokens=50_000)
    expected = costs(200_000 * 2.5e-06 + 50_000 * 2.5e-07, 1000 * 1.5e-05)
    assert_costs(table.cost("gemini", "gemini-2.5-pro", usage), **expected)


def test_tier_boundary_is_exclusive(table: PricingTable) -> None:
    # gemini/gemini-2.5-pro up to 200k: input 1.25e-06, output 1e-05.
    usage = Usage(input_tokens=200_000, output_tokens=10)
    assert_costs(table.cost("gemini", "gemini-2.5-pro", usage), **costs(200_000 * 1.25e-06, 10 * 1e-05))


def test_tier_is_chosen_by_input_tokens_not_total(table: PricingTable) -> None:
    usage = Usage(input_tokens=150_000, output_tokens=60_000, total_tokens=210_000)
    expected = costs(150_000 * 1.25e-06, 60_000 * 1e-05)
    assert_costs(table.cost("gemini", "gemini-2.5-pro", usage), **expected)


def test_above_272k_tier(table: PricingTable) -> None:
    # gpt-5.4 above 272k: input 5e-06, cache read 5e-07, output 2.25e-05.
    usage = Usage(input_tokens=300_000, output_tokens=2000, cached_read_tokens=100_000)
    expected = costs(200_000 * 5e-06 + 100_000 * 5e-07, 2000 * 2.25e-05)
    assert_costs(table.cost("openai", "gpt-5.4", usage), **expected)


def test_priority_tier(table: PricingTable) -> None:
    # gpt-4o priority: input 4.25e-06, cache read 2.125e-06, output 1.7e-05.
    usage = Usage(input_tokens=1000, output_tokens=100, cached_read_tokens=400)
    expected = costs(600 * 4.25e-06 + 400 * 2.125e-06, 100 * 1.7e-05)
    assert_costs(table.cost("openai", "gpt-4o", usage, service_tier="priority"), **expected)


def test_flex_tier(table: PricingTable) -> None:
    # o3 flex: input 1e-06, output 4e-06.
    usage = Usage(input_tokens=1000, output_tokens=100)
    assert_costs(table.cost("openai", "o3", usage, service_tier="flex"), **costs(1000 * 1e-06, 100 * 4e-06))


def test_priority_and_long_context_combine(table: PricingTable) -> None:
    # gemini/gemini-2.5-pro above 200k, priority: input 4.5e-06, output 2.7e-05.
    usage = Usage(input_tokens=300_000, output_tokens=1000)
    expected = costs(300_000 * 4.5e-06, 1000 * 2.7e-05)
    assert_costs(table.cost("gemini", "gemini-2.5-pro", usage, service_tier="priority"), **expected)


def test_unknown_service_tier_uses_standard_rates(table: PricingTable) -> None:
    usage = Usage(input_tokens=1000, output_tokens=200)
    assert_costs(
        table.cost("openai", "gpt-4o", usage, service_tier="default"), **costs(1000 * 2.5e-06, 200 * 1e-05)
    )


# --- lookup -------------------------------------------------------------------------------------------------


def test_provider_prefixed_keys_are_indexed_without_the_prefix(table: PricingTable) -> None:
    # groq/openai/gpt-oss-120b: input 1.5e-07, output 6e-07.
    usage = Usage(input_tokens=1000, output_tokens=1000)
    assert_costs(table.cost("groq", "openai/gpt-oss-120b", usage), **costs(1000 * 1.5e-07, 1000 * 6e-07))
    entry = table.lookup("mistral", "mistral-large-latest")
    assert entry is not None
    assert entry["input_cost_per_token"] == 5e-07


def test_provider_prefix_in_the_model_is_stripped(table: PricingTable) -> None:
    assert table.lookup("groq", "groq/openai/gpt-oss-120b") is table.lookup("groq", "openai/gpt-oss-120b")


def test_azure_prefixed_entry_is_azure_not_openai(table: PricingTable) -> None:
    azure = table.lookup("azure", "gpt-4o")
    assert azure is not None
    assert azure["litellm_provider"] == "azure"


def test_dated_model_resolves_to_the_undated_entry(table: PricingTable) -> None:
    # claude-sonnet-4-6: input 3e-06, output 1.5e-05; the catalog has no 2026-02-17 release.
    usage = Usage(input_tokens=1000, output_tokens=100)
    expected = costs(1000 * 3e-06, 100 * 1.5e-05)
    assert_costs(table.cost("anthropic", "claude-sonnet-4-6-20260217", usage), **expected)
    assert table.lookup("openai", "gpt-4o-2099-01-01") is table.lookup("openai", "gpt-4o")


def test_dated_catalog_entry_is_preferred_when_present(table: PricingTable) -> None:
    entry = table.lookup("openai", "gpt-4o-mini-2024-07-18")
    assert entry is not None
    assert entry["deprecation_date"] == "2027-01-14"


def test_undated_model_resolves_to_the_only_dated_entry(table: PricingTable) -> None:
    # The catalog has only command-r-08-2024 (input 1.5e-07) and mistral/codestral-2508.
    entry = table.lookup("cohere", "command-r")
    assert entry is not None
    assert entry["input_cost_per_token"] == 1.5e-07
    assert table.lookup("mistral", "codestral") is table.lookup("mistral", "codestral-2508")


def test_gemini_and_vertex_fall_back_to_each_other(table: PricingTable) -> None:
    gemini_only = table.lookup("vertex", "gemini-4-argon")
    vertex_only = table.lookup("gemini", "medlm-large")
    assert gemini_only is not None
    assert gemini_only["litellm_provider"] == "gemini"
    assert vertex_only is not None
    assert vertex_only["litellm_provider"] == "vertex_ai-language-models"


def test_vertex_publisher_prefix_is_stripped(table: PricingTable) -> None:
    assert table.lookup("vertex", "google/gemini-2.5-pro") is table.lookup("vertex", "gemini-2.5-pro")


def test_openai_text_completion_models(table: PricingTable) -> None:
    # gpt-3.5-turbo-instruct (text-completion-openai): input 1.5e-06, output 2e-06.
    usage = Usage(input_tokens=100, output_tokens=50)
    expected = costs(100 * 1.5e-06, 50 * 2e-06)
    assert_costs(table.cost("openai", "gpt-3.5-turbo-instruct", usage), **expected)


def test_responses_mode_models_share_the_index(table: PricingTable) -> None:
    entry = table.lookup("perplexity", "openai/gpt-5")
    assert entry is not None
    assert entry["mode"] == "responses"


def test_litellm_provider_names_are_accepted(table: PricingTable) -> None:
    name = "accounts/fireworks/models/kimi-k2p5"
    assert table.lookup("fireworks_ai", name) is table.lookup("fireworks", name) is not None


def test_model_prefixed_with_another_provider_falls_back_to_that_provider(table: PricingTable) -> None:
    assert table.lookup("openrouter", "anthropic/claude-sonnet-4-5") is table.lookup(
        "anthropic", "claude-sonnet-4-5"
    )


def test_unknown_model_returns_none_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    table = PricingTable(
        {"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 1e-06}}, captured="x"
    )
    caplog.set_level(logging.DEBUG, logger="bifrost_asgi.pricing")
    assert table.lookup("openai", "no-such-model") is None
    assert table.cost("openai", "no-such-model", Usage(input_tokens=5)) is None
    assert table.cost("openai", "no-such-model", Usage(input_tokens=5)) is None
    assert table.cost("nobody", "gpt-4o", Usage(input_tokens=5)) is None
    messages = [r.getMessage() for r in caplog.records if r.name == "bifrost_asgi.pricing"]
    assert messages == [
        "no price for provider=openai model=no-such-model; cost not computed",
        "no price for provider=nobody model=gpt-4o; cost not computed",
    ]


def test_prefix_naming_another_provider_is_part_of_the_model_id() -> None:
    entry = {"litellm_provider": "together_ai", "input_cost_per_token": 1e-07}
    table = PricingTable({"openai/gpt-oss-20b": entry}, captured="x")
    assert table.lookup("together", "openai/gpt-oss-20b") == entry
    assert table.lookup("openai", "gpt-oss-20b") is None


def test_prefixed_unknown_models_are_not_found(table: PricingTable) -> None:
    assert table.lookup("together", "meta-llama/no-such-model") is None
    assert table.lookup("openrouter", "anthropic/no-such-model") is None


def test_entry_without_token_prices_costs_nothing() -> None:
    table = PricingTable({"img": {"litellm_provider": "openai", "output_cost_per_image": 0.04}}, captured="x")
    assert_costs(table.cost("openai", "img", Usage(input_tokens=10, output_tokens=10)), **costs(0.0, 0.0))


def test_missing_model_reports_are_bounded(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bifrost_asgi.pricing._MAX_REPORTED_MISSES", 2)
    table = PricingTable({}, captured="x")
    caplog.set_level(logging.DEBUG, logger="bifrost_asgi.pricing")
    for model in ("a", "b", "c", "a"):
        assert table.cost("openai", model, Usage()) is None
    # "a" was forgotten when the third name arrived, so it is reported again rather than memory growing.
    assert len([r for r in caplog.records if r.name == "bifrost_asgi.pricing"]) == 4


# --- overrides ----------------------------------------------------------------------------------------------


def test_override_replaces_one_price_and_keeps_the_rest(table: PricingTable) -> None:
    custom = table.with_overrides({"gpt-4o": {"input_cost_per_token": 2e-06}})
    usage = Usage(input_tokens=1000, output_tokens=200, cached_read_tokens=200)
    expected = costs(800 * 2e-06 + 200 * 1.25e-06, 200 * 1e-05)
    assert_costs(custom.cost("openai", "gpt-4o", usage), **expected)
    # The default table is untouched.
    assert_costs(table.cost("openai", "gpt-4o", Usage(input_tokens=1000)), **costs(1000 * 2.5e-06, 0.0))
    assert custom.captured == "2026-11-22"


def test_override_by_provider_prefixed_name(table: PricingTable) -> None:
    custom = table.with_overrides(
        {"openai/gpt-4o": {"output_cost_per_token": 2e-05}, "azure/gpt-4o": {"input_cost_per_token": 1e-06}}
    )
    openai = custom.lookup("openai", "gpt-4o")
    azure = custom.lookup("azure", "gpt-4o")
    assert openai is not None
    assert azure is not None
    assert (openai["input_cost_per_token"], openai["output_cost_per_token"]) == (2.5e-06, 2e-05)
    assert azure["input_cost_per_token"] == 1e-06


def test_override_adds_models(table: PricingTable) -> None:
    new = {"input_cost_per_token": 1e-06, "output_cost_per_token": 4e-06}
    custom = table.with_overrides({"ollama/my-finetune": new, "house-model": new})
    usage = Usage(input_tokens=1000, output_tokens=500)
    assert_costs(custom.cost("ollama", "my-finetune", usage), **costs(1000 * 1e-06, 500 * 4e-06))
    # Without a provider the new model is priced wherever it is served.
    assert_costs(custom.cost("vllm", "house-model", usage), **costs(1000 * 1e-06, 500 * 4e-06))
    assert table.lookup("ollama", "my-finetune") is None


def test_override_of_an_undated_alias_keeps_the_dated_prices(table: PricingTable) -> None:
    # command-r-08-2024: input 1.5e-07, output 6e-07.
    custom = table.with_overrides({"cohere/command-r": {"input_cost_per_token": 1e-07}})
    entry = custom.lookup("cohere", "command-r")
    assert entry is not None
    assert (entry["input_cost_per_token"], entry["output_cost_per_token"]) == (1e-07, 6e-07)


def test_an_override_prefixed_by_a_configured_custom_provider_prices_its_models() -> None:
    custom = one({}).with_overrides(
        {
            "mycorp/meta-llama/llama-3": {"input_cost_per_token": 2.0},
            "mycorp/tuned": {"litellm_provider": "openai", "input_cost_per_token": 3.0},  # its own word wins
            "elsewhere/m": {"input_cost_per_token": 4.0},  # not a configured provider: part of the name
        },
        providers=["mycorp", "other"],
    )
    assert price_of(custom, "mycorp", "meta-llama/llama-3") == 2.0
    assert price_of(custom, "openai", "meta-llama/llama-3") is None  # priced for mycorp only
    assert (price_of(custom, "openai", "mycorp/tuned"), price_of(custom, "mycorp", "tuned")) == (3.0, None)
    assert (price_of(custom, "vllm", "elsewhere/m"), price_of(custom, "elsewhere", "m")) == (4.0, None)
    # Only a catalog provider's name in a model id borrows that provider's price (OpenRouter-style): a
    # custom provider's name there is part of another host's own id.
    assert price_of(custom, "together", "mycorp/meta-llama/llama-3") is None


def test_overrides_by_either_name_of_a_collision_amend_the_entry_that_won_it() -> None:
    plain = {"litellm_provider": "deepseek", "input_cost_per_token": 1.0}
    prefixed = {"litellm_provider": "deepseek", "input_cost_per_token": 2.0, "output_cost_per_token": 3.0}
    table = one({"deepseek-chat": plain, "deepseek/deepseek-chat": prefixed})
    custom = table.with_overrides({"deepseek-chat": {"output_cost_per_token": 4.0}})
    assert custom.lookup("deepseek", "deepseek-chat") == {**prefixed, "output_cost_per_token": 4.0}
    both = table.with_overrides(
        {
            "deepseek-chat": {"output_cost_per_token": 4.0},
            "deepseek/deepseek-chat": {"input_cost_per_token": 5.0},
        }
    )
    assert both.lookup("deepseek", "deepseek-chat") == {**prefixed, "input_cost_per_token": 5.0,
                                                        "output_cost_per_token": 4.0}  # fmt: skip


def test_override_must_be_a_mapping(table: PricingTable) -> None:
    bad: Any = {"gpt-4o": 1e-06}
    with pytest.raises(TypeError) as caught:
        table.with_overrides(bad)
    assert str(caught.value) == "pricing override 'gpt-4o' must be a mapping of fields, got float"


# --- indexing and lookup, on a small catalog written for the rule each test names -----------------------


def one(entries: dict[str, dict[str, Any]]) -> PricingTable:
    return PricingTable(entries, captured="x")


def price_of(table: PricingTable, provider: str, model: str) -> Any:
    entry = table.lookup(provider, model)
    return None if entry is None else entry["input_cost_per_token"]


def test_a_catalog_key_lives_under_its_provider_and_model() -> None:
    table = one(
        {
            "azure/a": {"litellm_provider": "", "input_cost_per_token": 1.0},  # empty: as if unnamed
            "azure/b": {"litellm_provider": 5, "input_cost_per_token": 2.0},  # not a name: as if unnamed
            "openrouter/openai/c": {"litellm_provider": "openrouter", "input_cost_per_token": 3.0},
            "mistral": {"litellm_provider": "mistral", "input_cost_per_token": 4.0},  # no slash: the model
            "fireworks_ai/d": {"litellm_provider": "fireworks_ai", "input_cost_per_token": 5.0},
        }
    )
    assert (price_of(table, "azure", "a"), price_of(table, "azure", "b")) == (1.0, 2.0)
    assert price_of(table, "openrouter", "openai/c") == 3.0  # only the first slash names the provider
    assert price_of(table, "mistral", "mistral") == 4.0
    assert price_of(table, "fireworks", "d") == 5.0
    assert table.models("fireworks_ai") == ["d"]
    assert table.models("mistral") == ["mistral"]


def test_the_prefixed_key_wins_a_collision_whatever_the_order() -> None:
    plain = {"litellm_provider": "deepseek", "input_cost_per_token": 1.0}
    prefixed = {"litellm_provider": "deepseek", "input_cost_per_token": 2.0}
    for entries in ({"deepseek-chat": plain, "deepseek/deepseek-chat": prefixed},
                    {"deepseek/deepseek-chat": prefixed, "deepseek-chat": plain}):  # fmt: skip
        assert price_of(one(entries), "deepseek", "deepseek-chat") == 2.0


def test_an_undated_name_finds_the_newest_dated_entry() -> None:
    entries = {
        "m-2025-02-02": {"litellm_provider": "openai", "input_cost_per_token": 2.0},
        "m-2024-01-01": {"litellm_provider": "openai", "input_cost_per_token": 1.0},
        "n-2024-01-01": {"litellm_provider": "openai", "input_cost_per_token": 3.0},
        "n": {"litellm_provider": "openai", "input_cost_per_token": 4.0},
    }
    table = one(entries)
    assert price_of(table, "openai", "m") == 2.0
    assert price_of(table, "openai", "m-2024-01-01") == 1.0
    assert price_of(table, "openai", "n") == 4.0  # an undated entry of its own is not replaced
    assert price_of(table, "openai", "m-2023-05-05") == 2.0  # an unknown date: the undated name's entry
    assert price_of(table, "openai", "o") is None


def test_lookup_fallbacks_in_order() -> None:
    table = one(
        {
            "g": {"litellm_provider": "vertex_ai", "input_cost_per_token": 1.0},
            "h": {"litellm_provider": "openai", "input_cost_per_token": 2.0},
            "anthropic/k": {"litellm_provider": "anthropic", "input_cost_per_token": 3.0},
            "any-model": {"input_cost_per_token": 4.0},
            "meta/l": {"litellm_provider": "vertex_ai", "input_cost_per_token": 6.0},
        }
    )
    assert price_of(table, "gemini", "g") == 1.0  # the sibling
    assert price_of(table, "gemini", "g-2024-01-01") == 1.0  # the sibling, undated
    assert price_of(table, "openai", "x/h") == 2.0  # without an unknown prefix
    assert price_of(table, "openai", "x/h-20250101") == 2.0
    assert price_of(table, "openrouter", "anthropic/k") == 3.0  # under the prefix's provider
    assert price_of(table, "openrouter", "anthropic/k-20250101") == 3.0
    assert price_of(table, "vllm", "any-model") == 4.0  # priced for any provider
    assert price_of(table, "vllm", "any-model-20250101") == 4.0
    assert price_of(table, "openrouter", "nobody/k") is None
    assert price_of(table, "openrouter", "vertex_ai/meta/l") == 6.0  # the prefix's provider; the rest whole
    assert price_of(table, "groq", "g") is None  # siblings are only gemini and vertex
    assert price_of(table, "fireworks_ai", "h") is None
    # Answers are remembered, and the same after a lookup of another name.
    assert price_of(table, "gemini", "g") == 1.0


def test_remembered_lookups_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bifrost_asgi.pricing._MAX_REPORTED_MISSES", 2)
    table = one({"g": {"litellm_provider": "vertex_ai", "input_cost_per_token": 1.0}})
    for model in ("g", "a", "b", "g"):
        table.lookup("gemini", model)
    assert len(table._resolved) == 2  # cleared when full, so it never holds more than the bound
    assert price_of(table, "gemini", "g") == 1.0


def test_an_admission_estimate_prices_like_the_cost_it_reserves_for() -> None:
    entry = {"litellm_provider": "openai", "input_cost_per_token": 1.0, "output_cost_per_token": 2.0,
             "input_cost_per_token_above_200k_tokens": 3.0, "output_cost_per_token_above_200k_tokens": 4.0,
             "input_cost_per_request": 0.5}  # fmt: skip
    table = one({"m": entry, "n": {"litellm_provider": "openai", "input_cost_per_token": 1.0}})
    assert table.estimate("openai", "m", 10, 5) == 10 * 1.0 + 5 * 2.0 + 0.5
    assert table.estimate("openai", "m", 200_001, 5) == 200_001 * 3.0 + 5 * 4.0 + 0.5  # the long-context tier
    cost = table.cost("openai", "m", Usage(input_tokens=200_001, output_tokens=5))
    assert cost is not None and cost["total_cost"] == table.estimate("openai", "m", 200_001, 5)
    assert table.estimate("openai", "n", 10, 5) == 10.0  # no request fee, no output price
    assert table.estimate("openai", "unknown", 10, 5) == 0.0  # nothing to reserve without a price


def test_an_estimate_asked_again_is_priced_the_same_and_an_override_reprices_it() -> None:
    entry = {"litellm_provider": "openai", "input_cost_per_token": 1.0, "output_cost_per_token": 2.0,
             "input_cost_per_token_above_100k_tokens": 3.0}  # fmt: skip
    table = one({"m": entry})
    for _ in range(2):  # the second time from the rates kept per model
        assert table.estimate("openai", "m", 10, 5) == 10 * 1.0 + 5 * 2.0
        assert table.estimate("openai", "m", 100_001, 5) == 100_001 * 3.0 + 5 * 2.0  # a tier: kept apart
        assert table.estimate("openai", "m", 100_000, 5) == 100_000 * 1.0 + 5 * 2.0  # at the tier: below it
        assert table.estimate("openai", "unknown", 10, 5) == 0.0
    cheaper = table.with_overrides({"m": {"input_cost_per_token": 0.5}})
    assert cheaper.estimate("openai", "m", 10, 5) == 10 * 0.5 + 5 * 2.0
    assert table.estimate("openai", "m", 10, 5) == 10 * 1.0 + 5 * 2.0  # the first table keeps its price


def test_remembered_rates_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bifrost_asgi.pricing._MAX_REPORTED_MISSES", 2)
    table = one({m: {"litellm_provider": "openai", "input_cost_per_token": 1.0} for m in ("a", "b", "c")})
    for model in ("a", "b", "c"):
        assert_costs(table.cost("openai", model, Usage(input_tokens=2)), **costs(2.0, 0.0))
        assert table.estimate("openai", model, 2, 0) == 2.0
    assert len(pricing._RATES_CACHE) <= 2  # cleared when full, so it never holds more than the bound
    assert len(table._estimates) <= 2


def test_remembered_rates_of_a_collected_entry_are_never_served() -> None:
    table = one({"m": {"litellm_provider": "openai", "input_cost_per_token": 1.0}})
    entry = table.lookup("openai", "m")
    assert entry is not None
    # As if an entry priced earlier had lived at this address: ids are reused once an object is collected.
    gone = {"input_cost_per_token": 9.0}
    pricing._RATES_CACHE[(id(entry), (), "")] = (gone, pricing._find_rates(gone, (), ""))
    assert_costs(table.cost("openai", "m", Usage(input_tokens=2)), **costs(2.0, 0.0))


def test_rates_fall_back_field_by_field() -> None:
    entry = {
        "litellm_provider": "openai",
        "input_cost_per_token": 1.0,
        "input_cost_per_token_cache_hit": 0.25,  # DeepSeek's name for a cache read
        "cache_creation_input_token_cost_priority": 3.0,
        "output_cost_per_token": 2.0,
        "output_cost_per_reasoning_token_priority": 5.0,
        "search_context_cost_per_query": {"search_context_size_medium": None},
    }
    table = one({"m": entry})
    usage = Usage(input_tokens=10, output_tokens=6, cached_read_tokens=4, cached_write_tokens=2,
                  reasoning_tokens=1, num_search_queries=3)  # fmt: skip
    standard = costs(4 * 1.0 + 4 * 0.25 + 2 * 1.0, 5 * 2.0, reasoning=1 * 2.0)
    assert_costs(table.cost("openai", "m", usage), **standard)  # an unpriced search costs nothing
    priority = costs(4 * 1.0 + 4 * 0.25 + 2 * 3.0, 5 * 2.0, reasoning=1 * 5.0)
    assert_costs(table.cost("openai", "m", usage, service_tier="priority"), **priority)


def test_cache_writes_are_capped_by_what_the_cache_reads_left() -> None:
    entry = {"litellm_provider": "openai", "input_cost_per_token": 1.0, "cache_read_input_token_cost": 0.5,
             "cache_creation_input_token_cost": 2.0, "output_cost_per_token": 0.0}  # fmt: skip
    usage = Usage(input_tokens=10, cached_read_tokens=8, cached_write_tokens=5)
    assert_costs(one({"m": entry}).cost("openai", "m", usage), **costs(8 * 0.5 + 2 * 2.0, 0.0))


def test_an_override_by_prefixed_name_amends_the_catalog_entry_it_names() -> None:
    table = one(
        {
            "h": {"litellm_provider": "openai", "input_cost_per_token": 1.0, "output_cost_per_token": 2.0},
            "openai/gpt-oss": {"litellm_provider": "groq", "input_cost_per_token": 3.0},
        }
    )
    custom = table.with_overrides({"openai/h": {"output_cost_per_token": 7.0}, "openai/gpt-oss": {"x": 1}})
    h, oss = custom.lookup("openai", "h"), custom.lookup("groq", "openai/gpt-oss")
    assert h == {"litellm_provider": "openai", "input_cost_per_token": 1.0, "output_cost_per_token": 7.0}
    assert oss == {"litellm_provider": "groq", "input_cost_per_token": 3.0, "x": 1}
    assert custom.models("openai") == ["h"]


# --- usage parsing ------------------------------------------------------------------------------------------


def test_usage_from_chat_openai() -> None:
    usage = {
        "prompt_tokens": 1117,
        "completion_tokens": 46,
        "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 12,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    assert usage_from_chat(usage) == Usage(
        input_tokens=1117, output_tokens=46, cached_read_tokens=1024, reasoning_tokens=12, total_tokens=1163
    )


def test_usage_from_chat_bifrost_fields_and_nulls() -> None:
    usage = {
        "prompt_tokens": 500,
        "completion_tokens": 20,
        "prompt_tokens_details": {"cached_read_tokens": 100, "cached_write_tokens": 300},
        "completion_tokens_details": {"num_search_queries": 2, "reasoning_tokens": None},
    }
    parsed = usage_from_chat(usage)
    assert parsed == Usage(
        input_tokens=500,
        output_tokens=20,
        cached_read_tokens=100,
        cached_write_tokens=300,
        num_search_queries=2,
    )
    assert parsed.total == 520
    assert usage_from_chat({"prompt_tokens": 3, "prompt_tokens_details": None}) == Usage(input_tokens=3)


def test_usage_from_responses_openai() -> None:
    usage = {
        "input_tokens": 328,
        "input_tokens_details": {"cached_tokens": 128},
        "output_tokens": 952,
        "output_tokens_details": {"reasoning_tokens": 896},
        "total_tokens": 1280,
    }
    assert usage_from_responses(usage) == Usage(
        input_tokens=328, output_tokens=952, cached_read_tokens=128, reasoning_tokens=896, total_tokens=1280
    )


def test_usage_from_responses_cache_write() -> None:
    usage = {
        "input_tokens": 4000,
        "output_tokens": 10,
        "input_tokens_details": {"cached_read_tokens": 1000, "cached_write_tokens": 2500},
    }
    assert usage_from_responses(usage) == Usage(
        input_tokens=4000, output_tokens=10, cached_read_tokens=1000, cached_write_tokens=2500
    )


@pytest.mark.parametrize("parse", [usage_from_chat, usage_from_responses])
def test_usage_none_and_garbage(parse: Any) -> None:
    assert parse(None) is None
    assert parse({}) == Usage()
    garbage = {"prompt_tokens": "12", "input_tokens": -5, "completion_tokens": True, "output_tokens": 7.0}
    assert parse(garbage) == (Usage(output_tokens=7) if parse is usage_from_responses else Usage())


def test_usage_feeds_cost(table: PricingTable) -> None:
    usage = usage_from_chat(
        {"prompt_tokens": 1117, "completion_tokens": 46, "prompt_tokens_details": {"cached_tokens": 1024}}
    )
    assert usage is not None
    expected = costs(93 * 2.5e-06 + 1024 * 1.25e-06, 46 * 1e-05)
    assert_costs(table.cost("openai", "gpt-4o", usage), **expected)


def test_cache_writes_under_the_sdk_field_name_are_read() -> None:
    details = {"cached_tokens": 0, "cache_write_tokens": 40}
    usage = usage_from_responses({"input_tokens": 100, "output_tokens": 1, "input_tokens_details": details})
    assert usage is not None and usage.cached_write_tokens == 40
    chat = usage_from_chat({"prompt_tokens": 100, "completion_tokens": 1,
                            "prompt_tokens_details": {"cache_write_tokens": 7}})  # fmt: skip
    assert chat is not None and chat.cached_write_tokens == 7
