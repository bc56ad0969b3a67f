"""System checks: each misconfiguration is reported by ``manage.py check`` (and before ``runserver``,
``migrate``, ...) with a stable id, instead of failing on some user's first request.

=============  =====================================================================================
bifrost.E001   ``settings.BIFROST`` is missing or not a dict
bifrost.E002   the gateway configuration is invalid (the core's `ConfigError`, naming the field)
bifrost.E003   ``SessionMiddleware`` is missing (signed-in users are how calls are charged)
bifrost.E004   ``AuthenticationMiddleware`` is missing
bifrost.E005   ``CsrfViewMiddleware`` is missing (it sets the CSRF cookie session calls need)
bifrost.E006   ``COUNTERS``, ``REDIS_URL`` or ``DB_THREADS`` is invalid
bifrost.E007   ``COUNTERS`` is ``"redis"`` but the redis package is not installed
bifrost.E008   ``DEFAULT_KEY`` is not a valid key template
bifrost.E009   ``GOVERNANCE`` sets options the Django app does not use (stores, seeded keys, ...)
bifrost.E010   ``TEAM_MODEL`` / ``TEAM_MEMBERS`` do not name a model and the lookup to its users
bifrost.W001   ``settings.BIFROST`` has keys this version does not know (typos)
=============  =====================================================================================

(``bifrost.W002``, SQLite counters without ``transaction_mode: IMMEDIATE``, is retired: the app's own
transactions now take SQLite's write lock up front, so a fresh project's settings are safe.)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning
from django.utils.module_loading import import_string

from bifrost_asgi import ConfigError, GatewayConfig

from .conf import KNOWN_SETTINGS, conf
from .host_teams import configured_error

__all__ = ["check_settings"]

_MIDDLEWARE = (
    ("django.contrib.sessions.middleware.SessionMiddleware", "bifrost.E003"),
    ("django.contrib.auth.middleware.AuthenticationMiddleware", "bifrost.E004"),
    ("django.middleware.csrf.CsrfViewMiddleware", "bifrost.E005"),
)


def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[CheckMessage]:
    if not isinstance(getattr(settings, "BIFROST", None), Mapping):
        hint = 'e.g. BIFROST = {"PROVIDERS": {"openai": {"keys": [{"value": "env.OPENAI_API_KEY"}]}}}'
        return [Error("settings.BIFROST must be a dict describing the gateway", hint=hint, id="bifrost.E001")]
    return [
        *_unknown_settings(),
        *_gateway_config(),
        *_middleware(),
        *_counters(),
        *_default_key(),
        *_governance(),
        *_host_teams(),
    ]


def _unknown_settings() -> list[CheckMessage]:
    unknown = conf.unknown_settings()
    if not unknown:
        return []
    return [
        CheckWarning(
            f"settings.BIFROST has unknown keys: {', '.join(unknown)}",
            hint=f"known keys: {', '.join(sorted(KNOWN_SETTINGS))}",
            id="bifrost.W001",
        )
    ]


def _gateway_config() -> list[CheckMessage]:
    data = conf.gateway_dict()
    if conf.default_key_error() is not None:
        data["governance"].pop("default_user_key")  # reported once, by bifrost.E008
    try:
        GatewayConfig.from_dict(data, source="settings.BIFROST")
    except ConfigError as exc:
        return [Error(str(exc), id="bifrost.E002")]
    return []


def _installed(path: str) -> bool:
    target = import_string(path)
    for entry in settings.MIDDLEWARE:
        try:
            middleware = import_string(entry)
        except ImportError:
            continue  # Django's own checks report an unimportable middleware
        if isinstance(middleware, type) and issubclass(middleware, target):
            return True
    return False


def _middleware() -> list[CheckMessage]:
    return [
        Error(f"{path} must be in MIDDLEWARE: bifrost_django authenticates users with it", id=check_id)
        for path, check_id in _MIDDLEWARE
        if not _installed(path)
    ]


def _counters() -> list[CheckMessage]:
    problem = conf.counters_error()
    if problem is not None:
        return [Error(problem, id="bifrost.E006")]
    if conf.COUNTERS == "redis" and not _redis_installed():
        return [
            Error(
                "BIFROST['COUNTERS'] is 'redis' but the redis package is not installed",
                hint="pip install 'bifrost-asgi[redis]'",
                id="bifrost.E007",
            )
        ]
    return []


def _redis_installed() -> bool:
    return importlib.util.find_spec("redis") is not None


def _default_key() -> list[CheckMessage]:
    problem = conf.default_key_error()
    return [] if problem is None else [Error(problem, id="bifrost.E008")]


def _host_teams() -> list[CheckMessage]:
    problem = configured_error()
    hint = 'e.g. "TEAM_MODEL": "accounts.Organisation", "TEAM_MEMBERS": "members"'
    return [] if problem is None else [Error(problem, hint=hint, id="bifrost.E010")]


def _governance() -> list[CheckMessage]:
    problem = conf.governance_error()
    return [] if problem is None else [Error(problem, id="bifrost.E009")]
