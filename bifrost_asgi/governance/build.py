"""From a `GovernanceConfig` to a running `Governance`: stores, counters, logs, and seeded records."""

from __future__ import annotations

import os
from collections.abc import Iterable

from bifrost_asgi.governance.config import GovernanceConfig, SeedBudget, SeedError, SeedRateLimit
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.governance.jwt import TokenVerifier
from bifrost_asgi.governance.keys import hash_key, key_lookup_prefix
from bifrost_asgi.governance.models import (
    Budget,
    Customer,
    ProviderRule,
    RateLimit,
    Team,
    VirtualKey,
    unique_windows,
)
from bifrost_asgi.pricing import PricingTable
from bifrost_asgi.stores import (
    CounterStore,
    KeyStore,
    LogStore,
    LogWriter,
    MemoryCounterStore,
    MemoryKeyStore,
    RedisCounterStore,
    SQLiteCounterStore,
    SQLiteKeyStore,
    SQLiteLogStore,
)
from bifrost_asgi.stores.batching import BatchCounterStore, BatchingCounterStore
from bifrost_asgi.stores.counters import TransactionalCounterStore
from bifrost_asgi.stores.leases import LeasingCounterStore

__all__ = ["build_governance", "build_log_writer", "seed"]


def _key_store(cfg: GovernanceConfig) -> KeyStore:
    if cfg.store.type == "memory":
        return MemoryKeyStore()
    return SQLiteKeyStore(os.path.abspath(cfg.store.path))


def _counter_store(cfg: GovernanceConfig) -> CounterStore:
    counters = cfg.counters
    if counters.type == "memory":
        return MemoryCounterStore()
    if counters.type == "redis":
        return RedisCounterStore(
            counters.url,
            prefix=counters.prefix,
            fail_open=counters.fail_open,
            timeout_s=counters.timeout_seconds,
            reservation_ttl=counters.reservation_ttl_seconds,
        )
    return SQLiteCounterStore(
        os.path.abspath(counters.path or cfg.store.path), reservation_ttl=counters.reservation_ttl_seconds
    )


def build_governance(
    cfg: GovernanceConfig,
    pricing: PricingTable,
    *,
    enforce_auth: bool,
    key_store: KeyStore | None = None,
    counter_store: CounterStore | None = None,
) -> Governance:
    """Stores come from the config, unless an adapter injects its own (the Django ORM ones)."""
    counters: CounterStore
    if counter_store is not None:
        counters = counter_store
    elif cfg.store.type == "memory" and cfg.counters.type == "sqlite" and cfg.counters.path is None:
        counters = MemoryCounterStore()  # an in-memory deployment keeps counters in memory too
    else:
        counters = _counter_store(cfg)
    if isinstance(counters, TransactionalCounterStore):  # an injected one (Django's) takes the config too
        counters.reservation_ttl = cfg.counters.reservation_ttl_seconds
    if isinstance(counters, BatchCounterStore):
        # A shared store: admissions and settlements in flight together share one round trip.
        counters = BatchingCounterStore(counters)
        if cfg.counters.leases:
            counters = LeasingCounterStore(counters, lease_seconds=cfg.counters.lease_seconds)
    gov = Governance(
        key_store or _key_store(cfg),
        counters,
        pricing,
        enforce_auth=enforce_auth and not cfg.auth_config.disable_auth_on_inference,
        default_max_output_tokens=cfg.default_max_output_tokens,
        cache_ttl=cfg.key_cache_ttl_seconds,
    )
    gov.default_template = cfg.default_user_key.model_dump()
    if cfg.jwt_auth is not None:
        try:
            gov.tokens = TokenVerifier(cfg.jwt_auth)
        except ValueError as exc:
            raise SeedError(str(exc)) from None
    return gov


def build_log_writer(cfg: GovernanceConfig, store: LogStore | None = None) -> LogWriter | None:
    if not cfg.logs.enabled:
        return None
    if store is None:
        if cfg.store.type == "memory" and cfg.logs.path is None:
            return None
        store = SQLiteLogStore(os.path.abspath(cfg.logs.path or cfg.store.path))
    return LogWriter(store, batch_size=cfg.logs.batch_size, interval=cfg.logs.flush_interval_ms / 1000)


# -- seeding from config.json ------------------------------------------------------------------------


def _rate_limit(ref: str | None, limits: dict[str, SeedRateLimit], owner: str) -> RateLimit | None:
    if ref is None:
        return None
    if ref not in limits:
        raise SeedError(f"{owner}: rate_limit_id {ref!r} is not declared in governance.rate_limits")
    seed = limits[ref]
    return RateLimit(
        id=seed.id,
        request_max_limit=seed.request_max_limit,
        request_reset_duration=seed.request_reset_duration,
        token_max_limit=seed.token_max_limit,
        token_reset_duration=seed.token_reset_duration,
    )


def _budgets(seeds: Iterable[SeedBudget], owner: str, *, aligned: bool = False) -> tuple[Budget, ...]:
    budgets = tuple(
        Budget(
            id=b.id,
            max_limit=b.max_limit,
            reset_duration=b.reset_duration,
            calendar_aligned=b.calendar_aligned or aligned,
            alert_percentages=b.alert_percentages,
        )
        for b in seeds
    )
    try:
        unique_windows(budgets)
    except ValueError as exc:
        raise SeedError(f"{owner}: {exc}") from None
    return budgets


