"""Bifrost's usage-log API (``transports/bifrost-http/handlers/logging.go``): search, stats, histograms,
the values a dashboard filters by, deletion and cost recalculation.

    GET    /api/logs                                   search: filters, pages, stats (``log_query``)
    GET    /api/logs/stats[?compare_to_previous=true]  the search's stats alone
    GET    /api/logs/histogram[/tokens|cost|models|latency|throughput[/by-provider|/by-dimension]]
    GET    /api/logs/filterdata[?dimensions=&q=]       distinct models, providers, keys, teams, ...
    GET    /api/logs/dropped                           records lost because their batch failed to write
    DELETE /api/logs                                   {"ids": [...]}, or the query's filters
    POST   /api/logs/recalculate-cost                  re-price matching records with today's prices
    GET    /api/logs/recalculate-cost/status, POST .../cancel

Every filter ``GET /api/logs`` takes applies to the stats and histograms too. Bifrost runs a cost
recalculation as a background job; we run it at once (bounded by ``limit``) and answer with both its
older result shape and the job-status shape its current dashboard polls for.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bifrost_asgi.errors import invalid_request, not_found
from bifrost_asgi.pricing import Usage
from bifrost_asgi.routes.management import Context, json_response, read_json
from bifrost_asgi.stores.log_analytics import (
    FILTER_FIELDS,
    HISTOGRAM_FIELDS,
    HISTOGRAMS,
    bucket_size,
    dimension_field,
    filter_data,
    filter_dimensions,
    histogram,
    time_range,
)
from bifrost_asgi.stores.log_query import LogQuery, ids_query, parse_log_query

__all__ = ["LogsAPI"]

log = logging.getLogger("bifrost_asgi.admin")

Handler = Callable[[Request], Awaitable[Response]]

_RECALC_FIELDS = ("id", "provider", "model", "input_tokens", "output_tokens", "cached_read_tokens",
                  "cached_write_tokens", "reasoning_tokens", "total_tokens")  # fmt: skip
_RECALC_LIMIT = 1000  # records re-priced per call, by default and at most 10x that
_MAX_DELETE_IDS = 10_000


def _params(request: Request) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        query.setdefault(name, []).append(value)
    return query


def _filters(query: LogQuery) -> bool:
    return bool(query.values or query.bounds or query.missing_cost_only)


class LogsAPI:
    """The handlers, over one management `Context`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def routes(self) -> list[tuple[str, str, Handler]]:
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/api/logs", self.search),
            ("DELETE", "/api/logs", self.delete),
            ("GET", "/api/logs/stats", self.stats),
            ("GET", "/api/logs/filterdata", self.filter_data),
            ("GET", "/api/logs/dropped", self.dropped),
            ("POST", "/api/logs/recalculate-cost", self.recalculate_cost),
            ("GET", "/api/logs/recalculate-cost/status", self.recalculation_status),
            ("POST", "/api/logs/recalculate-cost/cancel", self.cancel_recalculation),
        ]
        for kind in HISTOGRAMS:
            path = "/api/logs/histogram" + ("" if kind == "requests" else f"/{kind}")
            routes.append(("GET", path, self._histogram(kind)))
        return routes

    async def search(self, request: Request) -> Response:
        logs = await self.ctx.log_source()
        return json_response(await logs.store.search(_params(request)))

    async def stats(self, request: Request) -> Response:
        """The stats ``GET /api/logs`` reports; ``compare_to_previous``: also the window just before."""
        logs = await self.ctx.log_source()
        params = _params(request)
        current = (await logs.store.search({**params, "limit": ["1"], "offset": ["0"]}))["stats"]
        answer: dict[str, Any] = {**current, "has_previous_period": False}
        start, end = time_range(parse_log_query(params))
        compare = (params.get("compare_to_previous") or ["false"])[0].lower() == "true"
        if compare and start is not None and end is not None and end > start:
            earlier = {k: v for k, v in params.items() if k not in ("period", "start_time", "end_time")}
            window = {"start_time": [repr(2 * start - end)], "end_time": [repr(start - 1e-6)]}
            previous = await logs.store.search({**earlier, **window, "limit": ["1"], "offset": ["0"]})
            answer.update(previous=previous["stats"], has_previous_period=True)
        return json_response(answer)

    def _histogram(self, kind: str) -> Handler:
        async def handler(request: Request) -> Response:
            logs = await self.ctx.log_source()
            query = parse_log_query(_params(request))
            span = time_range(query)
            dimension = request.query_params.get("dimension")
            if kind.endswith("by-dimension"):
                dimension_field(dimension)  # a bad dimension is refused before any record is read
            rows = await logs.store.scan(query, HISTOGRAM_FIELDS)
            return json_response(histogram(kind, rows, bucket_size(*span), span, dimension))

        return handler

    async def filter_data(self, request: Request) -> Response:
        logs = await self.ctx.log_source()
        dims = filter_dimensions(request.query_params.get("dimensions"))
        rows = await logs.store.scan(parse_log_query({}), FILTER_FIELDS)
        names: dict[str, dict[str, str]] = {}
        gov = (await self.ctx.backend()).governance
        if gov is not None:  # teams and customers by their current names
            names["teams"] = {t.id: t.name or t.id for t in await gov.keys.list_teams()}
            names["customers"] = {c.id: c.name or c.id for c in await gov.keys.list_customers()}
        return json_response(filter_data(rows, dims, names, request.query_params.get("q", "").strip()))

    async def dropped(self, request: Request) -> Response:
        logs = await self.ctx.log_source()
        return json_response({"dropped_requests": logs.dropped})

    async def delete(self, request: Request) -> Response:
        """``{"ids": [...]}`` as Bifrost's current dashboard sends; an older client's query filters also
        select what to delete. Neither is a 400: nothing is deleted by accident."""
        logs = await self.ctx.log_source()
        body = await read_json(request, optional=True)
        ids = body.get("ids") if isinstance(body, dict) else None
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            raise invalid_request("ids must be a list of log ids", param="ids")
        if ids and len(ids) > _MAX_DELETE_IDS:
            raise invalid_request(f"ids: at most {_MAX_DELETE_IDS} at a time", param="ids")
        query = ids_query(ids) if ids else parse_log_query(_params(request))
        if not ids and not _filters(query):
            raise invalid_request("No log IDs provided", param="ids")
        deleted = await logs.store.delete(query)
        log.info("usage logs deleted: %d", deleted)
        return json_response({"message": "Logs deleted successfully", "deleted": deleted})

    async def recalculate_cost(self, request: Request) -> Response:
        """Re-price the matching records from their stored token counts (oldest first, ``limit`` of them)."""
        logs = await self.ctx.log_source()
        gov = await self.ctx.governance()
        body = await read_json(request, optional=True)
        if not isinstance(body, dict):
            raise invalid_request("invalid request format: the body must be a JSON object")
        query = parse_log_query(_filter_params(body.get("filters") or {}))
        limit = _limit(body.get("limit"))
        rows = await logs.store.scan(query, _RECALC_FIELDS)
        costs: dict[str, float] = {}
        for row in rows[:limit]:
            usage = Usage(
                input_tokens=row["input_tokens"] or 0, output_tokens=row["output_tokens"] or 0,
                cached_read_tokens=row["cached_read_tokens"] or 0,
                cached_write_tokens=row["cached_write_tokens"] or 0,
                reasoning_tokens=row["reasoning_tokens"] or 0, total_tokens=row["total_tokens"] or 0,
            )  # fmt: skip
            priced = gov.pricing.cost(row["provider"], row["model"], usage) if row["model"] else None
            if priced is not None:
                costs[row["id"]] = priced["total_cost"]
        updated = await logs.store.update_costs(costs) if costs else 0
        processed = min(len(rows), limit)
        log.info("usage log costs recalculated: %d of %d matched", updated, len(rows))
        return json_response({
            "status": "completed", "total": len(rows), "processed": processed, "updated": updated,
            "skipped": processed - updated, "total_matched": len(rows), "remaining": len(rows) - processed,
        })  # fmt: skip

    async def recalculation_status(self, request: Request) -> Response:
        await self.ctx.log_source()
        return json_response({"status": "idle"})  # recalculations finish within their request

    async def cancel_recalculation(self, request: Request) -> Response:
        await self.ctx.log_source()
        raise not_found("No recalculation job to cancel")


def _filter_params(filters: Any) -> dict[str, list[str]]:
    """Bifrost's ``SearchFilters`` JSON (lists, booleans, numbers) as query parameters."""
    if not isinstance(filters, Mapping):
        raise invalid_request("filters must be an object", param="filters")
    params: dict[str, list[str]] = {}
    for name, value in filters.items():
        if isinstance(value, list):
            params[name] = [",".join(str(v) for v in value)]
        elif isinstance(value, bool):
            params[name] = ["true" if value else "false"]
        elif value is not None:
            params[name] = [str(value)]
    return params


def _limit(value: Any) -> int:
    if value is None:
        return _RECALC_LIMIT
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise invalid_request("limit must be a positive integer", param="limit")
    return min(value, 10 * _RECALC_LIMIT)
