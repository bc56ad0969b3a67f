"""Bifrost's log search (``GET /api/logs``, spec §9), for every `LogStore`: the query parsed, the answer
laid out. Each store only runs the parsed query against its own rows (SQL in ``sqlite_logs``, the ORM
in the Django adapter).

    query = parse_log_query({"providers": ["openai,anthropic"], "min_cost": ["0.01"]})
    ... the store filters by query.values / query.bounds / query.missing_cost_only, sorts, pages ...
    log_page(query, [log_entry(row) for row in page], log_stats(count=..., ...), has_logs=True)
    -> {"logs": [...], "pagination": {...}, "stats": {...}, "has_logs": true}

List filters take comma-separated values, repeated parameters, or both. Filters Bifrost has but our
records cannot answer (``content_search``: content is never logged; aliases, routing rules, metadata,
...) are ignored, as Bifrost ignores parameters it does not know, so its dashboard's URLs keep working.
A bad value is a 400 naming its parameter.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from bifrost_asgi.errors import invalid_request
from bifrost_asgi.stores.logs import LogStore

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "TERMINAL_STATUSES",
    "Bound",
    "LogQuery",
    "ids_query",
    "log_entry",
    "log_page",
    "log_stats",
    "month_usage",
    "parse_log_query",
    "rfc3339",
]

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
# Bifrost rates success over finished requests; these are the statuses of a finished one.
TERMINAL_STATUSES = ("success", "error")
# Each value is one bound parameter to a SQL store; SQLite caps a statement at 32766 of them. No dashboard
# sends more.
_MAX_VALUES = 500

# Query parameter -> the LogRecord field it filters on.
_LIST_FILTERS = {
    "providers": "provider",
    "models": "model",
    "status": "status",
    "objects": "object",
    "virtual_key_ids": "virtual_key_id",
    "request_id": "id",
    "user_ids": "owner",
    "team_ids": "team_id",
    "customer_ids": "customer_id",
    # Bifrost filters on the provider key's id; we only ever record its name.
    "selected_key_ids": "selected_key_name",
    # Ours: answers served by the response cache, by hit type ("direct", "semantic").
    "cache_hits": "cache_hit",
}
# Query parameter -> (field, comparison, integer-valued).
_RANGE_FILTERS: dict[str, tuple[str, Literal[">=", "<="], bool]] = {
    "min_latency": ("latency", ">=", False),
    "max_latency": ("latency", "<=", False),
    "min_tokens": ("total_tokens", ">=", True),
    "max_tokens": ("total_tokens", "<=", True),
    "min_cost": ("cost", ">=", False),
    "max_cost": ("cost", "<=", False),
}
_TIME_FILTERS: dict[str, Literal[">=", "<="]] = {"start_time": ">=", "end_time": "<="}
# ``period=24h``: the last 24 hours (Bifrost's dashboard presets; it wins over start_time/end_time).
_PERIOD = re.compile(r"^(\d+)([mhdw])$")
_PERIOD_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# sort_by -> the LogRecord field it sorts on.
_SORT_FIELDS = {"timestamp": "timestamp", "latency": "latency", "tokens": "total_tokens", "cost": "cost"}
_ORDERS: dict[str, Literal["asc", "desc"]] = {"asc": "asc", "desc": "desc"}
_BOOL_FIELDS = frozenset({"stream", "usage_estimated"})
_TRUE = frozenset({"1", "t", "true", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class Bound:
    """``field op value``: a LogRecord number (``timestamp`` in unix seconds) on one side of a value."""

    field: str
    op: Literal[">=", "<="]
    value: float


@dataclass(frozen=True, slots=True)
class LogQuery:
    """A parsed ``GET /api/logs`` query. A record matches when every condition holds:

    - ``values``: for each LogRecord field named, the record's value is one of these;
    - ``bounds``: each `Bound` holds;
    - ``missing_cost_only``: the record should have been priced and was not (``cost`` NULL or <= 0, and
      ``status`` is not ``error``: errors are expected to be free), as Bifrost.

    Matches are sorted by ``sort_field`` (NULLs first ascending, last descending, as SQLite sorts them),
    ties broken by insertion order in the same direction, and paged by ``limit`` and ``offset``.
    """

    values: Mapping[str, tuple[str, ...]]
    bounds: tuple[Bound, ...]
    missing_cost_only: bool
    limit: int
    offset: int
    sort_by: str  # as the query named it (``tokens``), echoed in the answer
    order: Literal["asc", "desc"]

    @property
    def sort_field(self) -> str:
        return _SORT_FIELDS[self.sort_by]

    @property
    def descending(self) -> bool:
        return self.order == "desc"


def parse_log_query(query: Mapping[str, Sequence[str]]) -> LogQuery:
    """A query string (``parse_qs`` shape) as a `LogQuery`; a bad parameter is a 400 naming it."""
    values = {field: found for name, field in _LIST_FILTERS.items() if (found := _values(query, name))}
    bounds = _period(_first(query, "period")) or [
        Bound("timestamp", op, _timestamp(name, text))
        for name, op in _TIME_FILTERS.items()
        if (text := _first(query, name)) is not None
    ]
    bounds += [
        Bound(field, op, _number(name, text, integer=integer))
        for name, (field, op, integer) in _RANGE_FILTERS.items()
        if (text := _first(query, name)) is not None
    ]
    missing = _first(query, "missing_cost_only")
    missing_cost_only = missing is not None and _boolean("missing_cost_only", missing)
    limit, offset, sort_by, order = _page(query)
    return LogQuery(values, tuple(bounds), missing_cost_only, limit, offset, sort_by, order)


def ids_query(ids: Sequence[str]) -> LogQuery:
    """The records with these request ids (``DELETE /api/logs``)."""
    return LogQuery({"id": tuple(ids)}, (), False, len(ids), 0, "timestamp", "desc")


def older_than(timestamp: float) -> LogQuery:
    """The records from before ``timestamp`` (retention, ``client.log_retention_days``)."""
    return LogQuery({}, (Bound("timestamp", "<=", timestamp),), False, 0, 0, "timestamp", "asc")


def since(timestamp: float, owner: str | None = None) -> LogQuery:
    """The records from ``timestamp`` on, of one owner or everyone's (the usage charts)."""
    values = {"owner": (owner,)} if owner is not None else {}
    return LogQuery(values, (Bound("timestamp", ">=", timestamp),), False, 0, 0, "timestamp", "asc")


