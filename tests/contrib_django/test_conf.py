"""``settings.BIFROST`` becomes the core's `GatewayConfig`; bad settings fail by name, never silently."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

pytest.importorskip("django")

from django.test import override_settings  # noqa: E402
from django.urls import resolve  # noqa: E402

from bifrost_asgi import ConfigError  # noqa: E402
from bifrost_django import _runtime  # noqa: E402
from bifrost_django.conf import conf  # noqa: E402
from bifrost_django.views import gateway_async, gateway_sync  # noqa: E402

FULL: dict[str, Any] = {
    "PROVIDERS": {"openai": {"keys": [{"value": "sk-x"}], "network_config": {"base_url": "http://up:1"}}},
    "CLIENT": {"enforce_auth_on_inference": True, "max_request_body_size_mb": 2},
    "COUNT_TOKENS": {"openai_mode": "provider"},
    "PRICING_OVERRIDES": {"gpt-4o": {"input_cost_per_token": 1e-6}},
    "HTTP_TRANSPORT": "httpx",
    "MAX_CONNECTIONS": 50,
    "GOVERNANCE": {"default_max_output_tokens": 256, "logs": {"batch_size": 7}},
    "DEFAULT_KEY": {"allow_all_providers": False, "provider_configs": [{"provider": "openai"}]},
}


def test_every_setting_reaches_the_gateway_config() -> None:
    with override_settings(BIFROST=FULL):
        config = conf.gateway_config()
    assert config.providers["openai"].network_config.base_url == "http://up:1"
    assert config.providers["openai"].keys[0].value.get_secret_value() == "sk-x"
    assert config.client.enforce_auth_on_inference and config.client.max_request_body_size_mb == 2
    assert config.count_tokens.openai_mode == "provider"
    assert config.pricing_overrides == {"gpt-4o": {"input_cost_per_token": 1e-6}}
    assert config.max_connections == 50
    assert config.governance is not None
    assert config.governance.default_max_output_tokens == 256 and config.governance.logs.batch_size == 7
    template = config.governance.default_user_key
    assert (template.allow_all_providers, template.provider_configs) == (False, [{"provider": "openai"}])


def test_defaults() -> None:
    with override_settings(BIFROST={}):
        assert (conf.COUNTERS, conf.DEFAULT_KEY, conf.DB_THREADS) == ("orm", {"allow_all_providers": True}, 8)
        config = conf.gateway_config()
    assert config.providers == {} and config.governance is not None


@pytest.mark.parametrize(
    ("bifrost", "named"),
    [
        ([], "settings.BIFROST must be a dict"),
        ({"COUNTERS": "memcached"}, "BIFROST['COUNTERS']"),
        ({"GOVERNANCE": {"store": {"type": "memory"}}}, "'store'"),
        ({"DEFAULT_KEY": {"budgets": [{"max_limit": 0}]}}, "BIFROST['DEFAULT_KEY'].budgets.0.max_limit"),
        ({"PROVIDERS": {"openai": {}}}, "providers.openai.keys"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_it(bifrost: Any, named: str) -> None:
    with override_settings(BIFROST=bifrost), pytest.raises(ConfigError, match=named.replace("[", r"\[")):
        conf.gateway_config()


def test_settings_are_read_when_used_and_the_gateway_is_rebuilt() -> None:
    first = _runtime.asgi_gateway()
    assert _runtime.asgi_gateway() is first  # one per process
    with override_settings(BIFROST={**FULL, "COUNTERS": "redis", "REDIS_URL": "redis://127.0.0.1:1/0"}):
        assert conf.COUNTERS == "redis"
        rebuilt = _runtime.asgi_gateway()
        assert rebuilt is not first and rebuilt.max_body == 2 * 1024 * 1024
    assert conf.COUNTERS == "orm"


def test_the_urlconf_picks_the_sync_view_off_the_event_loop() -> None:
    match = resolve("/ai/v1/chat/completions")
    assert match.func is gateway_sync and match.kwargs == {"subpath": "v1/chat/completions"}
    assert resolve("/ai/").kwargs == {"subpath": ""}


async def test_the_urlconf_picks_the_async_view_on_the_event_loop() -> None:
    assert resolve("/ai/v1/responses").func is gateway_async


def test_importing_the_app_without_django_says_what_to_install() -> None:
    code = "import sys; sys.modules['django'] = None; import bifrost_django"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "pip install 'bifrost-asgi[django]'" in result.stderr
