"""The ``governance`` section of config.json: where keys and counters live, admin auth, and the
virtual keys, budgets, rate limits, teams and customers Bifrost's config declares flat and links by id
(spec §14).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bifrost_asgi.governance.jwt import JWTConfig

__all__ = ["ConfigSection", "GovernanceConfig", "SeedError"]


class SeedError(ValueError):
    """A seeded governance record is inconsistent; the message names it."""


class ConfigSection(BaseModel):
    """One section of config.json. Unknown fields survive validation (``extra="allow"``) so that the loader
    can name them: a warning in most sections, a startup error in a ``strict`` one.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    # Who may call and spend is decided here: a typo ("enforce_auth_on_inferance") silently leaving the
    # gateway open must stop startup instead of being ignored with a warning.
    strict: ClassVar[bool] = False
    # Bifrost's own fields that bifrost-asgi does not implement and that cannot loosen access when ignored
    # (CORS lists, pool sizes, MCP options, ...): real Bifrost configs keep loading, with a warning.
    bifrost_only: ClassVar[frozenset[str]] = frozenset()


class AuthConfig(ConfigSection):
    strict = True

    is_enabled: bool = False
    admin_username: str | None = None
    admin_password: SecretStr | None = None
    disable_auth_on_inference: bool = False


class StoreConfig(ConfigSection):
    type: Literal["sqlite", "memory"] = "sqlite"
    path: str = "bifrost.db"


class CountersConfig(ConfigSection):
    # Default: the same SQLite file as the keys (safe across processes on one machine).
    type: Literal["memory", "sqlite", "redis"] = "sqlite"
    path: str | None = None
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "bifrost:"
    fail_open: bool = False  # Redis unreachable: refuse with 503 (false) or admit unmetered (true)
    # How long a Redis call may take before the store counts as down (a script takes microseconds).
    timeout_seconds: float = Field(default=1.0, gt=0)
    # A reservation nobody settled (its worker was killed mid-request) is released this many seconds
    # after its admission. Longer than any request runs; see RESERVATION_TTL in stores/counters.py.
    reservation_ttl_seconds: float = Field(default=900.0, gt=0)
    # Shared counters (SQLite, Redis, Django ORM): far from a limit, each worker reserves a slice of it and
    # admits from that without a round trip (stores/leases.py). A worker's usage reaches the shared
    # counters within lease_seconds; limits stay exact. false: every request asks the store.
    leases: bool = True
    lease_seconds: float = Field(default=0.25, gt=0, le=60)


class LogsConfig(ConfigSection):
    enabled: bool = True
    path: str | None = None  # default: the key store's file
    batch_size: int = Field(default=200, gt=0)
    flush_interval_ms: int = Field(default=500, gt=0)
    # Ours: prompts and answers stored with each record: off unless turned on here for every request, or
    # for the virtual keys listed (docs/observability.md). Never request headers, never secrets.
    content: bool = False
    content_virtual_keys: tuple[str, ...] = ()
    content_max_chars: int = Field(default=32_000, gt=0)


class SeedRateLimit(ConfigSection):
    id: str
    request_max_limit: int | None = None
    request_reset_duration: str | None = None
    token_max_limit: int | None = None
    token_reset_duration: str | None = None


class SeedBudget(ConfigSection):
    id: str
    max_limit: float
    reset_duration: str = "1M"
    calendar_aligned: bool = False
    alert_percentages: tuple[float, ...] = ()  # ours: budget_threshold_crossed at these percentages
    virtual_key_id: str | None = None
    team_id: str | None = None
    customer_id: str | None = None
    provider_config_id: str | None = None


class SeedProviderConfig(ConfigSection):
    id: str | None = None
    provider: str
    allowed_models: list[str] = Field(default_factory=lambda: ["*"])
    blacklisted_models: list[str] = Field(default_factory=list)
    key_ids: list[str] = Field(default_factory=lambda: ["*"])
    weight: float = 1.0
    rate_limit_id: str | None = None


class SeedVirtualKey(ConfigSection):
    id: str
    name: str
    value: SecretStr | None = None
    description: str = ""
    is_active: bool = True
    owner: str | None = None
    team_id: str | None = None
    customer_id: str | None = None
    rate_limit_id: str | None = None
    calendar_aligned: bool = False
    allow_all_providers: bool = False
    provider_configs: list[SeedProviderConfig] = Field(default_factory=list)


class SeedTeam(ConfigSection):
    id: str
    name: str = ""
    customer_id: str | None = None
    budget_id: str | None = None
    rate_limit_id: str | None = None


class SeedCustomer(ConfigSection):
    id: str
    name: str = ""
    budget_id: str | None = None
    rate_limit_id: str | None = None


class KeyTemplate(ConfigSection):
    """What a host user's default virtual key allows (created on the user's first session call)."""

    allow_all_providers: bool = True
    provider_configs: list[dict[str, Any]] = Field(default_factory=list)
    budgets: list[dict[str, Any]] = Field(default_factory=list)
    rate_limit: dict[str, Any] | None = None


class GovernanceConfig(ConfigSection):
    strict = True
    # Bifrost's CEL routing rules pick targets, never who may spend. (Its `model_configs` carry budgets and
    # rate limits: ignored, they would be limits silently not enforced, so they are an error.)
    bifrost_only = frozenset({"routing_rules"})

    store: StoreConfig = StoreConfig()
    counters: CountersConfig = CountersConfig()
    logs: LogsConfig = LogsConfig()
    auth_config: AuthConfig = AuthConfig()
    # Output tokens reserved at admission when a request sets no max_*_tokens.
    default_max_output_tokens: int = Field(default=1024, gt=0)
    # How long a process trusts a cached key lookup; revocations elsewhere apply within this.
    key_cache_ttl_seconds: float = Field(default=2.0, ge=0)
    default_user_key: KeyTemplate = KeyTemplate()
    # Signed tokens (seed 003): a JWT carrying a virtual key id, or an admin token for /api.
    jwt_auth: JWTConfig | None = None
    virtual_keys: list[SeedVirtualKey] = Field(default_factory=list)
    budgets: list[SeedBudget] = Field(default_factory=list)
    rate_limits: list[SeedRateLimit] = Field(default_factory=list)
    teams: list[SeedTeam] = Field(default_factory=list)
    customers: list[SeedCustomer] = Field(default_factory=list)


def resolve_env_secrets(data: dict[str, Any]) -> dict[str, Any]:
    """``env.VAR`` for seeded key values and the admin credentials, resolved before validation."""
    out = dict(data)
    auth = out.get("auth_config")
    if isinstance(auth, dict):
        out["auth_config"] = {k: _env(v, f"governance.auth_config.{k}") for k, v in auth.items()}
    jwt_auth = out.get("jwt_auth")
    if isinstance(jwt_auth, dict):
        out["jwt_auth"] = {k: _env(v, f"governance.jwt_auth.{k}") for k, v in jwt_auth.items()}
    keys = out.get("virtual_keys")
    if isinstance(keys, list):
        out["virtual_keys"] = [
            {**k, "value": _env(k["value"], f"governance.virtual_keys[{i}].value")}
            if isinstance(k, dict) and isinstance(k.get("value"), str)
            else k
            for i, k in enumerate(keys)
        ]
    return out


def _env(value: Any, field: str) -> Any:
    if isinstance(value, str) and value.startswith("env."):
        resolved = os.environ.get(value[4:])
        if resolved is None:
            raise SeedError(f"{field}: environment variable {value[4:]} is not set")
        return resolved
    return value
