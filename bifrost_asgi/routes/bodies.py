"""The management API's request bodies, in Bifrost's shapes, and how each one changes a record.

Bifrost's versions disagree on budgets: older clients send one ``budget: {...}`` (on a key, inside its
``provider_configs[]``, on a team, a customer or a provider), current ones send ``budgets: [...]``. Both
are accepted; records always hold the list. Budgets are matched to existing ones by ``reset_duration``
(as Bifrost reconciles them): a budget that keeps its window keeps its id and what was spent in it.

Unknown fields are refused by name rather than ignored, so nobody believes they changed something they did
not (``key_hash``, ``value``, ``id``, ``owner`` on an update, ...).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bifrost_asgi.errors import invalid_request
from bifrost_asgi.governance.models import Budget, ProviderRule, RateLimit, unique_windows
from bifrost_asgi.governance.windows import parse_duration

__all__ = [
    "BudgetPatch",
    "CustomerBody",
    "KeyCreate",
    "KeyUpdate",
    "ProviderBody",
    "RateLimitPatch",
    "TeamBody",
    "merge_budgets",
    "merge_rate_limit",
    "new_id",
]


def new_id() -> str:
    return uuid.uuid4().hex


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetPatch(BaseModel):
    """One budget as sent: complete on create, partial in an older client's singular ``budget`` update
    (``{}`` removes the budget)."""

    model_config = ConfigDict(extra="ignore")  # a budget read back from a GET carries usage and ids

    max_limit: float | None = Field(default=None, gt=0)
    reset_duration: str | None = None
    calendar_aligned: bool | None = None

    @field_validator("reset_duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    def complete(self, where: str, *, window: str | None = None) -> Budget:
        """The budget this creates; ``window``: the reset duration when none is sent."""
        reset_duration = self.reset_duration or window
        if self.max_limit is None or reset_duration is None:
            raise invalid_request(
                f"{where}: both max_limit and reset_duration are required when creating a new budget",
                param=where,
            )
        return Budget(
            max_limit=self.max_limit,
            reset_duration=reset_duration,
            calendar_aligned=bool(self.calendar_aligned),
        )


class RateLimitPatch(RateLimit):
    """A rate limit as sent (an ``id`` sent back from a GET is ignored: the record keeps its own). Every
    field null removes the limit, as in Bifrost."""

    def removes(self, *, partial: bool) -> bool:
        """Bifrost removes a key's limit when every field is null, another owner's when both maxima are."""
        fields = self.model_dump(exclude_none=True, exclude={"id"})
        if partial:
            return not fields
        return "token_max_limit" not in fields and "request_max_limit" not in fields


def merge_rate_limit(
    current: RateLimit | None, sent: RateLimitPatch | None, *, partial: bool
) -> RateLimit | None:
    """The rate limit after an update that sent ``sent`` (None: an explicit ``null``, which removes it).

    ``partial``: fields left out keep their values (keys); otherwise the sent limit replaces the old one
    whole (teams, customers, providers). The limit keeps its id either way.
    """
    if sent is None or sent.removes(partial=partial):
        return None
    fields = sent.model_dump(exclude_unset=partial, exclude={"id"})
    if current is None:
        return RateLimit(id=new_id(), **sent.model_dump(exclude={"id"}))
    return RateLimit.model_validate({**current.model_dump(), **fields, "id": current.id or new_id()})


def merge_budgets(
    current: Sequence[Budget],
    budgets: Sequence[BudgetPatch] | None,
    budget: BudgetPatch | None,
    *,
    where: str,
    sent_singular: bool,
    aligned: bool | None = None,
) -> tuple[Budget, ...]:
    """The budgets after an update: ``budgets`` replaces the set (matched by window), an older client's
    singular ``budget`` edits the first one (or creates it; ``{}`` removes it). ``aligned`` (the owner's
    ``calendar_aligned``) applies to every budget when sent."""
    if budgets is not None and sent_singular:
        raise invalid_request(f"{where}: send either budgets or budget, not both", param=where)
    if budgets is not None:
        wanted = [b.complete(f"{where}.{i}", window="1M") for i, b in enumerate(budgets)]
        merged = _reconcile(current, wanted)
    elif sent_singular:
        merged = _edit_first(current, budget, where)
    else:
        merged = tuple(current)
    if aligned is not None:
        merged = tuple(b.model_copy(update={"calendar_aligned": aligned}) for b in merged)
    try:
        unique_windows(merged)
    except ValueError as exc:
        raise invalid_request(f"{where}: {exc}", param=where) from None
    return merged


def _reconcile(current: Sequence[Budget], wanted: Sequence[Budget]) -> tuple[Budget, ...]:
    by_window = {str(parse_duration(b.reset_duration)): b for b in current}
    merged = []
    for budget in wanted:
        existing = by_window.get(str(parse_duration(budget.reset_duration)))
        merged.append(budget.model_copy(update={"id": existing.id if existing and existing.id else new_id()}))
    return tuple(merged)


def _edit_first(current: Sequence[Budget], sent: BudgetPatch | None, where: str) -> tuple[Budget, ...]:
    if sent is None or (sent.max_limit is None and sent.reset_duration is None):
        return ()
    if not current:
        return (sent.complete(where).model_copy(update={"id": new_id()}),)
    first = current[0]
    changed = sent.model_dump(exclude_none=True)
    edited = Budget.model_validate({**first.model_dump(), **changed, "id": first.id or new_id()})
    return (edited, *current[1:])


class ProviderConfigBody(BaseModel):
    """One ``provider_configs[]`` entry as sent. ``id`` and ``key_ids`` are accepted for Bifrost's clients:
    configs are matched by provider name, and provider keys are chosen by the gateway's own rules."""

    model_config = ConfigDict(extra="forbid")

    id: int | str | None = None
    provider: str = Field(min_length=1)
    weight: float | None = Field(default=None, ge=0)
    allowed_models: tuple[str, ...] | None = None
    blacklisted_models: tuple[str, ...] = ()
    key_ids: tuple[str, ...] | None = None
    budgets: tuple[BudgetPatch, ...] | None = None
    budget: BudgetPatch | None = None
    rate_limit: RateLimitPatch | None = None

    def rule(self, current: ProviderRule | None, where: str) -> ProviderRule:
        budgets = merge_budgets(
            current.budgets if current else (),
            self.budgets,
            self.budget,
            where=f"{where}.budgets",
            sent_singular="budget" in self.model_fields_set,
        )
        rate_limit = current.rate_limit if current else None
        if "rate_limit" in self.model_fields_set:
            rate_limit = merge_rate_limit(rate_limit, self.rate_limit, partial=True)
        return ProviderRule(
            provider=self.provider,
            weight=1.0 if self.weight is None else self.weight,
            allowed_models=("*",) if self.allowed_models is None else self.allowed_models,
            blacklisted_models=self.blacklisted_models,
            budgets=budgets,
            rate_limit=rate_limit,
        )


