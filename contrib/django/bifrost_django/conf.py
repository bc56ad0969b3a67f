"""``settings.BIFROST``: the app's whole configuration in one dict, read lazily, one attribute per setting
(django-cors-headers' ``conf.py``), and translated into the core's `GatewayConfig`.

::

    BIFROST = {
        "PROVIDERS": {"openai": {"keys": [{"value": "env.OPENAI_API_KEY"}]}},   # config.json's providers
        "CLIENT": {"enforce_auth_on_inference": True},                           # config.json's client
        "GOVERNANCE": {"default_max_output_tokens": 1024, "logs": {"flush_interval_ms": 500}},
        "DEFAULT_KEY": {"budgets": [{"max_limit": 5, "reset_duration": "1M"}]},  # each user's default key
        "COUNTERS": "orm",                                                       # or "redis" + REDIS_URL
    }

Values inside each section keep the shapes of Bifrost's ``config.json``. Nothing is read at import time,
so ``override_settings`` works, and a bad value is reported by ``manage.py check`` (see checks.py) and,
should the checks not run, by a `ConfigError` on the first request.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from pydantic import ValidationError

from bifrost_asgi import ConfigError, GatewayConfig
from bifrost_asgi.governance import VirtualKey

__all__ = ["COUNTER_BACKENDS", "GOVERNANCE_OPTIONS", "KNOWN_SETTINGS", "Settings", "conf"]

COUNTER_BACKENDS = ("orm", "redis")
# The parts of config.json's `governance` section that still mean something here: keys, teams and
# customers live in the database (the admin, /api/...), counters are chosen with COUNTERS.
GOVERNANCE_OPTIONS = frozenset({"default_max_output_tokens", "key_cache_ttl_seconds", "logs"})
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class _Setting:
    """One key of ``settings.BIFROST``, read each time it is used (so ``override_settings`` applies), or a
    fresh copy of its default when the key is absent."""

    def __init__(self, default: Any) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, settings_: Settings | None, owner: type | None = None) -> Any:
        if settings_ is None:  # read on the class: the descriptor itself
            return self
        bifrost = settings_.BIFROST
        return bifrost[self.name] if self.name in bifrost else copy.deepcopy(self.default)


class Settings:
    """Each setting (a `_Setting`) reads ``settings.BIFROST`` when used.

    >>> from bifrost_django.conf import conf
    >>> conf.COUNTERS
    'orm'
    """

    @property
    def BIFROST(self) -> Mapping[str, Any]:
        value = getattr(settings, "BIFROST", None)
        return value if isinstance(value, Mapping) else {}

    PROVIDERS = _Setting({})
    CLIENT = _Setting({})
    GOVERNANCE = _Setting({})
    COUNT_TOKENS = _Setting({})
    PRICING_OVERRIDES = _Setting({})
    HTTP_TRANSPORT = _Setting("httpx")
    MAX_CONNECTIONS = _Setting(1000)
    # What a user's default key (created on their first session call) and the keys they create
    # themselves allow. The safe default is every configured provider with no limits: the host
    # already decided who may sign in; budgets are an opt-in, as in Bifrost.
    DEFAULT_KEY = _Setting({"allow_all_providers": True})
    # The database by default: exact across every worker and host that share it, with no extra service.
    COUNTERS = _Setting("orm")
    REDIS_URL = _Setting(None)
    REDIS_PREFIX = _Setting("bifrost:")
    # Closed by default: with Redis unreachable, refusing (503) is safer than spending without limits.
    REDIS_FAIL_OPEN = _Setting(False)
    # Threads (so database connections) per process for the gateway's own queries: enough for
    # admission, settlement and log writes to overlap, few enough to leave the pool to the site.
    DB_THREADS = _Setting(8)
    # The host's own team/organisation model, whose members' keys belong to its team (host_teams.py).
    TEAM_MODEL = _Setting(None)
    TEAM_MEMBERS = _Setting(None)

    # -- validation: each returns a message naming the setting, or None ------------------------------

    def unknown_settings(self) -> list[str]:
        return sorted(str(name) for name in self.BIFROST if name not in KNOWN_SETTINGS)

    def counters_error(self) -> str | None:
        if self.COUNTERS not in COUNTER_BACKENDS:
            return f"BIFROST['COUNTERS'] must be one of {', '.join(map(repr, COUNTER_BACKENDS))}"
        if self.COUNTERS == "redis" and not (
            isinstance(self.REDIS_URL, str) and self.REDIS_URL.startswith(_REDIS_SCHEMES)
        ):
            return (
                "BIFROST['REDIS_URL'] must be a redis://, rediss:// or unix:// URL when COUNTERS is 'redis'"
            )
        if not isinstance(self.DB_THREADS, int) or self.DB_THREADS < 1:
            return "BIFROST['DB_THREADS'] must be a positive integer"
        return None

    def governance_error(self) -> str | None:
        if not isinstance(self.GOVERNANCE, Mapping):
            return "BIFROST['GOVERNANCE'] must be a dict"
        unused = sorted(str(k) for k in self.GOVERNANCE if k not in GOVERNANCE_OPTIONS)
        if unused:
            return (
                f"BIFROST['GOVERNANCE'] has {', '.join(map(repr, unused))}, which the Django app does not "
                "use: keys, teams and customers live in the database and counters are chosen with COUNTERS "
                f"(allowed: {', '.join(sorted(GOVERNANCE_OPTIONS))})"
            )
        return None

    def default_key_error(self) -> str | None:
        template = self.DEFAULT_KEY
        if not isinstance(template, Mapping):
            return "BIFROST['DEFAULT_KEY'] must be a dict"
        try:
            # Validated as a whole key now, not on some user's first call.
            VirtualKey.model_validate({"id": "check", "name": "default", **template})
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            return f"BIFROST['DEFAULT_KEY'].{where}: {first['msg']}"
        return None

    # -- translation ---------------------------------------------------------------------------------

    def gateway_dict(self) -> dict[str, Any]:
        """The settings in config.json's shape."""
        options = self.GOVERNANCE if isinstance(self.GOVERNANCE, Mapping) else {}
        governance = {k: v for k, v in options.items() if k in GOVERNANCE_OPTIONS}
        return {
            "providers": self.PROVIDERS,
            "client": self.CLIENT,
            "count_tokens": self.COUNT_TOKENS,
            "pricing_overrides": self.PRICING_OVERRIDES,
            "http_transport": self.HTTP_TRANSPORT,
            "max_connections": self.MAX_CONNECTIONS,
            "governance": {**governance, "default_user_key": self.DEFAULT_KEY},
        }

    def gateway_config(self) -> GatewayConfig:
        """The `GatewayConfig` these settings describe; `ConfigError` names the first bad setting."""
        if not isinstance(getattr(settings, "BIFROST", None), Mapping):
            raise ConfigError("settings.BIFROST must be a dict")
        for problem in (self.counters_error(), self.governance_error(), self.default_key_error()):
            if problem is not None:
                raise ConfigError(problem)
        return GatewayConfig.from_dict(self.gateway_dict(), source="settings.BIFROST")


# Every setting the app reads: the ones `Settings` declares (anything else in BIFROST is a typo).
KNOWN_SETTINGS = frozenset(name for name, value in vars(Settings).items() if isinstance(value, _Setting))

conf = Settings()
