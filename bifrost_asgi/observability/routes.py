"""The observability routes:

- ``GET /metrics``: Prometheus text, behind the admin credentials when ``governance.auth_config`` is
  enabled (as in Bifrost), open otherwise.
- ``GET /api/logs/charts``: the usage dashboard's data over every key, for admins (the management API's
  credentials, a host admin or an admin token).
- ``GET /api/me/usage/charts``: the same over a signed-in user's own keys.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bifrost_asgi.adapters.principal import PRINCIPAL_SCOPE_KEY, Principal
from bifrost_asgi.errors import BifrostError, unauthorized
from bifrost_asgi.observability.charts import RANGES, budget_rows, chart_data, parse_chart_query, usage_rows
from bifrost_asgi.routes.admin import admin_endpoint

if TYPE_CHECKING:
    from bifrost_asgi.gateway import Gateway

__all__ = ["observability_routes"]

_NO_STORE = {"cache-control": "no-store"}
Handler = Callable[[Request], Awaitable[Response]]


def observability_routes(gw: Gateway) -> list[BaseRoute]:
    auth = gw.config.governance.auth_config if gw.config.governance is not None else None
    routes: list[BaseRoute] = []
    if gw.telemetry.metrics is not None:
        routes.append(Route("/metrics", admin_endpoint(lambda: gw, _scrape(gw), auth=auth), methods=["GET"]))
    if gw.governance is not None and gw.logs is not None:
        closed = gw.governance.tokens is not None or gw.owners is not None
        admin = admin_endpoint(lambda: gw, _charts(gw, mine=False), auth=auth, other_admin_auth=closed)
        routes += [
            Route("/api/logs/charts", admin, methods=["GET"]),
            Route("/api/me/usage/charts", _charts(gw, mine=True), methods=["GET"]),
        ]
    return routes


def _scrape(gw: Gateway) -> Handler:
    metrics = gw.telemetry.metrics
    assert metrics is not None

    async def scrape(request: Request) -> Response:
        return Response(await metrics.exposition(), headers={"content-type": CONTENT_TYPE_LATEST})

    return scrape


def _charts(gw: Gateway, *, mine: bool) -> Handler:
    async def charts(request: Request) -> Response:
        try:
            return _json(await _chart(gw, request, mine))
        except BifrostError as err:
            return Response(err.to_json(), err.status_code, headers=_NO_STORE, media_type="application/json")

    return charts


async def _chart(gw: Gateway, request: Request, mine: bool) -> dict[str, object]:
    await gw.start()
    gov, logs = gw.governance, gw.logs
    assert gov is not None and logs is not None
    owner: str | None = None
    if mine:
        principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
        if not isinstance(principal, Principal):
            raise unauthorized("sign in to see your usage")
        owner = principal.user_id
    window, group = parse_chart_query({k: request.query_params.getlist(k) for k in request.query_params})
    now = time.time()
    size, count = RANGES[window]
    rows = await usage_rows(logs.store, now - size * (count + 1), owner)
    budgets = await budget_rows(gov, await gov.keys.list_keys(owner))
    return chart_data(rows, window, group, budgets, now)


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), headers=_NO_STORE, media_type="application/json")
