"""The governance engine: who is calling (virtual key), may they use this provider and model, and do
their rate limits and budgets admit the request — checked in Bifrost's order (spec §6.2):

    provider-level rate limit and budgets (with or without a key)
    -> key exists -> active and not expired -> provider allowed -> model allowed
    -> rate limits (provider config, then key) -> budgets (provider config -> key -> team -> customer)
    -> team and customer rate limits

Admission reserves the request, an estimate of its tokens and an estimate of its cost on every limit
at once (`CounterStore.admit`); `settle` swaps the reservation for real usage when the response (or the
stream, even a cancelled one) ends, and releases it on error.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bifrost_asgi.errors import BifrostError, governance_error
from bifrost_asgi.governance.jwt import TokenVerifier
from bifrost_asgi.governance.keys import generate_key, key_lookup_prefix, verify_key
from bifrost_asgi.governance.models import (
    Budget,
    Customer,
    ProviderGovernance,
    ProviderRule,
    RateLimit,
    Team,
    VirtualKey,
)
from bifrost_asgi.governance.refresh import MAX_ENTRIES, Refreshing
from bifrost_asgi.governance.windows import Clock, SystemClock, parse_duration
from bifrost_asgi.pricing import PricingTable, Usage
from bifrost_asgi.stores.counters import (
    Admission,
    Claim,
    CounterState,
    CounterStore,
    Kind,
    Limit,
    LocalCounters,
)
from bifrost_asgi.stores.keys import KeyStore

if TYPE_CHECKING:
    from bifrost_asgi.observability.hooks import Hooks

__all__ = ["Governance", "Owners", "Ticket", "budget_limit", "rate_limits"]

DEFAULT_KEY_NAME = "default"


@dataclass(slots=True)
class Ticket:
    """An admitted request's reservations, to be settled exactly once (``key`` is None for a request
    without a virtual key that only provider-level limits apply to)."""

    key: VirtualKey | None
    provider: str
    model: str
    claims: tuple[Claim, ...]
    estimate_tokens: int
    settled: bool = False


@dataclass(slots=True)
class _Cached:
    keys: list[VirtualKey] = field(default_factory=list)
    # Values already verified against these records (lives and dies with this entry): a key is hashed
    # once per cache period, not on every request.
    verified: dict[str, VirtualKey] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Owners:
    """The records above a key whose limits a request also counts against."""

    team: Team | None = None
    customer: Customer | None = None
    provider: ProviderGovernance | None = None


_Record = Team | Customer | ProviderGovernance


@dataclass(frozen=True, slots=True)
class _Plan:
    """What admitting a key's requests to one provider needs, from the records alone (the key, the
    records above it): built once, not per request. ``key`` is kept to be compared by identity
    (the cache is keyed by its id); ``version`` and ``until`` say when the records may have changed."""

    key: VirtualKey | None
    limits: tuple[Limit, ...]
    priced: bool  # a budget among the limits: the request's cost is estimated and reserved
    until: float
    version: int


class Governance:
    """Virtual keys, budgets and rate limits over a `KeyStore` and a `CounterStore`."""

    def __init__(
        self,
        keys: KeyStore,
        counters: CounterStore,
        pricing: PricingTable,
        *,
        enforce_auth: bool = False,
        default_max_output_tokens: int = 1024,
        cache_ttl: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        self.keys = keys
        self.counters = counters
        self.pricing = pricing
        self.enforce_auth = enforce_auth
        self.default_max_output_tokens = default_max_output_tokens
        # Key lookups are cached briefly per process: revocations made elsewhere apply within the TTL;
        # revocations through this engine apply at once.
        self.cache_ttl = cache_ttl
        self._prefixes: Refreshing[_Cached] = Refreshing(cache_ttl, self._load_prefix)
        self._defaults: dict[str, tuple[float, VirtualKey]] = {}
        self._default_locks: dict[str, asyncio.Lock] = {}
        self.default_template: dict[str, Any] = {"allow_all_providers": True}
        self.tokens: TokenVerifier | None = None
        # Teams, customers and provider limits, cached as briefly as keys: every request reads them.
        self._records: Refreshing[_Record | None] = Refreshing(cache_ttl, self._load_record)
        # (id(key), provider) -> (expiry, key, owners); the key object guards against a reused id.
        self._owners: dict[tuple[int, str | None], tuple[float, VirtualKey | None, Owners]] = {}
        self._owners_version = 0
        # (id(key), provider) -> what admitting such a request needs (`_plan`).
        self._plans: dict[tuple[int, str], _Plan] = {}
        # The counter store's way of admitting and settling without awaiting, where it has one.
        self._local = counters if isinstance(counters, LocalCounters) else None
        self.clock = clock or SystemClock()
        self.hooks: Hooks | None = None  # the host's key_created / key_revoked callbacks

    # -- authentication -----------------------------------------------------------------------------

    async def authenticate(self, value: str | None) -> VirtualKey | None:
        if value is None:
            if self.enforce_auth:
                raise governance_error(
                    401, "virtual_key_required", "virtual key is missing in headers and is mandatory."
                )
            return None
        key = await self._find(value)
        if key is None:
            raise governance_error(403, "virtual_key_not_found", "Virtual key not found")
        return self.check_usable(key)

    def check_usable(self, key: VirtualKey) -> VirtualKey:
        if not key.is_active or key.revoked_at is not None:
            raise governance_error(403, "virtual_key_blocked", "Virtual key is inactive")
        if key.expires_at is not None and key.expires_at <= self.clock.now():
            raise governance_error(403, "virtual_key_blocked", "Virtual key has expired")
        return key

    async def _load_prefix(self, prefix: str) -> _Cached:
        return _Cached(await self.keys.by_prefix(prefix))

    async def _find(self, value: str) -> VirtualKey | None:
        cached = await self._prefixes.get(key_lookup_prefix(value))
        found = cached.verified.get(value)
        if found is None:
            found = next((k for k in cached.keys if verify_key(value, k.key_hash)), None)
            if found is not None:
                cached.verified[value] = found
        return found

    async def authenticate_token(self, token: str) -> VirtualKey | None:
        """A signed token standing for a virtual key (by id); None for a token that names no key."""
        if self.tokens is None:
            return None
        claims = self.tokens.verify(token)
        if claims.virtual_key_id is None:
            return None
        key = await self.keys.get(claims.virtual_key_id)
        if key is None:
            raise governance_error(403, "virtual_key_not_found", "Virtual key not found")
        return self.check_usable(key)

    def forget(self, key: VirtualKey) -> None:
        self._prefixes.forget(key.key_prefix)
        if key.owner is not None:
            self._defaults.pop(key.owner, None)

    def forget_record(self, kind: str, record_id: str) -> None:
        """Apply a change to a team, customer or provider's limits in this process at once."""
        self._records.forget(f"{kind}:{record_id}")
        self._owners.clear()  # any key's owners may name this record
        self._owners_version += 1  # and one being looked up now may have read the old one

    async def default_key_for(self, owner: str) -> VirtualKey:
        """The key a host user's session calls are charged to; created on first use, never shown.

        Concurrent first calls in one process share one creation; across processes a duplicate is
        possible and harmless: every process then settles on the oldest one.
        """
        now = time.monotonic()
        cached = self._defaults.get(owner)
        if cached is not None and cached[0] > now:
            return cached[1]
        lock = self._default_locks.setdefault(owner, asyncio.Lock())
        async with lock:
            key = await self._find_default(owner)
            if key is None:
                key, _ = await self.create_key(DEFAULT_KEY_NAME, owner=owner, **self.default_template)
            self._defaults[owner] = (now + self.cache_ttl, key)
        self._default_locks.pop(owner, None)
        return key

    async def _find_default(self, owner: str) -> VirtualKey | None:
        # A revoked default stays the default: revoking it blocks the user's session calls, it does not
        # mint a fresh key on the next call.
        keys = [k for k in await self.keys.list_keys(owner) if k.name == DEFAULT_KEY_NAME]
        return min(keys, key=lambda k: (k.created_at, k.id)) if keys else None

    # -- routing ------------------------------------------------------------------------------------

    def choose_provider(self, key: VirtualKey, model: str, configured: frozenset[str]) -> str | None:
        """Weighted choice among the key's provider configs that allow ``model`` (bare model names)."""
        rules = [
            r for r in key.provider_configs if r.provider in configured and r.allows(model) and r.weight > 0
        ]
        if not rules:
            return None
        return random.choices(rules, weights=[r.weight for r in rules])[0].provider

    # -- admission ----------------------------------------------------------------------------------

    def check_access(self, key: VirtualKey, provider: str, model: str) -> ProviderRule | None:
        rule = key.rules.get(provider)
        if rule is None and not key.allow_all_providers:
            raise governance_error(
                403, "provider_blocked", f"Provider '{provider}' is not allowed for this virtual key"
            )
        if rule is not None and not rule.allows(model):
            raise governance_error(
                403, "model_blocked", f"Model '{model}' is not allowed for this virtual key"
            )
        return rule

    async def admit(
        self,
        key: VirtualKey | None,
        provider: str,
        model: str,
        body: dict[str, Any],
        raw_size: int,
        *,
        estimate: Usage | None = None,
    ) -> Ticket:
        """Access rules, then a reservation on every limit the request counts against. Without a key only
        the provider's own limits apply (as Bifrost checks them before any key). ``estimate``, when the
        request carries one (media), is what is reserved instead of the size-based guess.

        The common case awaits nothing: the plan is cached and the counter store admits locally (in
        memory, or from a lease)."""
        rule = self.check_access(key, provider, model) if key is not None else None
        plan = self._plans.get((id(key), provider))
        if (
            plan is None
            or plan.key is not key
            or plan.until <= time.monotonic()
            or plan.version != self._owners_version
        ):
            plan = await self._plan(key, provider, rule)
        if estimate is not None:
            tokens = estimate.total
        else:
            tokens = estimate_tokens(body, raw_size, self.default_max_output_tokens)
        if not plan.limits:
            return Ticket(key, provider, model, (), tokens)
        # Only a budget reserves dollars: a request that touches none skips the price lookup.
        cost = self._estimate_cost(provider, model, raw_size, tokens, estimate) if plan.priced else 0.0
        now = self.clock.now()
        amounts = _amounts(tokens, cost)
        claims = tuple([Claim(limit, amounts[limit.kind], now) for limit in plan.limits])
        admission = self._local.admit_now(claims, now) if self._local is not None else None
        if admission is None:
            admission = await self.counters.admit(claims, now)
        if not admission.ok:
            raise _refusal(admission)
        # Settle what the store says it reserved: a fail-open store reserves nothing, and settling the
        # requested claims would release reservations that were never made.
        return Ticket(key, provider, model, admission.claims, tokens)

    async def _plan(self, key: VirtualKey | None, provider: str, rule: ProviderRule | None) -> _Plan:
        """What admission of ``key``'s requests to ``provider`` needs that depends only on the records:
        the limits they count against. Kept until the records it read run out of the cache (or one changes
        in this process). Keyed by provider, not model: a client names any model it likes, and the cache
        must not keep what clients send."""
        version = self._owners_version
        until, owners = await self._owners_entry(key, provider)
        if key is None and owners.provider is None:
            limits: tuple[Limit, ...] = ()
            priced = False
        else:
            limits, priced = self._limits_for(key, rule, owners)
        plan = _Plan(key, limits, priced, until, version)
        if version == self._owners_version:  # a record changed while this was built: used once
            if len(self._plans) >= MAX_ENTRIES:
                self._plans.clear()
            self._plans[(id(key), provider)] = plan
        return plan

    def _estimate_cost(
        self, provider: str, model: str, raw_size: int, tokens: int, estimate: Usage | None = None
    ) -> float:
        if estimate is None:  # the common case: a text request, priced from two token counts
            input_tokens = raw_size // 4
            return self.pricing.estimate(provider, model, input_tokens, max(0, tokens - input_tokens))
        cost = self.pricing.cost(provider, model, estimate)
        return cost["total_cost"] if cost else 0.0

    @staticmethod
    def _limits_for(
        key: VirtualKey | None, rule: ProviderRule | None, owners: Owners
    ) -> tuple[tuple[Limit, ...], bool]:
        """The limits a request touches, and whether any is a budget."""
        limits = tuple(_limits(key, rule, owners))
        return limits, any(limit.kind == "budget" for limit in limits)

    async def owners(self, key: VirtualKey | None, provider: str | None = None) -> Owners:
        """The key's team and customer (a team's customer when the key names none), and the provider's
        own limits; cached as briefly as the records themselves (one lookup per request, not three)."""
        return (await self._owners_entry(key, provider))[1]

    async def _owners_entry(self, key: VirtualKey | None, provider: str | None) -> tuple[float, Owners]:
        """`owners` and until when (monotonic) they may be used."""
        now = time.monotonic()
        cache_key = (id(key), provider)
        hit = self._owners.get(cache_key)
        if hit is not None and hit[0] > now and hit[1] is key:
            return hit[0], hit[2]
        version = self._owners_version
        owners = await self._find_owners(key, provider)
        if version != self._owners_version:
            return now, owners  # a record changed while these were read: used once, not kept
        if len(self._owners) >= MAX_ENTRIES:
            self._owners.clear()
        until = now + self.cache_ttl
        self._owners[cache_key] = (until, key, owners)
        return until, owners

    async def _find_owners(self, key: VirtualKey | None, provider: str | None) -> Owners:
        team = await self._record("team", key.team_id) if key is not None and key.team_id else None
        customer_id = key.customer_id if key is not None else None
        if customer_id is None and isinstance(team, Team):
            customer_id = team.customer_id
        customer = await self._record("customer", customer_id) if customer_id else None
        governed = await self._record("provider", provider) if provider else None
        return Owners(
            team if isinstance(team, Team) else None,
            customer if isinstance(customer, Customer) else None,
            governed if isinstance(governed, ProviderGovernance) and not governed.empty else None,
        )

    async def _record(self, kind: str, record_id: str) -> _Record | None:
        return await self._records.get(f"{kind}:{record_id}")

    async def _load_record(self, cache_key: str) -> _Record | None:
        kind, _, record_id = cache_key.partition(":")
        if kind == "team":
            return await self.keys.team(record_id)
        if kind == "customer":
            return await self.keys.customer(record_id)
        return await self.keys.provider_governance(record_id)

    async def settle(self, ticket: Ticket, *, ok: bool, tokens: int, cost: float) -> None:
        """Charge real usage (tokens and cost are charged even on errors that consumed them)."""
        if ticket.settled:
            return
        ticket.settled = True
        claims: Sequence[Claim] = ticket.claims
        if not claims:
            return
        used = _used(ok, tokens, cost)
        actual: Sequence[float] = [used[c.limit.kind] for c in claims]
        now = self.clock.now()
        if self._local is not None:  # what can be settled at once is; the rest goes to the store
            claims, actual = self._local.settle_now(claims, actual, now)
            if not claims:
                return
        await self.counters.settle(claims, actual, now)

    async def aclose(self) -> None:
        await self._prefixes.aclose()
        await self._records.aclose()
        await self.counters.aclose()
        await self.keys.aclose()

    # -- management ---------------------------------------------------------------------------------

    async def create_key(self, name: str, **fields: Any) -> tuple[VirtualKey, str]:
        """Create a key; the plaintext is returned here once and never stored."""
        generated = generate_key()
        key = VirtualKey(
            id=fields.pop("id", None) or uuid.uuid4().hex,
            name=name,
            key_prefix=generated.prefix,
            key_hash=generated.hashed,
            created_at=self.clock.now(),
            **fields,
        )
        await self.keys.put(key)
        if self.hooks is not None:
            await self.hooks.emit("key_created", key)
        return key, generated.value

    async def revoke_key(self, key_id: str) -> VirtualKey | None:
        """Revocation is permanent (as djangorestframework-api-key): the key stays, blocked."""
        key = await self.keys.get(key_id)
        if key is None:
            return None
        revoked = key.model_copy(update={"is_active": False, "revoked_at": self.clock.now()})
        await self.keys.put(revoked)
        self.forget(revoked)
        if self.hooks is not None and key.revoked_at is None:
            await self.hooks.emit("key_revoked", revoked)
        return revoked

    async def usage(self, key: VirtualKey) -> list[dict[str, Any]]:
        """Each of the key's limits with its current window: what is used, reserved and left."""
        limits = _limits(key, None, await self.owners(key), every_rule=True)
        states = await self.counters.read(limits, self.clock.now())
        return [_usage_row(limit, state) for limit, state in zip(limits, states, strict=True)]


