"""Governance records in Bifrost's current JSON shapes, with each budget's and rate limit's usage in its
current window (``current_usage``, ``last_reset``), as its management API answers them.

Counters are read once per answer for every limit it shows (`Presenter.load`). A budget or rate limit
without an id (one made before they had ids) is shown under its counter's name, which is stable. Times are
RFC3339. A key's plaintext never appears here: only its lookup hint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bifrost_asgi.governance.engine import Governance, budget_limit, rate_limits
from bifrost_asgi.governance.models import Budget, Customer, ProviderGovernance, RateLimit, Team, VirtualKey
from bifrost_asgi.stores.counters import CounterState, Limit
from bifrost_asgi.stores.log_query import rfc3339

__all__ = ["Presenter", "limits_of", "scopes_of"]

# (counter scope, budgets, rate limit): what one record limits.
Group = tuple[str, Sequence[Budget], RateLimit | None]


def scopes_of(record: VirtualKey | Team | Customer | ProviderGovernance) -> list[Group]:
    """The counter scopes a record's budgets and rate limits live under (as the engine names them)."""
    if isinstance(record, VirtualKey):
        vk = f"vk:{record.id}"
        rules = [(f"{vk}:pc:{r.provider}", r.budgets, r.rate_limit) for r in record.provider_configs]
        return [(vk, record.budgets, record.rate_limit), *rules]
    if isinstance(record, ProviderGovernance):
        return [(f"provider:{record.provider}", record.budgets, record.rate_limit)]
    kind = "team" if isinstance(record, Team) else "customer"
    return [(f"{kind}:{record.id}", record.budgets, record.rate_limit)]


def limits_of(groups: Iterable[Group]) -> list[Limit]:
    limits: list[Limit] = []
    for scope, budgets, rate_limit in groups:
        limits += [budget_limit(scope, b) for b in budgets] + rate_limits(scope, rate_limit)
    return limits


def _time(ts: float | None) -> str | None:
    return rfc3339(ts) if ts else None


