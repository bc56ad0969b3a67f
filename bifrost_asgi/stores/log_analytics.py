"""Bifrost's log analytics (``/api/logs/histogram/...``, ``/api/logs/filterdata``), computed from the rows
a `LogStore.scan` returns, so every store answers them alike and only has to filter.

Every histogram buckets finished requests (`TERMINAL_STATUSES`) by ``floor(timestamp / size) * size``,
``size`` chosen from the query's time range as Bifrost's ``calculateBucketSize`` does; with both ends of
the range given, empty buckets are filled in. Answers are Bifrost's ``logstore`` result types.

    rows = await store.scan(query, HISTOGRAM_FIELDS)
    histogram("tokens", rows, bucket_size(query), time_range(query))
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bifrost_asgi.errors import invalid_request
from bifrost_asgi.stores.log_query import TERMINAL_STATUSES, LogQuery, rfc3339

__all__ = [
    "DIMENSIONS",
    "FILTER_DIMENSIONS",
    "HISTOGRAMS",
    "HISTOGRAM_FIELDS",
    "FILTER_FIELDS",
    "bucket_size",
    "dimension_field",
    "filter_dimensions",
    "filter_data",
    "histogram",
    "time_range",
]

Row = Mapping[str, Any]

# What a histogram reads of each record.
HISTOGRAM_FIELDS = (
    "timestamp", "status", "provider", "model", "input_tokens", "output_tokens", "total_tokens",
    "cached_read_tokens", "cost", "latency", "team_id", "customer_id", "owner",
)  # fmt: skip
# ``?dimension=`` of the by-dimension histograms -> the record field it groups by. Our records have no
# business units: grouping by one finds no values.
DIMENSIONS = {
    "provider": "provider",
    "team_id": "team_id",
    "customer_id": "customer_id",
    "user_id": "owner",
    "business_unit_id": None,
}
_DAY = 86400
# (range at least this long, bucket size), longest first.
_BUCKETS = ((365 * _DAY, 30 * _DAY), (90 * _DAY, 7 * _DAY), (31 * _DAY + 1, 3 * _DAY), (7 * _DAY, _DAY),
            (3 * _DAY, 8 * 3600), (_DAY, 3600), (2 * 3600, 600))  # fmt: skip


def time_range(query: LogQuery) -> tuple[float | None, float | None]:
    """The query's ``start_time`` and ``end_time`` (unix seconds), when given."""
    start = max((b.value for b in query.bounds if b.field == "timestamp" and b.op == ">="), default=None)
    end = min((b.value for b in query.bounds if b.field == "timestamp" and b.op == "<="), default=None)
    return start, end


def bucket_size(start: float | None, end: float | None) -> int:
    """Seconds per bucket for a time range, as Bifrost's ``calculateBucketSize``: an hour without one."""
    if start is None or end is None:
        return 3600
    span = end - start
    return next((size for at_least, size in _BUCKETS if span >= at_least), 60)