def estimate_tokens(body: dict[str, Any], raw_size: int, default_output: int) -> int:
    """Input ≈ request bytes / 4 (Bifrost's own estimate), plus the output cap the request asks for."""
    cap = body.get("max_output_tokens") or body.get("max_completion_tokens") or body.get("max_tokens")
    output = cap if isinstance(cap, int) and cap > 0 else default_output
    return raw_size // 4 + output


def rate_limits(scope: str, rl: RateLimit | None) -> list[Limit]:
    """The counters a rate limit keeps under ``scope`` (``vk:<id>``, ``team:<id>``, ``provider:<name>``)."""
    limits: list[Limit] = []
    if rl is None:
        return limits
    if rl.request_max_limit is not None:
        window = parse_duration(rl.request_reset_duration or "1m")
        limits.append(Limit(f"{scope}:requests:{window}", "requests", rl.request_max_limit, window))
    if rl.token_max_limit is not None:
        window = parse_duration(rl.token_reset_duration or "1m")
        limits.append(Limit(f"{scope}:tokens:{window}", "tokens", rl.token_max_limit, window))
    return limits


def budget_limit(scope: str, budget: Budget) -> Limit:
    """A budget's counter, named by its owner and its window: an update that keeps a budget's window keeps
    what was spent in it (as Bifrost matches budgets by reset_duration)."""
    window = parse_duration(budget.reset_duration)
    key = f"{scope}:budget:{window}"
    return Limit(key, "budget", budget.max_limit, window, budget.calendar_aligned, budget.alert_percentages)


