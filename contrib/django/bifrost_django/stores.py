"""The core's store Protocols over the Django ORM: `ORMKeyStore`, `ORMCounterStore`, `ORMLogStore`.

The gateway injects them with ``create_app(config, key_store=..., counter_store=..., log_store=...)``.
Rows are converted to and from the core's pydantic records at this boundary only; every query runs on
a database thread (``_db.run``), never on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar, cast

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connections, router, transaction
from django.db.models import Avg, Case, Count, F, Field, Q, QuerySet, Sum, When

from bifrost_asgi.errors import invalid_request, store_unavailable
from bifrost_asgi.governance import Customer, ProviderGovernance, Team, VirtualKey
from bifrost_asgi.stores import (
    COLUMNS,
    TERMINAL_STATUSES,
    CounterState,
    LogQuery,
    LogRecord,
    States,
    TransactionalCounterStore,
    apply_rule,
    log_entry,
    log_page,
    log_stats,
    parse_log_query,
)

from . import models
from ._db import run, to_datetime, to_timestamp, user_pk, write_transaction
from .host_teams import host_team, host_teams, is_host_team, team_of_owners

__all__ = ["ORMCounterStore", "ORMKeyStore", "ORMLogStore", "key_record"]

log = logging.getLogger("bifrost_django")
T = TypeVar("T")


# -- keys, teams, customers --------------------------------------------------------------------------


def key_record(row: models.VirtualKey, host_team: str | None = None) -> VirtualKey:
    """A key row as the core's record (the hash included: the core verifies presented keys with it).
    ``host_team``: the team its owner's membership gives it (host_teams.py), unless it names its own."""
    return VirtualKey.model_validate(
        {
            "id": row.id,
            "name": row.name,
            "description": row.description,
            "is_active": row.is_active,
            "expires_at": to_timestamp(row.expires_at),
            "owner": None if row.owner_id is None else str(row.owner_id),
            "provider_configs": row.provider_configs or [],
            "allow_all_providers": row.allow_all_providers,
            "budgets": row.budgets or [],
            "rate_limit": row.rate_limit,
            "team_id": row.team_id or (host_team if row.customer_id is None else None),
            "customer_id": row.customer_id,
            "key_prefix": row.prefix,
            "key_hash": row.hashed_key,
            "created_at": to_timestamp(row.created),
            "revoked_at": to_timestamp(row.revoked_at),
        }
    )


def _key_fields(key: VirtualKey, owner_pk: Any) -> dict[str, Any]:
    data = key.model_dump(mode="json")
    return {
        "owner_id": owner_pk,
        "name": key.name,
        "description": key.description,
        "is_active": key.is_active,
        "expires_at": to_datetime(key.expires_at),
        "provider_configs": data["provider_configs"],
        "allow_all_providers": key.allow_all_providers,
        "budgets": data["budgets"],
        "rate_limit": data["rate_limit"],
        "team_id": key.team_id,
        "customer_id": key.customer_id,
        "prefix": key.key_prefix,
        "hashed_key": key.key_hash,
        "created": to_datetime(key.created_at),
        "revoked_at": to_datetime(key.revoked_at),
    }


def _owner_pk(owner: str | None) -> Any:
    if owner is None:
        return None
    pk = user_pk(owner)
    if pk is None or not get_user_model()._default_manager.filter(pk=pk).exists():
        raise invalid_request(f"owner: no user with id {owner!r}", param="owner")
    return pk


def _keys(**lookup: Any) -> list[VirtualKey]:
    rows = list(models.VirtualKey.objects.filter(**lookup).order_by("created", "id"))
    teams = team_of_owners(row.owner_id for row in rows if row.team_id is None and row.customer_id is None)
    return [key_record(row, teams.get(row.owner_id)) for row in rows]


def _host_team_of(key: VirtualKey, owner_pk: Any) -> str | None:
    """The team to store for a key naming a host team: none when its owner's membership gives it that
    team anyway (so it follows the owner), else the team, whose row is made if it is not there yet."""
    if not key.team_id or not is_host_team(key.team_id):
        return key.team_id
    if owner_pk is not None and team_of_owners([owner_pk]).get(owner_pk) == key.team_id:
        return None
    found = host_team(key.team_id)
    if found is None:
        raise invalid_request(f"team_id: no team {key.team_id!r}", param="team_id")
    models.Team.objects.get_or_create(id=found[0], defaults={"name": found[1]})
    return key.team_id


