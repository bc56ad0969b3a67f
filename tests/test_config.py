from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bifrost_asgi import ConfigError, GatewayConfig


def test_loads_bifrost_shape_and_env_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MY_OPENAI_KEY", "sk-from-env")
    path = tmp_path / "config.json"
    path.write_text(
        '{"providers": {"openai": {"keys": [{"name": "k1", "value": "env.MY_OPENAI_KEY",'
        ' "models": ["gpt-4o"],'
        ' "weight": 2}], "network_config": {"base_url": "http://localhost:9/", "max_retries": 3,'
        ' "retry_backoff_initial": 100, "retry_backoff_max": 1000, "extra_headers": {"X-Org": "a"}},'
        ' "send_back_raw_response": true}}, "client": {"enforce_auth_on_inference": true}}'
    )
    config = GatewayConfig.from_file(path)
    pc = config.providers["openai"]
    assert pc.keys[0].value.get_secret_value() == "sk-from-env"
    assert pc.keys[0].weight == 2
    assert pc.network_config.base_url == "http://localhost:9"  # trailing slash dropped
    assert pc.network_config.max_retries == 3
    assert pc.send_back_raw_response is True
    assert config.client.enforce_auth_on_inference is True
    assert "sk-from-env" not in repr(config)  # secrets never in reprs


def test_unknown_fields_warn_by_name(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bifrost_asgi.config"):
        GatewayConfig.from_dict({"providers": {"mock": {"frobnicate": 1}}, "plugins": []})
    text = caplog.text
    assert "'plugins'" in text
    assert "config.providers.mock: unknown field 'frobnicate'" in text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"providers": {"openai": {"keys": [{"value": "k"}], "network_config": {"max_retries": "x"}}}},
         "providers.openai.network_config.max_retries"),
        ({"providers": {"openai": {"keys": []}}}, "providers.openai.keys: at least one key is required"),
        ({"providers": {"openai": {"keys": [{"value": "env.NOPE_NOT_SET"}]}}},
         "providers.openai.keys[0].value: environment variable NOPE_NOT_SET is not set"),
        ({"providers": {"vllm": {}}}, "providers.vllm.network_config.base_url: required"),
        ({"providers": {"custom": {"keys": []}}}, "providers.custom.network_config.base_url: required"),
        ({"providers": {"bedrock": {"keys": [{"value": "k"}]}}}, "not supported by bifrost-asgi yet"),
        ({"providers": {"openai": {"keys": [{"value": "k"}], "network_config": {"base_url": "ftp://x"}}}},
         "providers.openai.network_config.base_url"),
        ({"providers": {"openai": {"keys": [{"value": "secret-value", "weight": -1}]}}},
         "providers.openai.keys.0.weight"),
    ],
)  # fmt: skip
def test_invalid_config_names_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        GatewayConfig.from_dict(data)
    assert message in str(info.value)
    assert "secret-value" not in str(info.value)


def test_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        GatewayConfig.from_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        GatewayConfig.from_file(tmp_path / "missing.json")


def test_provider_kinds() -> None:
    config = GatewayConfig.from_dict(
        {
            "providers": {
                "openai": {"keys": [{"value": "k"}]},
                "groq": {"keys": [{"value": "k"}]},
                "mine": {"custom_provider_config": {"base_provider_type": "openai"},
                         "network_config": {"base_url": "http://h"}},
                "mock": {},
            }
        }
    )  # fmt: skip
    kinds = {name: config.provider_kind(name) for name in config.providers}
    assert kinds == {
        "openai": "openai",
        "groq": "openai-compatible",
        "mine": "openai-compatible",
        "mock": "mock",
    }
