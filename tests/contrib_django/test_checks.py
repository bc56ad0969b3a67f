"""System checks: each misconfiguration is reported with its own stable id, and a good one with none."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("django")

from django.conf import settings  # noqa: E402
from django.core.checks import CheckMessage, run_checks  # noqa: E402
from django.test import override_settings  # noqa: E402

from bifrost_django import checks  # noqa: E402

GOOD: dict[str, Any] = {"PROVIDERS": {"mock": {}}}


def bifrost_checks() -> list[CheckMessage]:
    return list(run_checks(tags=["bifrost"]))


def ids(messages: list[CheckMessage]) -> list[str]:
    return sorted(str(m.id) for m in messages)


def test_the_test_project_is_clean() -> None:
    assert bifrost_checks() == []


def test_a_good_minimal_configuration_is_clean() -> None:
    with override_settings(BIFROST=GOOD):
        assert bifrost_checks() == []


def test_missing_bifrost_setting_is_e001() -> None:
    with override_settings():
        del settings.BIFROST
        assert ids(bifrost_checks()) == ["bifrost.E001"]


@pytest.mark.parametrize("value", [[], "openai", None])
def test_a_bifrost_setting_that_is_not_a_dict_is_e001(value: Any) -> None:
    with override_settings(BIFROST=value):
        assert ids(bifrost_checks()) == ["bifrost.E001"]


@pytest.mark.parametrize(
    ("providers", "named"),
    [
        ({"openai": {"keys": []}}, "providers.openai.keys: at least one key is required"),
        (
            {"openai": {"keys": [{"value": "env.BIFROST_TEST_UNSET_VARIABLE"}]}},
            "BIFROST_TEST_UNSET_VARIABLE is not set",
        ),
        ({"my-vllm": {"kind": "openai-compatible"}}, "providers.my-vllm.network_config.base_url: required"),
        ({"mock": {"network_config": {"max_retries": -1}}}, "providers.mock.network_config.max_retries"),
    ],
    ids=["no-keys", "missing-env", "no-base-url", "bad-number"],
)
def test_an_invalid_provider_is_e002_with_the_cores_message(providers: dict[str, Any], named: str) -> None:
    with override_settings(BIFROST={"PROVIDERS": providers}):
        [message] = bifrost_checks()
    assert message.id == "bifrost.E002"
    assert named in message.msg


@pytest.mark.parametrize(
    ("removed", "check_id"),
    [
        ("django.contrib.sessions.middleware.SessionMiddleware", "bifrost.E003"),
        ("django.contrib.auth.middleware.AuthenticationMiddleware", "bifrost.E004"),
        ("django.middleware.csrf.CsrfViewMiddleware", "bifrost.E005"),
    ],
)
def test_missing_middleware(removed: str, check_id: str) -> None:
    with override_settings(MIDDLEWARE=[m for m in settings.MIDDLEWARE if m != removed]):
        assert ids(bifrost_checks()) == [check_id]


def test_a_middleware_subclass_counts() -> None:
    custom = "tests.contrib_django.middleware.StrictCsrf"
    middleware = [custom if m.endswith("CsrfViewMiddleware") else m for m in settings.MIDDLEWARE]
    with override_settings(MIDDLEWARE=middleware):
        assert bifrost_checks() == []


@pytest.mark.parametrize(
    "extra",
    [
        {"COUNTERS": "memcached"},
        {"COUNTERS": "redis"},
        {"COUNTERS": "redis", "REDIS_URL": "http://localhost"},
        {"DB_THREADS": 0},
    ],
    ids=["unknown-backend", "redis-without-url", "redis-bad-url", "no-threads"],
)
def test_bad_counters_are_e006(extra: dict[str, Any]) -> None:
    with override_settings(BIFROST={**GOOD, **extra}):
        assert ids(bifrost_checks()) == ["bifrost.E006"]


def test_redis_counters_without_the_package_are_e007(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "_redis_installed", lambda: False)
    with override_settings(BIFROST={**GOOD, "COUNTERS": "redis", "REDIS_URL": "redis://127.0.0.1:6379/0"}):
        [message] = bifrost_checks()
    assert message.id == "bifrost.E007"
    assert "pip install 'bifrost-asgi[redis]'" in str(message.hint)


def test_redis_counters_with_the_package_are_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "_redis_installed", lambda: True)
    with override_settings(BIFROST={**GOOD, "COUNTERS": "redis", "REDIS_URL": "redis://127.0.0.1:6379/0"}):
        assert bifrost_checks() == []


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ({"budgets": [{"max_limit": -1}]}, "DEFAULT_KEY'].budgets.0.max_limit"),
        ({"rate_limit": {"request_max_limit": 10, "request_reset_duration": "fortnight"}}, "rate_limit"),
        ({"provider_configs": [{"weight": 1}]}, "provider_configs.0.provider"),
        ("all", "must be a dict"),
    ],
)
def test_an_invalid_default_key_is_e008(template: Any, named: str) -> None:
    with override_settings(BIFROST={**GOOD, "DEFAULT_KEY": template}):
        [message] = bifrost_checks()
    assert message.id == "bifrost.E008"
    assert named in message.msg


@pytest.mark.parametrize("option", ["store", "counters", "virtual_keys", "auth_config"])
def test_governance_options_the_app_does_not_use_are_e009(option: str) -> None:
    with override_settings(BIFROST={**GOOD, "GOVERNANCE": {option: {}}}):
        [message] = bifrost_checks()
    assert message.id == "bifrost.E009"
    assert repr(option) in message.msg


def test_governance_options_the_app_uses_are_fine() -> None:
    governance = {"default_max_output_tokens": 256, "key_cache_ttl_seconds": 1, "logs": {"batch_size": 10}}
    with override_settings(BIFROST={**GOOD, "GOVERNANCE": governance}):
        assert bifrost_checks() == []


def test_unknown_settings_are_w001() -> None:
    with override_settings(BIFROST={**GOOD, "PROVIDER": {}, "COUNTER": "orm"}):
        [message] = bifrost_checks()
    assert message.id == "bifrost.W001"
    assert "COUNTER, PROVIDER" in message.msg


def test_sqlite_without_immediate_transactions_is_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh project's SQLite settings: the counters take the write lock themselves (no W002 any more).
    monkeypatch.setitem(settings.DATABASES["default"], "OPTIONS", {})
    assert bifrost_checks() == []


def test_several_problems_are_all_reported() -> None:
    middleware = [m for m in settings.MIDDLEWARE if "csrf" not in m]
    with override_settings(
        MIDDLEWARE=middleware, BIFROST={"PROVIDERS": {"openai": {}}, "COUNTERS": "x", "X": 1}
    ):
        assert ids(bifrost_checks()) == ["bifrost.E002", "bifrost.E005", "bifrost.E006", "bifrost.W001"]
