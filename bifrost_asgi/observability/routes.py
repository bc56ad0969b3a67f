"""The observability routes: ``GET /metrics`` (Prometheus text, behind the admin credentials when
``governance.auth_config`` is enabled, as in Bifrost) and the usage charts' data
(``GET /api/logs/charts`` for admins, ``GET /api/me/usage/charts`` for a signed-in user's own keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bifrost_asgi.routes.admin import admin_endpoint

if TYPE_CHECKING:
    from bifrost_asgi.gateway import Gateway

__all__ = ["observability_routes"]


def observability_routes(gw: Gateway) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    metrics = gw.telemetry.metrics
    if metrics is not None:

        async def scrape(request: Request) -> Response:
            assert metrics is not None
            return Response(await metrics.exposition(), headers={"content-type": CONTENT_TYPE_LATEST})

        auth = gw.config.governance.auth_config if gw.config.governance is not None else None
        routes.append(Route("/metrics", admin_endpoint(lambda: gw, scrape, auth=auth), methods=["GET"]))
    return routes
