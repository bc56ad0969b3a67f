"""Governance records: virtual keys with their provider rules, budgets and rate limits; teams; customers;
provider-level limits.

The shapes follow Bifrost (spec §6.2). A key's secret is never here: only its lookup prefix and hash.
Budgets and rate limits carry an ``id`` once the management API (or config.json) has named them; a
record without one is shown under a stable derived id (``routes/present.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from bifrost_asgi.governance.windows import parse_duration

__all__ = [
    "Budget",
    "Customer",
    "ProviderGovernance",
    "ProviderRule",
    "RateLimit",
    "Team",
    "VirtualKey",
    "model_matches",
    "unique_windows",
]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Budget(_Record):
    id: str = ""
    max_limit: float = Field(gt=0)  # dollars
    reset_duration: str = "1M"
    calendar_aligned: bool = False
    # Ours: the percentages at which budget_threshold_crossed fires (empty: telemetry's default).
    alert_percentages: tuple[float, ...] = ()

    @field_validator("reset_duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_serializer(mode="wrap")
    def _bifrost_shape(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Bifrost's budget shape: our alert percentages appear only when a budget sets them."""
        data: dict[str, Any] = handler(self)
        if not self.alert_percentages:
            data.pop("alert_percentages", None)
        return data


class RateLimit(_Record):
    id: str = ""
    token_max_limit: int | None = Field(default=None, gt=0)
    token_reset_duration: str | None = None
    request_max_limit: int | None = Field(default=None, gt=0)
    request_reset_duration: str | None = None

    @field_validator("token_reset_duration", "request_reset_duration")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


def unique_windows(budgets: Sequence[Budget]) -> Sequence[Budget]:
    """One budget per reset window, as Bifrost requires of new records: the window names the budget's
    counter, so it is what an update matches an existing budget by. Checked where records are made (the
    management API, config.json, the Django admin); the engine tolerates older records that break it."""
    seen: set[str] = set()
    for budget in budgets:
        window = str(parse_duration(budget.reset_duration))
        if window in seen:
            raise ValueError(f"duplicate reset_duration in budgets: {budget.reset_duration}")
        seen.add(window)
    return budgets


def model_matches(patterns: tuple[str, ...], model: str) -> bool:
    """Exact names, ``*`` for all, or ``regex:<pattern>`` (full match)."""
    for pattern in patterns:
        if pattern == "*" or pattern == model:
            return True
        if pattern.startswith("regex:") and re.fullmatch(pattern[6:], model):
            return True
    return False


class ProviderRule(_Record):
    """``provider_configs[]``: which provider a key may use, with which models, at what weight and limits."""

    provider: str
    weight: float = Field(default=1.0, ge=0)
    allowed_models: tuple[str, ...] = ("*",)
    blacklisted_models: tuple[str, ...] = ()
    budgets: tuple[Budget, ...] = ()
    rate_limit: RateLimit | None = None

    def allows(self, model: str) -> bool:
        # The blacklist wins over the allowlist (spec §6.2).
        if model_matches(self.blacklisted_models, model):
            return False
        return model_matches(self.allowed_models, model)


class Team(_Record):
    """A group of keys sharing budgets and a rate limit, optionally under a customer."""

    id: str
    name: str = ""
    customer_id: str | None = None
    budgets: tuple[Budget, ...] = ()
    rate_limit: RateLimit | None = None
    created_at: float = 0.0


class Customer(_Record):
    """The top of the hierarchy: its budgets and rate limit apply to its teams' keys and its own keys."""

    id: str
    name: str = ""
    budgets: tuple[Budget, ...] = ()
    rate_limit: RateLimit | None = None
    created_at: float = 0.0


class ProviderGovernance(_Record):
    """Limits on a whole provider, whoever calls it (with or without a virtual key), as Bifrost's
    ``/api/governance/providers/{provider}``."""

    provider: str
    budgets: tuple[Budget, ...] = ()
    rate_limit: RateLimit | None = None

    @property
    def empty(self) -> bool:
        return not self.budgets and self.rate_limit is None


class VirtualKey(_Record):
    """A virtual key. ``owner`` is an opaque user id the host adapters fill (a Django user pk, ...)."""

    id: str
    name: str
    description: str = ""
    is_active: bool = True
    expires_at: float | None = None  # unix seconds
    owner: str | None = None
    provider_configs: tuple[ProviderRule, ...] = ()
    allow_all_providers: bool = False
    budgets: tuple[Budget, ...] = ()
    rate_limit: RateLimit | None = None
    team_id: str | None = None
    customer_id: str | None = None
    key_prefix: str = ""
    key_hash: str = ""
    created_at: float = 0.0
    revoked_at: float | None = None

    @cached_property
    def rules(self) -> dict[str, ProviderRule]:
        return {rule.provider: rule for rule in self.provider_configs}

    def public(self) -> dict[str, Any]:
        """The record as shown to admins and owners: everything but the hash."""
        data = self.model_dump(mode="json", exclude={"key_hash"})
        data["value_hint"] = f"sk-bf-{self.key_prefix}…" if self.key_prefix else None
        return data
