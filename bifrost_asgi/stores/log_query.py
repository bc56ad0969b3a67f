"""Bifrost's log search (``GET /api/logs``, spec §9) over the SQLite usage log.

    search_logs(store.connection, {"providers": ["openai,anthropic"], "min_cost": ["0.01"]})
    -> {"logs": [...], "pagination": {...}, "stats": {...}, "has_logs": true}

Every value reaches SQLite as a bound parameter; only column names and ``ASC``/``DESC`` are written
into the SQL text, and those come from the fixed tables below, never from the query. List filters take
comma-separated values, repeated parameters, or both. Filters Bifrost has but our records cannot
answer (``content_search``: content is never logged; aliases, routing rules, metadata, ...) are
ignored, as Bifrost ignores parameters it does not know, so its dashboard's URLs keep working.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bifrost_asgi.errors import invalid_request
from bifrost_asgi.stores.logs import COLUMNS, LogStore

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "month_usage", "search_logs"]

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
# Each value is one bound parameter; SQLite caps a statement at 32766 of them. No dashboard sends more.
_MAX_VALUES = 500

# Query parameter -> the LogRecord column it filters on.
_LIST_FILTERS = {
    "providers": "provider",
    "models": "model",
    "status": "status",
    "objects": "object",
    "virtual_key_ids": "virtual_key_id",
    "user_ids": "owner",
    "team_ids": "team_id",
    "customer_ids": "customer_id",
    # Bifrost filters on the provider key's id; we only ever record its name.
    "selected_key_ids": "selected_key_name",
}
# Query parameter -> (column, comparison, integer-valued).
_RANGE_FILTERS = {
    "min_latency": ("latency", ">=", False),
    "max_latency": ("latency", "<=", False),
    "min_tokens": ("total_tokens", ">=", True),
    "max_tokens": ("total_tokens", "<=", True),
    "min_cost": ("cost", ">=", False),
    "max_cost": ("cost", "<=", False),
}
_TIME_FILTERS = {"start_time": ">=", "end_time": "<="}
_SORT_COLUMNS = {"timestamp": "timestamp", "latency": "latency", "tokens": "total_tokens", "cost": "cost"}
_ORDERS = {"asc": "ASC", "desc": "DESC"}
_BOOL_COLUMNS = frozenset({"stream", "usage_estimated"})
_TRUE = frozenset({"1", "t", "true", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "no", "off"})
_TERMINAL = "status IN ('success', 'error')"


@dataclass(slots=True)
class _Where:
    """A WHERE clause under construction: SQL fragments (fixed text) and their bound values."""

    clauses: list[str] = field(default_factory=list)
    params: list[object] = field(default_factory=list)

    def add(self, clause: str, *params: object) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    def sql(self) -> str:
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""


@dataclass(frozen=True, slots=True)
class _Page:
    limit: int
    offset: int
    sort_by: str
    order: str


def search_logs(
    connection_factory: Callable[[], sqlite3.Connection], query: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """Filter, page and summarise the usage log; a bad parameter is a 400 naming it.

    Runs in a worker thread (``SQLiteLogStore.search``). The count, the stats and the page are read in
    one transaction, so they agree with each other while writers keep appending.
    """
    where = _filters(query)
    page = _page(query)
    conn = connection_factory()
    conn.execute("BEGIN")
    try:
        stats = _stats(conn, where)
        logs = _rows(conn, where, page)
        has_logs = bool(conn.execute("SELECT EXISTS(SELECT 1 FROM bifrost_logs)").fetchone()[0])
    finally:
        conn.execute("COMMIT")  # read-only: committing and rolling back are the same
    total = stats.pop("_count")
    return {
        "logs": logs,
        "pagination": {
            "limit": page.limit,
            "offset": page.offset,
            "sort_by": page.sort_by,
            "order": page.order,
            "total_count": total,
        },
        "stats": stats,
        "has_logs": has_logs,
    }


# -- parsing -----------------------------------------------------------------------------------------


def _first(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    """A single-valued parameter: the first occurrence wins, as in Bifrost's handler; blank is absent."""
    values = query.get(name) or ()
    value = values[0].strip() if values else ""
    return value or None


def _values(query: Mapping[str, Sequence[str]], name: str) -> list[str]:
    out: list[str] = []
    for raw in query.get(name) or ():
        out += [v.strip() for v in raw.split(",") if v.strip()]
    if len(out) > _MAX_VALUES:
        raise invalid_request(f"{name}: at most {_MAX_VALUES} values", param=name)
    return list(dict.fromkeys(out))  # duplicates would only cost bound parameters


def _number(name: str, text: str, *, integer: bool) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise invalid_request(f"{name} must be {kind}", param=name) from None
    # SQLite binds 64-bit integers only; a larger one would surface as a 500 instead of this 400.
    if not math.isfinite(value) or abs(value) >= 2**63:
        raise invalid_request(f"{name} is out of range", param=name)
    return value


