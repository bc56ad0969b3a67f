from __future__ import annotations

import logging
from pathlib import Path

import openai
import pytest

from bifrost_asgi import ConfigError, GatewayConfig, create_app
from tests.conftest import serve
from tests.upstream import Upstream


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
        plugins = [{"name": "telemetry", "enabled": True}]
        GatewayConfig.from_dict({"providers": {"mock": {"frobnicate": 1}}, "mcp": {}, "plugins": plugins})
    text = caplog.text
    assert "'mcp'" in text
    assert "plugins[0]: plugin 'telemetry' is not run by bifrost-asgi, ignored" in text
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
        # Security-relevant sections: a typo stops startup instead of leaving the gateway open.
        ({"clinet": {"enforce_auth_on_inference": True}},
         "clinet: unknown top-level field (did you mean 'client'?)"),
        ({"Client": {}}, "Client: unknown top-level field (did you mean 'client'?)"),
        ({"govrnance": {}}, "govrnance: unknown top-level field (did you mean 'governance'?)"),
        ({"auth_config": {"is_enabled": True}}, "did you mean 'governance.auth_config'?"),
        ({"client": {"enforce_auth_on_inferance": True}},
         "client.enforce_auth_on_inferance: unknown field (did you mean 'enforce_auth_on_inference'?)"),
        ({"client": {"required_headers": ["x-team"]}}, "client.required_headers: unknown field"),
        ({"governance": {"store": {"type": "memory"}, "virtual_key": []}},
         "governance.virtual_key: unknown field (did you mean 'virtual_keys'?)"),
        ({"governance": {"store": {"type": "memory"}, "model_configs": []}}, "governance.model_configs"),
        ({"governance": {"store": {"type": "memory"}, "auth_config": {"enabled": True}}},
         "governance.auth_config.enabled: unknown field (did you mean 'is_enabled'?)"),
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


# -- config that must not fail quietly ------------------------------------------------------------------


def test_every_unknown_security_field_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        GatewayConfig.from_dict({"clinet": {}, "client": {"frobnicate": 1}})
    assert "clinet" in str(info.value)
    assert "client.frobnicate" in str(info.value)


def test_bifrost_client_options_we_do_not_implement_still_load(caplog: pytest.LogCaptureFixture) -> None:
    data = {
        "client": {"initial_pool_size": 300, "allowed_origins": ["*"], "enable_logging": True},
        "governance": {"store": {"type": "memory"}, "routing_rules": []},
        "plugins": [{"name": "maxim", "enabled": True, "config": {}}],
        "config_store": {"enabled": False},
    }
    with caplog.at_level(logging.WARNING, logger="bifrost_asgi.config"):
        GatewayConfig.from_dict(data)
    for name in ("client.initial_pool_size", "client.allowed_origins", "governance.routing_rules"):
        assert f"{name} is Bifrost's; bifrost-asgi does not implement it" in caplog.text
    assert "plugin 'maxim' is not run" in caplog.text and "'config_store'" in caplog.text


@pytest.mark.parametrize("alias", ["enforce_governance_header", "enforce_scim_auth"])
def test_bifrost_deprecated_enforcement_flags_enforce(alias: str) -> None:
    config = GatewayConfig.from_dict({"client": {alias: True}})
    assert config.client.enforce_auth_on_inference is True


@pytest.mark.parametrize(
    ("provider", "given", "used"),
    [
        ({"openai": {"keys": [{"value": "k"}]}}, "https://api.openai.com/v1", "https://api.openai.com"),
        ({"openai": {"keys": [{"value": "k"}]}}, "https://api.openai.com/v1/", "https://api.openai.com"),
        ({"groq": {"keys": [{"value": "k"}]}}, "https://api.groq.com/openai/v1", "https://api.groq.com/openai"),
        ({"mine": {"kind": "openai-compatible"}}, "http://10.0.0.5:8000/v1", "http://10.0.0.5:8000"),
        ({"anthropic": {"keys": [{"value": "k"}]}}, "https://api.anthropic.com/v1", "https://api.anthropic.com"),
        ({"gemini": {"keys": [{"value": "k"}]}}, "https://generativelanguage.googleapis.com/v1beta",
         "https://generativelanguage.googleapis.com"),
        ({"mine": {"custom_provider_config": {"base_provider_type": "openai"}}}, "http://h:8000/v1",
         "http://h:8000"),
        ({"vllm": {}}, "http://h:8000/v1", "http://h:8000"),
        ({"mine": {}}, "http://h/v1", "http://h/v1"),  # may be the host's own provider: its paths are its own
        ({"openai": {"keys": [{"value": "k"}]}}, "http://v1", "http://v1"),  # a host named v1 is a host
        ({"openai": {"keys": [{"value": "k"}]}}, "http://h/api/v10", "http://h/api/v10"),
    ],
)  # fmt: skip
def test_base_url_copied_with_its_version_is_accepted(
    provider: dict[str, dict[str, object]], given: str, used: str, caplog: pytest.LogCaptureFixture
) -> None:
    ((name, pc),) = provider.items()
    data = {"providers": {name: {**pc, "network_config": {"base_url": given}}}}
    with caplog.at_level(logging.WARNING, logger="bifrost_asgi.config"):
        config = GatewayConfig.from_dict(data)
    assert config.providers[name].network_config.base_url == used
    if used != given.rstrip("/"):
        assert f"providers.{name}.network_config.base_url ends with" in caplog.text
    else:
        assert "base_url" not in caplog.text


async def test_a_v1_base_url_reaches_the_upstream(upstream_url: str, upstream: Upstream) -> None:
    """The whole way: OpenAI's documented base URL, a real upstream, the openai SDK."""
    config = {
        "providers": {
            "openai": {"keys": [{"value": "sk-t"}], "network_config": {"base_url": upstream_url + "/v1"}}
        }
    }
    live = serve(create_app(GatewayConfig.from_dict(config)))
    try:
        async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="x") as client:
            answer = await client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        live.stop()
    assert answer.choices[0].message.content
    assert [r.path for r in upstream.state.requests] == ["/v1/chat/completions"]