def provider_rules(
    current: Sequence[ProviderRule], sent: Sequence[ProviderConfigBody]
) -> tuple[ProviderRule, ...]:
    """The key's provider configs after an update: the sent list, each matched to an existing config of the
    same provider (whose budgets and limit it edits)."""
    existing = {rule.provider: rule for rule in current}
    seen: set[str] = set()
    rules = []
    for i, body in enumerate(sent):
        if body.provider in seen:
            where = f"provider_configs.{i}.provider"
            raise invalid_request(f"{where}: duplicate provider {body.provider!r}", param=where)
        seen.add(body.provider)
        rules.append(body.rule(existing.get(body.provider), f"provider_configs.{i}"))
    return tuple(rules)


def _unix_seconds(value: float | datetime | None) -> float | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return value


class KeyUpdate(_Body):
    """``PUT /api/governance/virtual-keys/{id}``: only the fields sent are changed."""

    name: str | None = Field(default=None, min_length=1)
    description: str | None = None
    is_active: bool | None = None
    # Unix seconds or an RFC3339 time; null clears the expiry.
    expires_at: float | datetime | None = None
    provider_configs: tuple[ProviderConfigBody, ...] | None = None
    allow_all_providers: bool | None = None
    budgets: tuple[BudgetPatch, ...] | None = None
    budget: BudgetPatch | None = None
    rate_limit: RateLimitPatch | None = None
    team_id: str | None = None
    customer_id: str | None = None
    calendar_aligned: bool | None = None

    _expiry = field_validator("expires_at")(_unix_seconds)

    @model_validator(mode="after")
    def _one_owner(self) -> KeyUpdate:
        if self.team_id and self.customer_id:
            raise invalid_request("VirtualKey cannot be attached to both Team and Customer", param="team_id")
        return self

    def fields(self, current: dict[str, Any]) -> dict[str, Any]:
        """The key's fields after this update (``current``: the stored record's fields)."""
        sent = self.model_fields_set
        out: dict[str, Any] = {
            name: getattr(self, name)
            for name in ("name", "description", "is_active", "expires_at", "allow_all_providers")
            if name in sent
        }
        # Joining a team leaves any customer and vice versa, as in Bifrost; null or "" detaches.
        if "team_id" in sent:
            out["team_id"] = self.team_id or None
            if self.team_id:
                out["customer_id"] = None
        if "customer_id" in sent:
            out["customer_id"] = self.customer_id or None
            if self.customer_id:
                out["team_id"] = None
        if self.provider_configs is not None:
            out["provider_configs"] = provider_rules(current["provider_configs"], self.provider_configs)
        out["budgets"] = merge_budgets(
            current["budgets"], self.budgets, self.budget, where="budgets",
            sent_singular="budget" in sent, aligned=self.calendar_aligned,
        )  # fmt: skip
        if "rate_limit" in sent:
            out["rate_limit"] = merge_rate_limit(current["rate_limit"], self.rate_limit, partial=True)
        return out