def log_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record (every LogRecord field, as stored) as Bifrost's log JSON: the time as RFC3339, booleans
    as booleans, and the tokens also under ``token_usage``."""
    entry = dict(record)
    entry.pop("content", None)  # prompts and answers are kept with the record, never listed (as Bifrost)
    for name in _BOOL_FIELDS:
        entry[name] = bool(entry[name])
    entry["timestamp"] = rfc3339(entry["timestamp"])
    entry["token_usage"] = {
        "prompt_tokens": entry["input_tokens"],
        "completion_tokens": entry["output_tokens"],
        "total_tokens": entry["total_tokens"],
    }
    return entry


def log_stats(
    *,
    count: int,
    completed: int | None,
    succeeded: int | None,
    latency: float | None,
    tokens: int | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    cost: float | None,
) -> dict[str, Any]:
    """Bifrost's ``stats`` from a store's totals over the matching records (None: a sum over nothing).

    ``completed`` and ``succeeded`` count records whose status is in `TERMINAL_STATUSES` and ``success``;
    ``latency`` is the average over the completed ones.
    """
    completed = completed or 0
    # Each of our records is one user request (its fallback_index says which fallback answered), so the
    # user-facing figures are the same ones.
    rate = 100.0 * (succeeded or 0) / completed if completed else 0.0
    return {
        "total_requests": count,
        "success_rate": rate,
        "user_facing_success_rate": rate,
        "user_facing_total_requests": completed,
        "average_latency": float(latency or 0.0),
        "total_tokens": tokens or 0,
        "prompt_tokens": prompt_tokens or 0,
        "completion_tokens": completion_tokens or 0,
        "total_cost": float(cost or 0.0),
    }


def log_page(
    query: LogQuery, logs: list[dict[str, Any]], stats: dict[str, Any], *, has_logs: bool
) -> dict[str, Any]:
    """The ``GET /api/logs`` answer: one page of `log_entry` dicts, with its `log_stats` over every match.

    ``has_logs`` says whether the store holds any record at all (the dashboard's empty state).
    """
    return {
        "logs": logs,
        "pagination": {
            "limit": query.limit,
            "offset": query.offset,
            "sort_by": query.sort_by,
            "order": query.order,
            "total_count": stats["total_requests"],
        },
        "stats": stats,
        "has_logs": has_logs,
    }


async def month_usage(store: LogStore, virtual_key_id: str, now: float) -> dict[str, Any]:
    """What a key used this calendar month (UTC), from the usage log: requests, tokens and cost."""
    start = datetime.fromtimestamp(now, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    query = {"virtual_key_ids": [virtual_key_id], "start_time": [start.isoformat()], "limit": ["1"]}
    stats = (await store.search(query))["stats"]
    return {
        "since": rfc3339(start.timestamp()),
        "requests": stats["total_requests"],
        "tokens": stats["total_tokens"],
        "cost": stats["total_cost"],
    }


# -- parsing one parameter ---------------------------------------------------------------------------


def _period(text: str | None) -> list[Bound]:
    """A preset window ending now; one Bifrost would not resolve is ignored, as Bifrost ignores it."""
    match = _PERIOD.match(text or "")
    if match is None:
        return []
    now = time.time()
    start = now - int(match.group(1)) * _PERIOD_SECONDS[match.group(2)]
    return [Bound("timestamp", ">=", start), Bound("timestamp", "<=", now)]


def _first(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    """A single-valued parameter: the first occurrence wins, as in Bifrost's handler; blank is absent."""
    values = query.get(name) or ()
    value = values[0].strip() if values else ""
    return value or None


def _values(query: Mapping[str, Sequence[str]], name: str) -> tuple[str, ...]:
    out: list[str] = []
    for raw in query.get(name) or ():
        out += [v.strip() for v in raw.split(",") if v.strip()]
    if len(out) > _MAX_VALUES:
        raise invalid_request(f"{name}: at most {_MAX_VALUES} values", param=name)
    return tuple(dict.fromkeys(out))  # duplicates would only cost bound parameters


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


def _page(query: Mapping[str, Sequence[str]]) -> tuple[int, int, str, Literal["asc", "desc"]]:
    # Out-of-range numbers are clamped, as Bifrost's handler does; non-numbers are refused.
    limit_text = _first(query, "limit")
    limit = DEFAULT_LIMIT if limit_text is None else int(_number("limit", limit_text, integer=True))
    offset_text = _first(query, "offset")
    offset = 0 if offset_text is None else int(_number("offset", offset_text, integer=True))
    sort_by = _first(query, "sort_by") or "timestamp"
    if sort_by not in _SORT_FIELDS:
        raise invalid_request(f"sort_by must be one of {', '.join(_SORT_FIELDS)}", param="sort_by")
    order = (_first(query, "order") or "desc").lower()
    if order not in _ORDERS:
        raise invalid_request("order must be asc or desc", param="order")
    return min(max(limit, 1), MAX_LIMIT), max(offset, 0), sort_by, _ORDERS[order]


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