def _owned(cfg: GovernanceConfig, budget_id: str | None, owner: str, **match: str) -> list[SeedBudget]:
    """The budgets declared for an owner: those naming it, and the one it names by ``budget_id``."""
    field, value = next(iter(match.items()))
    own = [b for b in cfg.budgets if getattr(b, field) == value]
    if budget_id:
        named = next((b for b in cfg.budgets if b.id == budget_id), None)
        if named is None:
            raise SeedError(f"{owner}: unknown budget_id {budget_id!r}")
        own += [named] if named not in own else []
    return own


def _check_budget_owners(cfg: GovernanceConfig) -> None:
    vk_ids = {k.id for k in cfg.virtual_keys}
    team_ids = {t.id for t in cfg.teams}
    customer_ids = {c.id for c in cfg.customers}
    pc_ids = {pc.id for k in cfg.virtual_keys for pc in k.provider_configs if pc.id}
    for b in cfg.budgets:
        owners = [x for x in (b.virtual_key_id, b.team_id, b.customer_id, b.provider_config_id) if x]
        if len(owners) > 1:
            raise SeedError(f"governance.budgets[{b.id}]: a budget has at most one owner")
        for ref, known, what in ((b.virtual_key_id, vk_ids, "virtual key"), (b.team_id, team_ids, "team"),
                                 (b.customer_id, customer_ids, "customer"),
                                 (b.provider_config_id, pc_ids, "provider config")):  # fmt: skip
            if ref and ref not in known:
                raise SeedError(f"governance.budgets[{b.id}]: unknown {what} {ref!r}")


async def seed(gov: Governance, cfg: GovernanceConfig) -> None:
    """Create or update the records config.json declares. Keys keep their creation time."""
    _check_budget_owners(cfg)
    limits = {r.id: r for r in cfg.rate_limits}
    now = gov.clock.now()
    for c in cfg.customers:
        where = f"governance.customers[{c.id}]"
        budgets = _budgets(_owned(cfg, c.budget_id, where, customer_id=c.id), where)
        rate_limit = _rate_limit(c.rate_limit_id, limits, where)
        existing = await gov.keys.customer(c.id)
        created = existing.created_at if existing else now
        customer = Customer(id=c.id, name=c.name, budgets=budgets, rate_limit=rate_limit, created_at=created)
        await gov.keys.put_customer(customer)
    for t in cfg.teams:
        where = f"governance.teams[{t.id}]"
        budgets = _budgets(_owned(cfg, t.budget_id, where, team_id=t.id), where)
        rate_limit = _rate_limit(t.rate_limit_id, limits, where)
        existing_team = await gov.keys.team(t.id)
        created = existing_team.created_at if existing_team else now
        team = Team(id=t.id, name=t.name, customer_id=t.customer_id, budgets=budgets, rate_limit=rate_limit,
                    created_at=created)  # fmt: skip
        await gov.keys.put_team(team)
    for k in cfg.virtual_keys:
        await gov.keys.put(await _seed_key(gov, cfg, k.id, limits))


async def _seed_key(
    gov: Governance, cfg: GovernanceConfig, key_id: str, limits: dict[str, SeedRateLimit]
) -> VirtualKey:
    k = next(v for v in cfg.virtual_keys if v.id == key_id)
    owner = f"governance.virtual_keys[{k.id}]"
    if k.value is None:
        # A generated value could only be shown by logging it, and secrets never go to logs.
        raise SeedError(f"{owner}.value: required for keys declared in config (e.g. \"env.MY_VK\"); "
                        "create keys with generated values with `bifrost-asgi keys create`")  # fmt: skip
    if k.team_id and k.customer_id:
        raise SeedError(f"{owner}: team_id and customer_id are exclusive")
    value = k.value.get_secret_value()
    rules = tuple(
        ProviderRule(
            provider=pc.provider,
            weight=pc.weight,
            allowed_models=tuple(pc.allowed_models),
            blacklisted_models=tuple(pc.blacklisted_models),
            budgets=_budgets(
                (b for b in cfg.budgets if pc.id and b.provider_config_id == pc.id),
                f"{owner}.provider_configs[{pc.provider}]",
                aligned=k.calendar_aligned,
            ),
            rate_limit=_rate_limit(pc.rate_limit_id, limits, f"{owner}.provider_configs[{pc.provider}]"),
        )
        for pc in k.provider_configs
    )
    existing = await gov.keys.get(k.id)
    return VirtualKey(
        id=k.id,
        name=k.name,
        description=k.description,
        is_active=k.is_active,
        owner=k.owner,
        provider_configs=rules,
        allow_all_providers=k.allow_all_providers,
        budgets=_budgets(
            (b for b in cfg.budgets if b.virtual_key_id == k.id), owner, aligned=k.calendar_aligned
        ),
        rate_limit=_rate_limit(k.rate_limit_id, limits, owner),
        team_id=k.team_id,
        customer_id=k.customer_id,
        key_prefix=key_lookup_prefix(value),
        key_hash=hash_key(value),
        created_at=existing.created_at if existing else gov.clock.now(),
    )
