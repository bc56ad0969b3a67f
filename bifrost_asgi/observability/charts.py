"""The usage dashboard's data: requests, tokens and cost over time per key, user or model, the error rate,
latency percentiles and budget consumption, from the usage log.

    GET /api/logs/charts?range=7d&group_by=model      (admins: every key)
    GET /api/me/usage/charts?range=24h&group_by=key   (a signed-in user: their own keys)

    {"range": "7d", "group_by": "model", "bucket_seconds": 21600, "buckets": [t0, t1, ...],
     "requests": {"gpt-4o": [..], ...}, "tokens": {...}, "cost": {...},
     "error_rate": [..], "latency_ms": {"p50": [..], "p95": [..], "p99": [..]},
     "budgets": [{"key": "team-a", "limit": "...", "used": 1.2, "max": 10.0}, ...],
     "totals": {"requests": n, "errors": n, "tokens": n, "cost": x}}

The rows come from the log store's ``scan`` (every store has it: one query on SQLite and the ORM).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bifrost_asgi.errors import invalid_request
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.governance.models import VirtualKey
from bifrost_asgi.stores.log_query import since
from bifrost_asgi.stores.logs import LogStore

__all__ = ["RANGES", "budget_rows", "chart_data", "parse_chart_query", "usage_rows"]

# range -> (bucket seconds, bucket count)
RANGES = {"24h": (3600, 24), "7d": (6 * 3600, 28), "30d": (86400, 30)}
GROUPS = {"model": "model", "key": "virtual_key_name", "user": "owner", "provider": "provider"}
# What a chart needs of each log row.
CHART_FIELDS = (
    "timestamp", "owner", "virtual_key_id", "virtual_key_name", "provider", "model", "status", "latency",
    "total_tokens", "cost",
)  # fmt: skip
MAX_ROWS = 200_000  # the newest rows of a range, at most: a dashboard, not an export
MAX_SERIES = 8  # groups shown by name; the rest are added up as "other"
MAX_BUDGET_KEYS = 25


def parse_chart_query(params: Mapping[str, Sequence[str]]) -> tuple[str, str]:
    window = (params.get("range") or ["7d"])[-1]
    group = (params.get("group_by") or ["model"])[-1]
    if window not in RANGES:
        raise invalid_request(f"range must be one of {', '.join(RANGES)}", param="range")
    if group not in GROUPS:
        raise invalid_request(f"group_by must be one of {', '.join(GROUPS)}", param="group_by")
    return window, group


async def usage_rows(store: LogStore, start: float, owner: str | None) -> list[dict[str, Any]]:
    """The rows of the range, oldest first (the store's `scan`), at most the newest `MAX_ROWS`."""
    rows = await store.scan(since(start, owner), CHART_FIELDS)
    return rows[-MAX_ROWS:]


def chart_data(
    rows: Iterable[Mapping[str, Any]],
    window: str,
    group: str,
    budgets: Sequence[dict[str, Any]],
    now: float,
) -> dict[str, Any]:
    size, count = RANGES[window]
    end = math.floor(now / size) * size + size
    start = end - size * count
    per: dict[str, dict[str, list[float]]] = {"requests": {}, "tokens": {}, "cost": {}}
    errors = [0] * count
    latencies: list[list[float]] = [[] for _ in range(count)]
    field = GROUPS[group]
    for row in rows:
        i = int((float(row["timestamp"]) - start) // size)
        if not 0 <= i < count:
            continue
        name = str(row.get(field) or "(none)")
        for metric, value in (
            ("requests", 1),
            ("tokens", row.get("total_tokens")),
            ("cost", row.get("cost")),
        ):
            series = per[metric].setdefault(name, [0.0] * count)
            series[i] += float(value or 0)
        if row.get("status") == "error":
            errors[i] += 1
        if row.get("latency") is not None:
            latencies[i].append(float(row["latency"]))
    requests = [sum(s[i] for s in per["requests"].values()) for i in range(count)]
    top = sorted(per["requests"], key=lambda n: -sum(per["requests"][n]))[:MAX_SERIES]
    return {
        "range": window,
        "group_by": group,
        "bucket_seconds": size,
        "buckets": [start + i * size for i in range(count)],
        **{metric: _top(series, top) for metric, series in per.items()},
        "error_rate": [errors[i] / requests[i] if requests[i] else 0.0 for i in range(count)],
        "latency_ms": {f"p{q}": [_percentile(values, q) for values in latencies] for q in (50, 95, 99)},
        "budgets": list(budgets),
        "totals": {
            "requests": int(sum(requests)),
            "errors": sum(errors),
            "tokens": int(sum(sum(s) for s in per["tokens"].values())),
            "cost": sum(sum(s) for s in per["cost"].values()),
        },
    }


def _top(series: dict[str, list[float]], top: list[str]) -> dict[str, list[float]]:
    shown = {name: series[name] for name in top if name in series}
    rest = [values for name, values in series.items() if name not in shown]
    if rest:
        shown["other"] = [sum(column) for column in zip(*rest, strict=True)]
    return shown


def _percentile(values: list[float], q: int) -> float | None:
    """Nearest-rank percentile; None for an empty bucket (a gap in the line, not a zero)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def budget_rows(gov: Governance, keys: Iterable[VirtualKey]) -> list[dict[str, Any]]:
    """Each budget of the first keys that have any: what is spent in its window, against its limit."""
    rows: list[dict[str, Any]] = []
    with_budgets = [k for k in keys if k.budgets or any(r.budgets for r in k.provider_configs)]
    for key in with_budgets[:MAX_BUDGET_KEYS]:
        for usage in await gov.usage(key):
            if usage["kind"] == "budget" and usage["limit"].startswith(("vk:", "team:", "customer:")):
                rows.append(
                    {
                        "key": key.name,
                        "key_id": key.id,
                        "limit": usage["limit"],
                        "reset_duration": usage["reset_duration"],
                        "used": usage["used"],
                        "max": usage["max"],
                    }
                )
    return rows