def _timestamp(name: str, text: str) -> float:
    """RFC3339 (what Bifrost's dashboard sends) or unix seconds; a time without a zone is UTC."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
        raise invalid_request(f"{name} must be a finite time", param=name)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid_request(f"{name} must be an RFC3339 time or unix seconds", param=name) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _boolean(name: str, text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise invalid_request(f"{name} must be true or false", param=name)


def _filters(query: Mapping[str, Sequence[str]]) -> _Where:
    where = _Where()
    for name, column in _LIST_FILTERS.items():
        values = _values(query, name)
        if values:
            where.add(f"{column} IN ({', '.join('?' for _ in values)})", *values)
    for name, op in _TIME_FILTERS.items():
        text = _first(query, name)
        if text is not None:
            where.add(f"timestamp {op} ?", _timestamp(name, text))
    for name, (column, op, integer) in _RANGE_FILTERS.items():
        text = _first(query, name)
        if text is not None:
            where.add(f"{column} {op} ?", _number(name, text, integer=integer))
    missing = _first(query, "missing_cost_only")
    if missing is not None and _boolean("missing_cost_only", missing):
        # As Bifrost: requests that should have been priced and were not (errors are expected to be free).
        where.add("(cost IS NULL OR cost <= 0) AND status != 'error'")
    return where


def _page(query: Mapping[str, Sequence[str]]) -> _Page:
    # Out-of-range numbers are clamped, as Bifrost's handler does; non-numbers are refused.
    limit_text = _first(query, "limit")
    limit = DEFAULT_LIMIT if limit_text is None else int(_number("limit", limit_text, integer=True))
    offset_text = _first(query, "offset")
    offset = 0 if offset_text is None else int(_number("offset", offset_text, integer=True))
    sort_by = _first(query, "sort_by") or "timestamp"
    if sort_by not in _SORT_COLUMNS:
        raise invalid_request(f"sort_by must be one of {', '.join(_SORT_COLUMNS)}", param="sort_by")
    order = (_first(query, "order") or "desc").lower()
    if order not in _ORDERS:
        raise invalid_request("order must be asc or desc", param="order")
    return _Page(min(max(limit, 1), MAX_LIMIT), max(offset, 0), sort_by, order)


# -- reading -----------------------------------------------------------------------------------------


def _stats(conn: sqlite3.Connection, where: _Where) -> dict[str, Any]:
    sql = (
        "SELECT COUNT(*),"
        f" SUM(CASE WHEN {_TERMINAL} THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END),"
        f" AVG(CASE WHEN {_TERMINAL} THEN latency END),"
        " SUM(total_tokens), SUM(input_tokens), SUM(output_tokens), SUM(cost)"
        " FROM bifrost_logs" + where.sql()
    )
    count, completed, succeeded, latency, tokens, prompt, completion, cost = conn.execute(
        sql, where.params
    ).fetchone()
    # Bifrost rates success over finished requests. Each of our records is one user request (its
    # fallback_index says which fallback answered), so the user-facing figures are the same ones.
    rate = 100.0 * succeeded / completed if completed else 0.0
    return {
        "_count": count,
        "total_requests": count,
        "success_rate": rate,
        "user_facing_success_rate": rate,
        "user_facing_total_requests": completed or 0,
        "average_latency": float(latency or 0.0),
        "total_tokens": tokens or 0,
        "prompt_tokens": prompt or 0,
        "completion_tokens": completion or 0,
        "total_cost": float(cost or 0.0),
    }


def _rows(conn: sqlite3.Connection, where: _Where, page: _Page) -> list[dict[str, Any]]:
    column, order = _SORT_COLUMNS[page.sort_by], _ORDERS[page.order]
    # `seq` breaks ties in the same direction, so pages neither repeat nor skip rows of equal value.
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM bifrost_logs{where.sql()}"
        f" ORDER BY {column} {order}, seq {order} LIMIT ? OFFSET ?"
    )
    cursor = conn.execute(sql, [*where.params, page.limit, page.offset])
    return [_entry(row) for row in cursor.fetchall()]


def _entry(row: Sequence[Any]) -> dict[str, Any]:
    entry = dict(zip(COLUMNS, row, strict=True))
    for name in _BOOL_COLUMNS:
        entry[name] = bool(entry[name])
    # Bifrost's log JSON carries the time as RFC3339 and the tokens under `token_usage`.
    entry["timestamp"] = _rfc3339(entry["timestamp"])
    entry["token_usage"] = {
        "prompt_tokens": entry["input_tokens"],
        "completion_tokens": entry["output_tokens"],
        "total_tokens": entry["total_tokens"],
    }
    return entry


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def month_usage(store: LogStore, virtual_key_id: str, now: float) -> dict[str, Any]:
    """What a key used this calendar month (UTC), from the usage log: requests, tokens and cost."""
    start = datetime.fromtimestamp(now, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    query = {"virtual_key_ids": [virtual_key_id], "start_time": [start.isoformat()], "limit": ["1"]}
    stats = (await store.search(query))["stats"]
    return {
        "since": _rfc3339(start.timestamp()),
        "requests": stats["total_requests"],
        "tokens": stats["total_tokens"],
        "cost": stats["total_cost"],
    }