def _buckets(rows: Iterable[Row], size: int) -> dict[int, list[Row]]:
    grouped: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        if row["status"] in TERMINAL_STATUSES:
            grouped[int(row["timestamp"] // size) * size].append(row)
    return grouped


def _timeline(grouped: Mapping[int, object], size: int, start: float | None, end: float | None) -> list[int]:
    """Every bucket from the range's start to its end when both are known, else the ones with data."""
    if start is None or end is None:
        return sorted(grouped)
    first = int(start // size) * size
    return list(range(first, int(end) + 1, size)) if end >= first else []


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return float(ordered[max(0, math.ceil(fraction * len(ordered)) - 1)])


def _latency(rows: Sequence[Row]) -> dict[str, Any]:
    ordered = sorted(float(r["latency"] or 0) for r in rows)
    return {
        "avg_latency": sum(ordered) / len(ordered) if ordered else 0.0,
        "p90_latency": _percentile(ordered, 0.90),
        "p95_latency": _percentile(ordered, 0.95),
        "p99_latency": _percentile(ordered, 0.99),
        "total_requests": len(ordered),
    }


def _tokens(rows: Sequence[Row]) -> dict[str, int]:
    return {
        "prompt_tokens": sum(int(r["input_tokens"] or 0) for r in rows),
        "completion_tokens": sum(int(r["output_tokens"] or 0) for r in rows),
        "total_tokens": sum(int(r["total_tokens"] or 0) for r in rows),
    }


def _throughput(rows: Sequence[Row]) -> dict[str, Any]:
    """Completion tokens over generation seconds, over requests that took time (Bifrost's definition)."""
    timed = [r for r in rows if (r["latency"] or 0) > 0]
    tokens = sum(int(r["output_tokens"] or 0) for r in timed)
    seconds = sum(float(r["latency"]) for r in timed) / 1000
    return {
        "tokens_per_second": tokens / seconds if seconds else 0.0,
        "total_completion_tokens": tokens,
        "total_requests": len(rows),
    }


def _cost(rows: Sequence[Row]) -> float:
    return float(sum(r["cost"] for r in rows if r["cost"] is not None and r["cost"] > 0))


def _counts(rows: Sequence[Row]) -> dict[str, int]:
    succeeded = sum(1 for r in rows if r["status"] == "success")
    return {"total": len(rows), "success": succeeded, "error": len(rows) - succeeded, "cancelled": 0}


def _by(rows: Sequence[Row], field: str | None) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        value = row[field] if field is not None else None
        if value not in (None, ""):
            grouped[str(value)].append(row)
    return grouped


Render = Callable[[Sequence[Row], str | None, str], dict[str, Any]]


def _flat(stats: Callable[[Sequence[Row]], dict[str, Any]]) -> Render:
    """A bucket's own figures."""
    return lambda rows, field, key: stats(rows)


def _split(stats: Callable[[Sequence[Row]], dict[str, Any]]) -> Render:
    """A bucket's figures per value of ``field``, under ``key`` (``by_model``, ``by_provider``, ...)."""
    return lambda rows, field, key: {key: {name: stats(part) for name, part in _by(rows, field).items()}}


def _cost_bucket(rows: Sequence[Row], field: str | None, key: str) -> dict[str, Any]:
    priced = [r for r in rows if (r["cost"] or 0) > 0]
    return {"total_cost": _cost(rows), key: {name: _cost(part) for name, part in _by(priced, field).items()}}


def _requests(rows: Sequence[Row]) -> dict[str, Any]:
    counts = _counts(rows)
    return {"count": counts["total"], "success": counts["success"], "error": counts["error"], "cancelled": 0}


def _token_bucket(rows: Sequence[Row]) -> dict[str, Any]:
    return {**_tokens(rows), "cached_read_tokens": sum(int(r["cached_read_tokens"] or 0) for r in rows)}


# ``/api/logs/histogram[/<kind>]`` -> (bucket renderer, the field it breaks down by: None for none,
# "dimension" for the query's ``?dimension=``, and the breakdown's key in each bucket).
HISTOGRAMS: dict[str, tuple[Render, str | None, str]] = {
    "requests": (_flat(_requests), None, ""),
    "tokens": (_flat(_token_bucket), None, ""),
    "latency": (_flat(_latency), None, ""),
    "throughput": (_flat(_throughput), None, ""),
    "cost": (_cost_bucket, "model", "by_model"),
    "models": (_split(_counts), "model", "by_model"),
    "cost/by-provider": (_cost_bucket, "provider", "by_provider"),
    "tokens/by-provider": (_split(_tokens), "provider", "by_provider"),
    "latency/by-provider": (_split(_latency), "provider", "by_provider"),
    "throughput/by-provider": (_split(_throughput), "provider", "by_provider"),
    "cost/by-dimension": (_cost_bucket, "dimension", "by_dimension"),
    "tokens/by-dimension": (_split(_tokens), "dimension", "by_dimension"),
    "latency/by-dimension": (_split(_latency), "dimension", "by_dimension"),
}


def dimension_field(name: str | None) -> tuple[str, str | None]:
    """``?dimension=`` checked as Bifrost does: (its name, the record field it groups by)."""
    valid = ", ".join(DIMENSIONS)
    if not name:
        raise invalid_request(f"Missing required query parameter: dimension. Valid values: {valid}",
                              param="dimension")  # fmt: skip
    if name not in DIMENSIONS:
        raise invalid_request(f"Invalid dimension: {name}. Valid values: {valid}", param="dimension")
    return name, DIMENSIONS[name]


def histogram(
    kind: str,
    rows: Iterable[Row],
    size: int,
    span: tuple[float | None, float | None],
    dimension: str | None = None,
) -> dict[str, Any]:
    """One of `HISTOGRAMS` over the rows (``dimension``: the by-dimension histograms' ``?dimension=``)."""
    render, field, key = HISTOGRAMS[kind]
    name = None
    if field == "dimension":
        name, field = dimension_field(dimension)
    grouped = _buckets(rows, size)
    answer: dict[str, Any] = {
        "buckets": [
            {"timestamp": rfc3339(ts), **render(grouped.get(ts, []), field, key)}
            for ts in _timeline(grouped, size, *span)
        ],
        "bucket_size_seconds": size,
    }
    if key:
        values = sorted(_by([r for part in grouped.values() for r in part], field))
        if name is not None:
            answer["dimension"], answer["dimension_values"] = name, values
        else:
            answer["models" if field == "model" else "providers"] = values
    return answer


# -- /api/logs/filterdata ------------------------------------------------------------------------------

FILTER_FIELDS = ("model", "provider", "selected_key_name", "virtual_key_id", "virtual_key_name", "team_id",
                 "customer_id", "owner")  # fmt: skip
# Every dimension Bifrost's dashboard asks for; those our records cannot answer stay empty.
FILTER_DIMENSIONS = (
    "models", "aliases", "selected_keys", "virtual_keys", "routing_rules", "routing_engines", "stop_reasons",
    "apps", "user_agents", "teams", "customers", "users", "business_units", "metadata_keys", "providers",
)  # fmt: skip
_MAX_VALUES = 1000  # per dimension, as Bifrost's defaultFilterDataLimit


def filter_dimensions(raw: str | None) -> list[str]:
    """``?dimensions=a,b``: the known ones asked for, sorted; none (or none known) means all."""
    wanted = sorted({d.strip() for d in (raw or "").split(",")} & set(FILTER_DIMENSIONS))
    return wanted or sorted(FILTER_DIMENSIONS)


def filter_data(
    rows: Iterable[Row], dimensions: Sequence[str], names: Mapping[str, Mapping[str, str]], search: str = ""
) -> dict[str, Any]:
    """The distinct values a dashboard filters by. ``names`` maps ``teams`` / ``customers`` ids to their
    current names (an id no longer known is shown as deleted, as Bifrost does)."""
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for row in rows:
        for dim, id_field, name_field in (
            ("models", "model", "model"), ("providers", "provider", "provider"),
            ("selected_keys", "selected_key_name", "selected_key_name"),
            ("virtual_keys", "virtual_key_id", "virtual_key_name"), ("teams", "team_id", "team_id"),
            ("customers", "customer_id", "customer_id"), ("users", "owner", "owner"),
        ):  # fmt: skip
            value = row[id_field]
            if value not in (None, "") and str(value) not in found[dim]:
                found[dim][str(value)] = str(row[name_field] or value)
    needle = search.lower()
    out: dict[str, Any] = {}
    for dim in dimensions:
        values = {k: _name(dim, k, v, names) for k, v in found.get(dim, {}).items()}
        values = {k: v for k, v in values.items() if needle in k.lower() or needle in v.lower()}
        ordered = sorted(values.items(), key=lambda kv: kv[1])[:_MAX_VALUES]
        if dim in ("models", "providers"):
            out[dim] = [k for k, _ in ordered]
        elif dim == "metadata_keys":
            out[dim] = {}
        elif dim in ("selected_keys", "virtual_keys", "teams", "customers", "users"):
            out[dim] = [{"id": k, "name": v} for k, v in ordered]
        else:
            out[dim] = []
    return out


def _name(dim: str, key: str, seen: str, names: Mapping[str, Mapping[str, str]]) -> str:
    if dim not in names:
        return seen
    known = names[dim].get(key)
    return known if known else f"{seen} (deleted)"
