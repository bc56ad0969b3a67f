"""``settings.BIFROST``: the app's whole configuration in one dict, read lazily, one property per setting
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
KNOWN_SETTINGS = frozenset(
    {
        "PROVIDERS",
        "CLIENT",
        "GOVERNANCE",
        "COUNT_TOKENS",
        "PRICING_OVERRIDES",
        "HTTP_TRANSPORT",
        "MAX_CONNECTIONS",
        "DEFAULT_KEY",
        "COUNTERS",
        "REDIS_URL",
        "REDIS_PREFIX",
        "REDIS_FAIL_OPEN",
        "DB_THREADS",
        "TEAM_MODEL",
        "TEAM_MEMBERS",
    }
)
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Settings:
    """Each property reads ``settings.BIFROST`` when used.

    >>> from bifrost_django.conf import conf
    >>> conf.COUNTERS
    'orm'
    """

    @property
    def BIFROST(self) -> Mapping[str, Any]:
        value = getattr(settings, "BIFROST", None)
        return value if isinstance(value, Mapping) else {}

    def _get(self, name: str, default: Any) -> Any:
        return self.BIFROST.get(name, default)

    @property
    def PROVIDERS(self) -> Any:
        return self._get("PROVIDERS", {})

    @property
    def CLIENT(self) -> Any:
        return self._get("CLIENT", {})

    @property
    def GOVERNANCE(self) -> Any:
        return self._get("GOVERNANCE", {})

    @property
    def COUNT_TOKENS(self) -> Any:
        return self._get("COUNT_TOKENS", {})

    @property
    def PRICING_OVERRIDES(self) -> Any:
        return self._get("PRICING_OVERRIDES", {})

    @property
    def HTTP_TRANSPORT(self) -> Any:
        return self._get("HTTP_TRANSPORT", "httpx")

    @property
    def MAX_CONNECTIONS(self) -> Any:
        return self._get("MAX_CONNECTIONS", 1000)

    @property
    def DEFAULT_KEY(self) -> Any:
        # What a user's default key (created on their first session call) and the keys they create
        # themselves allow. The safe default is every configured provider with no limits: the host
        # already decided who may sign in; budgets are an opt-in, as in Bifrost.
        return self._get("DEFAULT_KEY", {"allow_all_providers": True})

    @property
    def COUNTERS(self) -> Any:
        # The database by default: exact across every worker and host that share it, with no extra service.
        return self._get("COUNTERS", "orm")

    @property
    def REDIS_URL(self) -> Any:
        return self._get("REDIS_URL", None)

    @property
    def REDIS_PREFIX(self) -> Any:
        return self._get("REDIS_PREFIX", "bifrost:")

    @property
    def REDIS_FAIL_OPEN(self) -> Any:
        # Closed by default: with Redis unreachable, refusing (503) is safer than spending without limits.
        return self._get("REDIS_FAIL_OPEN", False)

    @property
    def DB_THREADS(self) -> Any:
        # Threads (so database connections) per process for the gateway's own queries: enough for
        # admission, settlement and log writes to overlap, few enough to leave the pool to the site.
        return self._get("DB_THREADS", 8)

    @property
    def TEAM_MODEL(self) -> Any:
        # The host's own team/organisation model, whose members' keys belong to its team (host_teams.py).
        return self._get("TEAM_MODEL", None)

    @property
    def TEAM_MEMBERS(self) -> Any:
        return self._get("TEAM_MEMBERS", None)

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


conf = Settings()