def _budget_limits(scope: str, budgets: Sequence[Budget]) -> list[Limit]:
    # Records from before budgets had to differ in window may repeat one: they share its counter, so only
    # the tightest is claimed (claiming one counter twice would count the request twice).
    by_key: dict[str, Limit] = {}
    for budget in budgets:
        limit = budget_limit(scope, budget)
        if limit.key not in by_key or limit.max < by_key[limit.key].max:
            by_key[limit.key] = limit
    return list(by_key.values())


def _limits(
    key: VirtualKey | None, rule: ProviderRule | None, owners: Owners, *, every_rule: bool = False
) -> list[Limit]:
    """Every limit a request touches, in Bifrost's evaluation order."""
    limits: list[Limit] = []
    if owners.provider is not None:
        scope, governed = f"provider:{owners.provider.provider}", owners.provider
        limits += rate_limits(scope, governed.rate_limit) + _budget_limits(scope, governed.budgets)
    if key is None:
        return limits
    vk = f"vk:{key.id}"
    rules = key.provider_configs if every_rule else ((rule,) if rule is not None else ())
    for r in rules:
        limits += rate_limits(f"{vk}:pc:{r.provider}", r.rate_limit)
    limits += rate_limits(vk, key.rate_limit)
    for r in rules:
        limits += _budget_limits(f"{vk}:pc:{r.provider}", r.budgets)
    limits += _budget_limits(vk, key.budgets)
    for kind, owner in (("team", owners.team), ("customer", owners.customer)):
        if owner is not None:
            limits += rate_limits(f"{kind}:{owner.id}", owner.rate_limit)
            limits += _budget_limits(f"{kind}:{owner.id}", owner.budgets)
    return limits


