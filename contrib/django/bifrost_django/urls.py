"""``path("ai/", include("bifrost_django.urls"))``: every gateway route under one prefix.

One pattern catches everything under the include; it resolves to the async view when Django resolves
the URL on an event loop (the ASGI handler does, before calling the view) and to the sync view
otherwise (WSGI), so the same URLconf is native on both stacks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.urls import URLPattern, re_path
from django.urls.resolvers import ResolverMatch

from .views import gateway_async, gateway_sync

__all__ = ["GatewayPattern", "app_name", "urlpatterns"]

app_name = "bifrost"


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class GatewayPattern(URLPattern):
    """A URL pattern whose view is `gateway_async` under ASGI and `gateway_sync` under WSGI."""

    def __init__(self, pattern: Any, name: str) -> None:
        super().__init__(pattern, gateway_async, name=name)
        self._sync = URLPattern(pattern, gateway_sync, name=name)

    def resolve(self, path: str) -> ResolverMatch | None:
        return super().resolve(path) if _on_event_loop() else self._sync.resolve(path)


def _gateway_pattern(name: str) -> GatewayPattern:
    plain: Any = re_path(r"^(?P<subpath>.*)\Z", gateway_async, name=name)
    return GatewayPattern(plain.pattern, name)


urlpatterns = [_gateway_pattern("gateway")]