class Presenter:
    """Renders records with their usage; `load` the records' counters first."""

    def __init__(self, gov: Governance) -> None:
        self.gov = gov
        self._states: dict[str, CounterState] = {}

    async def load(self, records: Iterable[VirtualKey | Team | Customer | ProviderGovernance]) -> None:
        limits = limits_of(group for record in records for group in scopes_of(record))
        unique = list({limit.key: limit for limit in limits}.values())
        if unique:
            states = await self.gov.counters.read(unique, self.gov.clock.now())
            self._states.update({limit.key: state for limit, state in zip(unique, states, strict=True)})

    def _state(self, key: str) -> CounterState:
        return self._states.get(key) or CounterState()

    # -- budgets and rate limits ---------------------------------------------------------------------

    def budget(self, scope: str, budget: Budget, owner: dict[str, Any]) -> dict[str, Any]:
        limit = budget_limit(scope, budget)
        state = self._state(limit.key)
        return {
            "id": budget.id or limit.key,
            "max_limit": budget.max_limit,
            "reset_duration": budget.reset_duration,
            "calendar_aligned": budget.calendar_aligned,
            "current_usage": state.used,
            "reserved_usage": state.reserved,
            "last_reset": _time(state.start),
            **owner,
        }

    def budgets(self, scope: str, budgets: Sequence[Budget], owner: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.budget(scope, b, owner) for b in budgets]

    def rate_limit(self, scope: str, rate_limit: RateLimit | None) -> dict[str, Any] | None:
        if rate_limit is None:
            return None
        out: dict[str, Any] = {
            "id": rate_limit.id or f"{scope}:rate_limit",
            **rate_limit.model_dump(exclude={"id"}),
        }
        for limit in rate_limits(scope, rate_limit):
            state = self._state(limit.key)
            prefix = "request" if limit.kind == "requests" else "token"
            out[f"{prefix}_current_usage"] = state.used
            out[f"{prefix}_last_reset"] = _time(state.start)
        return out

    def _limits(self, scope: str, record: Any, owner: dict[str, Any]) -> dict[str, Any]:
        rate_limit = self.rate_limit(scope, record.rate_limit)
        return {
            "budgets": self.budgets(scope, record.budgets, owner),
            "rate_limit_id": rate_limit["id"] if rate_limit else None,
            "rate_limit": rate_limit,
            "calendar_aligned": bool(record.budgets) and all(b.calendar_aligned for b in record.budgets),
        }

    # -- records -------------------------------------------------------------------------------------

    def key(
        self,
        key: VirtualKey,
        teams: Mapping[str, Team] | None = None,
        customers: Mapping[str, Customer] | None = None,
    ) -> dict[str, Any]:
        """A key as Bifrost's ``TableVirtualKey``, plus our own fields (owner, expiry, revocation, hint);
        ``teams``/``customers`` given: with its team and customer embedded."""
        vk = f"vk:{key.id}"
        out: dict[str, Any] = {
            "id": key.id,
            "name": key.name,
            "description": key.description,
            "is_active": key.is_active,
            "owner": key.owner,
            "team_id": key.team_id,
            "customer_id": key.customer_id,
            "allow_all_providers": key.allow_all_providers,
            "provider_configs": [self._rule(key, i) for i in range(len(key.provider_configs))],
            **self._limits(vk, key, {"virtual_key_id": key.id}),
            "expires_at": _time(key.expires_at),
            "revoked_at": _time(key.revoked_at),
            "created_at": _time(key.created_at),
            "key_prefix": key.key_prefix,
            "value_hint": f"sk-bf-{key.key_prefix}…" if key.key_prefix else None,
        }
        if teams is not None and key.team_id and key.team_id in teams:
            out["team"] = self.team(teams[key.team_id])
        if customers is not None and key.customer_id and key.customer_id in customers:
            out["customer"] = self.customer(customers[key.customer_id])
        return out

    def _rule(self, key: VirtualKey, index: int) -> dict[str, Any]:
        rule = key.provider_configs[index]
        scope = f"vk:{key.id}:pc:{rule.provider}"
        return {
            "id": index + 1,
            "virtual_key_id": key.id,
            "provider": rule.provider,
            "weight": rule.weight,
            "allowed_models": list(rule.allowed_models),
            "blacklisted_models": list(rule.blacklisted_models),
            **self._limits(scope, rule, {"provider_config_id": index + 1}),
        }

    def team(
        self, team: Team, keys: Sequence[VirtualKey] | None = None, customer: Customer | None = None
    ) -> dict[str, Any]:
        """A team as Bifrost's ``TableTeam``; ``keys`` given: with the keys it owns embedded."""
        out: dict[str, Any] = {
            "id": team.id,
            "name": team.name,
            "customer_id": team.customer_id,
            **self._limits(f"team:{team.id}", team, {"team_id": team.id}),
            "created_at": _time(team.created_at),
        }
        if customer is not None:
            out["customer"] = self.customer(customer)
        if keys is not None:
            owned = [k for k in keys if k.team_id == team.id]
            out["virtual_keys"] = [self.key(k) for k in owned]
            out["virtual_key_count"] = len(owned)
        return out

    def customer(
        self,
        customer: Customer,
        teams: Sequence[Team] | None = None,
        keys: Sequence[VirtualKey] | None = None,
    ) -> dict[str, Any]:
        """A customer as Bifrost's ``TableCustomer``; ``teams``/``keys`` given: with what it owns."""
        out: dict[str, Any] = {
            "id": customer.id,
            "name": customer.name,
            **self._limits(f"customer:{customer.id}", customer, {"customer_id": customer.id}),
            "created_at": _time(customer.created_at),
        }
        if teams is not None:
            out["teams"] = [self.team(t) for t in teams if t.customer_id == customer.id]
        if keys is not None:
            owned = [k for k in keys if k.customer_id == customer.id]
            out["virtual_keys"] = [self.key(k) for k in owned]
            out["virtual_key_count"] = len(owned)
        return out

    def provider(self, governed: ProviderGovernance) -> dict[str, Any]:
        """Bifrost's ``ProviderGovernanceResponse``."""
        scope = f"provider:{governed.provider}"
        return {
            "provider": governed.provider,
            "budgets": self.budgets(scope, governed.budgets, {"provider": governed.provider}),
            "rate_limit": self.rate_limit(scope, governed.rate_limit),
        }