# Amounts by kind of limit, looked up once per claim: a call per claim cost more, on every request.
def _amounts(tokens: int, cost: float) -> dict[Kind, float]:
    """What a request reserves on each kind of limit: 1 request, its estimated tokens or cost."""
    return {"requests": 1.0, "tokens": float(tokens), "budget": cost}


def _used(ok: bool, tokens: int, cost: float) -> dict[Kind, float]:
    """What a settled request used of each kind: requests are counted on success only (spec §6.3)."""
    return {"requests": 1.0 if ok else 0.0, "tokens": float(tokens), "budget": cost}


def _refusal(admission: Admission) -> BifrostError:
    kinds = {c.limit.kind for c in admission.blocked}
    if "requests" in kinds and "tokens" in kinds:
        return governance_error(429, "rate_limited", "Rate limits exceeded: request and token limits reached")
    if "requests" in kinds:
        limit = next(c.limit for c in admission.blocked if c.limit.kind == "requests")
        return governance_error(
            429, "request_limited", f"Request limit exceeded: {limit.max:g} per {limit.window}"
        )
    if "tokens" in kinds:
        limit = next(c.limit for c in admission.blocked if c.limit.kind == "tokens")
        return governance_error(
            429, "token_limited", f"Token limit exceeded: {limit.max:g} per {limit.window}"
        )
    limit = admission.blocked[0].limit
    scope = limit.key.split(":budget:")[0].split(":")[0]
    owner = {"vk": "Virtual key", "team": "Team", "customer": "Customer", "provider": "Provider"}.get(
        scope, "Budget"
    )
    return governance_error(
        402, "budget_exceeded", f"{owner} budget exceeded: {limit.max:.4f} dollars per {limit.window}"
    )


def _usage_row(limit: Limit, state: CounterState) -> dict[str, Any]:
    return {
        "limit": limit.key,
        "kind": limit.kind,
        "max": limit.max,
        "reset_duration": str(limit.window),
        "used": state.used,
        "reserved": state.reserved,
        "remaining": max(0.0, limit.max - state.used - state.reserved),
        "window_start": state.start,
        "window_end": state.end,
    }