def _put_key(key: VirtualKey) -> None:
    owner_pk = _owner_pk(key.owner)
    # save() runs, so revocation stays permanent even when a stale record is written back.
    with write_transaction(models.VirtualKey):
        fields = {**_key_fields(key, owner_pk), "team_id": _host_team_of(key, owner_pk)}
        models.VirtualKey.objects.update_or_create(id=key.id, defaults=fields)


def _team_record(row: models.Team) -> Team:
    return Team.model_validate(
        {"id": row.id, "name": row.name, "customer_id": row.customer_id, "budgets": row.budgets or [],
         "rate_limit": row.rate_limit, "created_at": to_timestamp(row.created)}
    )  # fmt: skip


def _customer_record(row: models.Customer) -> Customer:
    return Customer.model_validate(
        {"id": row.id, "name": row.name, "budgets": row.budgets or [], "rate_limit": row.rate_limit,
         "created_at": to_timestamp(row.created)}
    )  # fmt: skip


def _team(team_id: str) -> Team | None:
    row = models.Team.objects.filter(pk=team_id).first()
    found = host_team(team_id)
    if found is not None:  # a host team: its name is the host's, its limits (if any yet) the row's
        record = _team_record(row) if row is not None else Team(id=team_id)
        return record.model_copy(update={"name": found[1]})
    return None if row is None else _team_record(row)


def _customer(customer_id: str) -> Customer | None:
    row = models.Customer.objects.filter(pk=customer_id).first()
    return None if row is None else _customer_record(row)


def _owner_defaults(record: Team | Customer) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    return {"name": record.name, "budgets": data["budgets"], "rate_limit": data["rate_limit"],
            "created": to_datetime(record.created_at)}  # fmt: skip


def _put_team(team: Team) -> None:
    defaults = {**_owner_defaults(team), "customer_id": team.customer_id}
    with write_transaction(models.Team):
        models.Team.objects.update_or_create(id=team.id, defaults=defaults)


def _put_customer(customer: Customer) -> None:
    with write_transaction(models.Customer):
        models.Customer.objects.update_or_create(id=customer.id, defaults=_owner_defaults(customer))


def _teams() -> list[Team]:
    rows = {row.id: _team_record(row) for row in models.Team.objects.order_by("id")}
    for team_id, name in host_teams():  # every host team, with its limits where it has a row
        rows[team_id] = rows.get(team_id, Team(id=team_id)).model_copy(update={"name": name})
    return sorted(rows.values(), key=lambda team: team.id)


def _customers() -> list[Customer]:
    return [_customer_record(row) for row in models.Customer.objects.order_by("id")]


def _delete(model: Any, pk: str) -> None:
    model._default_manager.filter(pk=pk).delete()  # the foreign keys pointing here are set to NULL


def _provider_record(row: models.ProviderGovernance) -> ProviderGovernance:
    return ProviderGovernance.model_validate(
        {"provider": row.provider, "budgets": row.budgets or [], "rate_limit": row.rate_limit}
    )


def _provider_governance(provider: str | None) -> list[ProviderGovernance]:
    rows = models.ProviderGovernance.objects.order_by("provider")
    return [_provider_record(row) for row in (rows if provider is None else rows.filter(pk=provider))]


def _put_provider_governance(governed: ProviderGovernance) -> None:
    data = governed.model_dump(mode="json")
    defaults = {"budgets": data["budgets"], "rate_limit": data["rate_limit"]}
    with write_transaction(models.ProviderGovernance):
        models.ProviderGovernance.objects.update_or_create(provider=governed.provider, defaults=defaults)


