"""The semantic_cache plugin entry: Bifrost's fields and defaults, durations, and clear errors."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.cache.config import cache_config, parse_duration
from bifrost_asgi.config import ConfigError


def config_with(plugin_config: Any, **entry: Any) -> GatewayConfig:
    plugin = {"name": "semantic_cache", "enabled": True, "config": plugin_config, **entry}
    return GatewayConfig.from_dict(
        {"providers": {"openai": {"keys": [{"value": "sk"}]}}, "plugins": [plugin]}
    )


def test_ttl_alone_runs_direct_only_with_bifrosts_defaults() -> None:
    cache = cache_config(config_with({"ttl": "5m"}))
    assert cache is not None and not cache.semantic
    assert (cache.ttl, cache.threshold, cache.conversation_history_threshold) == (300, 0.8, 3)
    assert cache.cache_by_model and cache.cache_by_provider and not cache.exclude_system_prompt
    assert cache.store.type == "memory" and cache.default_cache_key == ""


def test_off_unless_an_enabled_entry_says_so() -> None:
    assert cache_config(GatewayConfig()) is None
    assert cache_config(config_with({}, enabled=False)) is None
    assert create_app(config_with({}, enabled=False)).state.gateway.cache is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("1h30m", 5400), ("1.5h", 5400), ("300ms", 0.3), ("90", 90), (" 10s ", 10), (42, 42)],
)
def test_durations_are_gos(text: Any, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "5 minutes", "m5", "0s", "-1", 0, True, None, "inf", [5]])
def test_bad_durations_are_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("plugin_config", "message"),
    [
        ({"ttl": "soon"}, "plugins[0].config.ttl"),
        ({"threshold": 1.5}, "plugins[0].config.threshold"),
        ({"conversation_history_threshold": 0}, "plugins[0].config.conversation_history_threshold"),
        ({"provider": "openai", "dimension": 8}, "embedding_model is required"),
        ({"provider": "openai", "embedding_model": "e"}, "dimension"),
        (
            {"provider": "cohere", "embedding_model": "e", "dimension": 8},
            "'cohere' is not a configured provider",
        ),
        ({"store": {"type": "memcached"}}, "plugins[0].config.store.type"),
        ("not an object", "plugins[0].config: must be an object"),
    ],
)
def test_a_bad_entry_names_the_field(plugin_config: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_with(plugin_config)
    assert message in str(err.value)


def test_bad_plugin_lists_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"plugins\[0\]: each entry needs a name"):
        GatewayConfig.from_dict({"plugins": [{"enabled": True}]})
    twice = [{"name": "semantic_cache"}, {"name": "semantic_cache", "config": {"ttl": 5}}]
    with pytest.raises(ConfigError, match=r"plugins\[1\]: semantic_cache is enabled twice"):
        GatewayConfig.from_dict({"plugins": twice})


def test_fields_we_do_not_use_are_named(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bifrost_asgi.config"):
        config_with({"keys": [{"value": "sk"}], "frobnicate": 1, "store": {"colour": "red"}})
    assert "plugins[0].config.keys is Bifrost's; bifrost-asgi does not use it: ignored" in caplog.text
    assert "plugins[0].config: unknown field 'frobnicate' ignored" in caplog.text
    assert "plugins[0].config.store: unknown field 'colour' ignored" in caplog.text