class KeyCreate(KeyUpdate):
    """``POST /api/governance/virtual-keys``: a key without what the server decides (id, prefix, hash,
    timestamps). A missing name is Bifrost's ``Virtual key name is required``."""

    name: str | None = None
    owner: str | None = None

    def fields(self, current: dict[str, Any]) -> dict[str, Any]:
        if not self.name:
            raise invalid_request("Virtual key name is required", param="name")
        out = super().fields(current)
        if self.owner is not None:
            out["owner"] = self.owner
        return out


class _LimitsBody(_Body):
    """What teams, customers and providers share: budgets and a rate limit."""

    budgets: tuple[BudgetPatch, ...] | None = None
    budget: BudgetPatch | None = None
    rate_limit: RateLimitPatch | None = None
    calendar_aligned: bool | None = None

    def limits(self, budgets: Sequence[Budget], rate_limit: RateLimit | None) -> dict[str, Any]:
        sent = self.model_fields_set
        out: dict[str, Any] = {
            "budgets": merge_budgets(
                budgets,
                self.budgets,
                self.budget,
                where="budgets",
                sent_singular="budget" in sent,
                aligned=self.calendar_aligned,
            )  # fmt: skip
        }
        if "rate_limit" in sent:
            out["rate_limit"] = merge_rate_limit(rate_limit, self.rate_limit, partial=False)
        return out


class _OwnerBody(_LimitsBody):
    name: str | None = None

    def named(self, what: str, *, required: bool) -> dict[str, Any]:
        if "name" not in self.model_fields_set and not required:
            return {}
        if not self.name:
            raise invalid_request(f"{what} name is required", param="name")
        return {"name": self.name}


class TeamBody(_OwnerBody):
    """``POST``/``PUT /api/governance/teams``. ``customer_id: ""`` detaches the team from its customer."""

    customer_id: str | None = None


class CustomerBody(_OwnerBody):
    """``POST``/``PUT /api/governance/customers``."""


class ProviderBody(_LimitsBody):
    """``PUT /api/governance/providers/{provider}``: the provider's budgets and rate limit."""