class ORMKeyStore:
    """`KeyStore` over the `VirtualKey`, `Team` and `Customer` models.

    >>> app = create_app(config, key_store=ORMKeyStore())
    """

    async def by_prefix(self, prefix: str) -> list[VirtualKey]:
        return await run(_keys, prefix=prefix)

    async def get(self, key_id: str) -> VirtualKey | None:
        found = await run(_keys, pk=key_id)
        return found[0] if found else None

    async def list_keys(self, owner: str | None = None) -> list[VirtualKey]:
        if owner is None:
            return await run(_keys)
        pk = user_pk(owner)
        return [] if pk is None else await run(_keys, owner_id=pk)

    async def put(self, key: VirtualKey) -> None:
        await run(_put_key, key)

    async def team(self, team_id: str) -> Team | None:
        return await run(_team, team_id)

    async def customer(self, customer_id: str) -> Customer | None:
        return await run(_customer, customer_id)

    async def put_team(self, team: Team) -> None:
        await run(_put_team, team)

    async def put_customer(self, customer: Customer) -> None:
        await run(_put_customer, customer)

    async def list_teams(self) -> list[Team]:
        return await run(_teams)

    async def list_customers(self) -> list[Customer]:
        return await run(_customers)

    async def delete_team(self, team_id: str) -> None:
        await run(_delete, models.Team, team_id)

    async def delete_customer(self, customer_id: str) -> None:
        await run(_delete, models.Customer, customer_id)

    async def provider_governance(self, provider: str) -> ProviderGovernance | None:
        found = await run(_provider_governance, provider)
        return found[0] if found else None

    async def list_provider_governance(self) -> list[ProviderGovernance]:
        return await run(_provider_governance, None)

    async def put_provider_governance(self, governance: ProviderGovernance) -> None:
        await run(_put_provider_governance, governance)

    async def delete_provider_governance(self, provider: str) -> None:
        await run(_delete, models.ProviderGovernance, provider)

    async def aclose(self) -> None:
        return None


# -- counters ----------------------------------------------------------------------------------------


def _create_missing(alias: str, keys: list[str]) -> None:
    """Rows for counters never used before, in their own short transaction before any lock is taken.

    ``ignore_conflicts`` is get_or_create for many rows in one statement: another process creating the
    same row at the same moment is not an error. Committed at once, so the locking transaction below
    finds every row and locks them in key order.
    """
    manager = models.Counter.objects.using(alias)
    existing = set(manager.filter(key__in=keys).values_list("key", flat=True))
    missing = [models.Counter(key=key) for key in keys if key not in existing]
    if missing:
        with transaction.atomic(using=alias):
            manager.bulk_create(missing, ignore_conflicts=True)


@dataclass(frozen=True, slots=True)
class _CounterSQL:
    """The two statements every counter transaction runs, written once per database.

    Plain SQL through Django's own connection (its quoting, placeholders, JSON adaptation): the ORM's
    ``select_for_update`` and ``bulk_update`` built these from expressions on every call — ``bulk_update``
    alone a CASE per column per row, ~10 ms of Python a transaction, holding the GIL the event loop needs
    (measured: +0.3 ms on the p50 at c=1; see BENCHMARKS.md).
    """

    select: str  # ``{}``: the key placeholders
    update: str
    held: Any  # the ``held`` JSONField: decodes and adapts the column as the ORM would

    @classmethod
    def of(cls, alias: str) -> _CounterSQL:
        connection = connections[alias]
        quote, meta = connection.ops.quote_name, models.Counter._meta
        fields = [cast("Field[Any, Any]", meta.get_field(name)) for name in ("key", *_COUNTER_FIELDS)]
        columns = [quote(str(field.column)) for field in fields]
        key, values = columns[0], columns[1:]
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        table = quote(meta.db_table)
        select = f"SELECT {', '.join(columns)} FROM {table} WHERE {key} IN ({{}}) ORDER BY {key}{lock}"
        update = f"UPDATE {table} SET {', '.join(f'{c} = %s' for c in values)} WHERE {key} = %s"
        return cls(select, update, fields[-1])


_COUNTER_FIELDS = ("used", "reserved", "start", "end", "held")
_sql: dict[tuple[str, str], _CounterSQL] = {}
# Counter rows this process has seen exist (by database alias): a transaction on them skips
# `_create_missing`'s query. A row deleted since (a reset by hand) is noticed when it is not locked.
_known: dict[str, set[str]] = {}
_KNOWN_MAX = 100_000


def _statements(alias: str) -> _CounterSQL:
    vendor = connections[alias].vendor
    sql = _sql.get((alias, vendor))
    if sql is None:
        sql = _sql[(alias, vendor)] = _CounterSQL.of(alias)
    return sql


