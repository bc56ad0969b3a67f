"""Where the gateway keeps its state, behind three small Protocols: the public surface for writing a store.

- `KeyStore` (``keys``): virtual keys, teams and customers, as the `bifrost_asgi.governance` records.
- `CounterStore` (``counters``): budgets and rate limits; `Limit`, `Claim`, `Admission`,
  `CounterState`. Admission is all-or-nothing and must be atomic across processes: every store runs the
  same rules (`admit_states`, `settle_states`, `read_states`, `roll_window`); a database store gets
  them, and cancellation safety, from `TransactionalCounterStore` by writing one locked transaction.
- `LogStore` (``logs``): `LogRecord` batches from the `LogWriter`, and Bifrost's ``GET /api/logs``
  search: `parse_log_query`, then `log_entry` / `log_stats` / `log_page` lay out the answer
  (``log_query``); the store only runs the parsed `LogQuery` against its rows.

Implementations: in memory (one process), SQLite (the embedded default: ``sqlite_keys``,
``sqlite_logs``, ``sqlite_counters``), Redis counters (``redis_counters``; needs the ``redis`` extra
when one is created), and the Django ORM in ``bifrost_django.stores``. A deployment injects its own
with ``create_app(config, key_store=..., counter_store=..., log_store=...)``; docs/extending.md says
how to write one and test it.
"""

from __future__ import annotations

from bifrost_asgi.stores.counters import (
    Admission,
    Claim,
    CounterState,
    CounterStore,
    Limit,
    MemoryCounterStore,
    States,
    TransactionalCounterStore,
    admit_states,
    apply_rule,
    blocks,
    fresh_window,
    read_states,
    roll_window,
    settle_states,
    shielded,
    shielded_admit,
)
from bifrost_asgi.stores.keys import KeyStore, MemoryKeyStore
from bifrost_asgi.stores.log_query import (
    TERMINAL_STATUSES,
    Bound,
    LogQuery,
    log_entry,
    log_page,
    log_stats,
    month_usage,
    parse_log_query,
)
from bifrost_asgi.stores.logs import COLUMNS, LogRecord, LogStore, LogWriter
from bifrost_asgi.stores.redis_counters import RedisCounterStore
from bifrost_asgi.stores.sqlite_counters import SQLiteCounterStore
from bifrost_asgi.stores.sqlite_keys import SQLiteKeyStore
from bifrost_asgi.stores.sqlite_logs import SQLiteLogStore

__all__ = [
    "Admission",
    "Bound",
    "COLUMNS",
    "Claim",
    "CounterState",
    "CounterStore",
    "KeyStore",
    "Limit",
    "LogQuery",
    "LogRecord",
    "LogStore",
    "LogWriter",
    "MemoryCounterStore",
    "MemoryKeyStore",
    "RedisCounterStore",
    "SQLiteCounterStore",
    "SQLiteKeyStore",
    "SQLiteLogStore",
    "States",
    "TERMINAL_STATUSES",
    "TransactionalCounterStore",
    "admit_states",
    "apply_rule",
    "blocks",
    "fresh_window",
    "log_entry",
    "log_page",
    "log_stats",
    "month_usage",
    "parse_log_query",
    "read_states",
    "roll_window",
    "settle_states",
    "shielded",
    "shielded_admit",
]