def _locked_states(alias: str, keys: list[str]) -> dict[str, CounterState]:
    # Locked in one stable (key) order by every process: admissions sharing counters queue, never deadlock.
    connection, sql = connections[alias], _statements(alias)
    with connection.cursor() as cursor:
        cursor.execute(sql.select.format(", ".join(["%s"] * len(keys))), keys)
        rows = cursor.fetchall()
    states = {}
    for key, used, reserved, start, end, held in rows:
        if isinstance(held, str | bytes):
            held = sql.held.from_db_value(held, None, connection)
        states[key] = CounterState(used, reserved, start, end, {int(k): v for k, v in held.items()})
    return states


def _save_states(alias: str, changed: Mapping[str, CounterState]) -> None:
    if not changed:
        return
    connection, sql = connections[alias], _statements(alias)
    rows = [
        (s.used, s.reserved, s.start, s.end,
         sql.held.get_db_prep_save({str(k): v for k, v in s.held.items()}, connection), key)
        for key, s in sorted(changed.items())
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.executemany(sql.update, rows)


def _counter_transaction(keys: Sequence[str], rule: Callable[[States], T]) -> T:
    """Run ``rule(states)`` (the core's own admit/settle/read rule) over the locked rows."""
    ordered = sorted(set(keys))
    alias = router.db_for_write(models.Counter)
    known = _known.setdefault(alias, set())
    try:
        if not known.issuperset(ordered):
            _create_missing(alias, ordered)
        done = _under_lock(ordered, rule)
        if done is None:  # rows deleted since this process saw them (a reset by hand): made again, once
            _create_missing(alias, ordered)
            done = _under_lock(ordered, rule)
            if done is None:  # deleted again between making and locking: the rule would save nowhere
                raise store_unavailable("counter rows deleted during the transaction")
    except DatabaseError as exc:
        # Fail closed, as the SQLite and Redis stores do. The driver's message stays in the server log.
        log.exception("governance counters: database error")
        raise store_unavailable(type(exc).__name__) from exc
    if len(known) > _KNOWN_MAX:
        known.clear()
    known.update(ordered)
    return done[0]


def _under_lock(ordered: list[str], rule: Callable[[States], T]) -> tuple[T] | None:
    """One transaction: lock the rows, apply the rule, save what changed; None (nothing written) when a
    row is missing."""
    with write_transaction(models.Counter) as alias:
        states = _locked_states(alias, ordered)
        if len(states) < len(ordered):
            return None
        result, changed = apply_rule(states, rule)
        _save_states(alias, changed)
        return (result,)


class ORMCounterStore(TransactionalCounterStore):
    """`CounterStore` over `Counter` rows: each admission, settlement and read is one transaction that
    locks the request's counter rows (``SELECT ... FOR UPDATE``) and applies the core's pure rules, so a
    limit holds exactly across every worker process and host sharing the database.

    On SQLite, where ``select_for_update`` is a no-op, each transaction takes the database's write lock
    with its first statement instead (`write_transaction`), so admissions queue for it.

    >>> app = create_app(config, counter_store=ORMCounterStore())
    """

    async def transaction(self, keys: Sequence[str], rule: Callable[[States], T]) -> T:
        return await run(_counter_transaction, keys, rule)


# -- usage logs --------------------------------------------------------------------------------------

# LogRecord field -> model field, where they differ.
_FIELDS = {"id": "request_id", "owner": "owner_id", "virtual_key_id": "virtual_key_id"}


def _existing(model: Any, ids: set[Any]) -> set[Any]:
    return set(model._default_manager.filter(pk__in=ids).values_list("pk", flat=True)) if ids else set()


def _write_logs(records: Sequence[LogRecord]) -> None:
    owners = {r.owner: user_pk(r.owner) for r in records if r.owner is not None}
    # A user or key deleted while the request ran is logged without the link (its name stays).
    live_owners = _existing(get_user_model(), {pk for pk in owners.values() if pk is not None})
    live_keys = _existing(models.VirtualKey, {r.virtual_key_id for r in records if r.virtual_key_id})
    rows = []
    for record in records:
        data = asdict(record)
        owner_pk = owners.get(record.owner) if record.owner is not None else None
        data.update(
            request_id=data.pop("id"),
            timestamp=to_datetime(record.timestamp),
            owner_id=owner_pk if owner_pk in live_owners else None,
            virtual_key_id=record.virtual_key_id if record.virtual_key_id in live_keys else None,
        )
        data.pop("owner")
        rows.append(models.UsageLog(**data))
    models.UsageLog.objects.bulk_create(rows)


def _log_filters(query: LogQuery) -> Q:
    """The parsed query's conditions as ORM lookups."""
    where = Q()
    for field, values in query.values.items():
        found: list[Any] = list(values)
        if field == "owner":  # ids that cannot be a user's primary key match nothing
            found = [pk for pk in map(user_pk, found) if pk is not None]
        where &= Q(**{f"{_FIELDS.get(field, field)}__in": found})
    for bound in query.bounds:
        value = to_datetime(bound.value) if bound.field == "timestamp" else bound.value
        where &= Q(**{f"{bound.field}__{'gte' if bound.op == '>=' else 'lte'}": value})
    if query.missing_cost_only:
        where &= (Q(cost__isnull=True) | Q(cost__lte=0)) & ~Q(status="error")
    return where


def _stats(rows: QuerySet[models.UsageLog]) -> dict[str, Any]:
    totals = rows.aggregate(
        count=Count("id"),
        completed=Count("id", filter=Q(status__in=TERMINAL_STATUSES)),
        succeeded=Count("id", filter=Q(status="success")),
        latency=Avg(Case(When(status__in=TERMINAL_STATUSES, then=F("latency")))),
        tokens=Sum("total_tokens"),
        prompt_tokens=Sum("input_tokens"),
        completion_tokens=Sum("output_tokens"),
        cost=Sum("cost"),
    )
    return log_stats(**totals)


def _ordered(rows: QuerySet[models.UsageLog], query: LogQuery) -> QuerySet[models.UsageLog]:
    column = F(query.sort_field)
    # NULL costs sort as SQLite sorts them (first ascending, last descending) on every database; the
    # row id breaks ties in the same direction, so pages neither repeat nor skip rows of equal value.
    if query.descending:
        return rows.order_by(column.desc(nulls_last=True), F("id").desc())
    return rows.order_by(column.asc(nulls_first=True), F("id").asc())


def _entry_of(row: models.UsageLog) -> dict[str, Any]:
    values = {
        "id": row.request_id,
        "timestamp": to_timestamp(row.timestamp),
        "owner": None if row.owner_id is None else str(row.owner_id),
    }
    return log_entry({c: values[c] if c in values else getattr(row, c) for c in COLUMNS})


def _search_logs(params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    query = parse_log_query(params)
    rows = models.UsageLog.objects.filter(_log_filters(query))
    page = _ordered(rows, query)[query.offset : query.offset + query.limit]
    logs = [_entry_of(row) for row in page]
    return log_page(query, logs, _stats(rows), has_logs=models.UsageLog.objects.exists())


def _scan_logs(query: LogQuery, fields: Sequence[str]) -> list[dict[str, Any]]:
    rows = models.UsageLog.objects.filter(_log_filters(query)).order_by("timestamp", "id")
    columns = [_FIELDS.get(f, f) for f in fields if f in COLUMNS]
    out = []
    for values in rows.values_list(*columns):
        row = dict(zip([f for f in fields if f in COLUMNS], values, strict=True))
        if "timestamp" in row:
            row["timestamp"] = to_timestamp(row["timestamp"])
        if row.get("owner") is not None:
            row["owner"] = str(row["owner"])
        out.append(row)
    return out


def _delete_logs(query: LogQuery) -> int:
    deleted, _ = models.UsageLog.objects.filter(_log_filters(query)).delete()
    return deleted


def _update_costs(costs: Mapping[str, float]) -> int:
    with write_transaction(models.UsageLog):
        return sum(
            models.UsageLog.objects.filter(request_id=request_id).update(cost=cost)
            for request_id, cost in costs.items()
        )


class ORMLogStore:
    """`LogStore` over `UsageLog` rows: batched inserts, and Bifrost's ``GET /api/logs`` search with the
    reference's filters, pagination and stats.

    >>> app = create_app(config, log_store=ORMLogStore())
    """

    async def write(self, records: Sequence[LogRecord]) -> None:
        await run(_write_logs, records)

    async def search(self, query: dict[str, list[str]]) -> dict[str, Any]:
        return await run(_search_logs, query)

    async def scan(self, query: LogQuery, fields: Sequence[str]) -> list[dict[str, Any]]:
        return await run(_scan_logs, query, fields)

    async def delete(self, query: LogQuery) -> int:
        return await run(_delete_logs, query)

    async def update_costs(self, costs: Mapping[str, float]) -> int:
        return await run(_update_costs, costs)

    async def aclose(self) -> None:
        return None
