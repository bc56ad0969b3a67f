"""`create_app`: the gateway as a mountable Starlette app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from opentelemetry.trace import TracerProvider
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bifrost_asgi.adapters.principal import OwnerDirectory
from bifrost_asgi.config import GatewayConfig
from bifrost_asgi.errors import http_error
from bifrost_asgi.gateway import Gateway
from bifrost_asgi.governance.config import GovernanceConfig
from bifrost_asgi.observability.content import ContentRedactor
from bifrost_asgi.observability.hooks import Hooks
from bifrost_asgi.observability.routes import observability_routes
from bifrost_asgi.pipeline.journey import Endpoint
from bifrost_asgi.providers.base import Op, ProviderFactory
from bifrost_asgi.routes.admin import admin_routes
from bifrost_asgi.routes.dialect_models import AnthropicModels, GeminiModels
from bifrost_asgi.routes.models import handle_list_models
from bifrost_asgi.routes.self_service import self_service_routes
from bifrost_asgi.stores.counters import CounterStore
from bifrost_asgi.stores.keys import KeyStore
from bifrost_asgi.stores.logs import LogStore
from bifrost_asgi.surfaces.anthropic import MessagesCountSurface, MessagesSurface
from bifrost_asgi.surfaces.audio import SpeechSurface, TranscriptionSurface
from bifrost_asgi.surfaces.count_tokens import CountTokensSurface
from bifrost_asgi.surfaces.gemini import GeminiEndpoint
from bifrost_asgi.surfaces.media import EmbeddingsSurface, ImageEditSurface, ImageGenerationSurface
from bifrost_asgi.surfaces.openai import OpenAISurface
from bifrost_asgi.surfaces.passthrough import PASSTHROUGH_PREFIXES, PassthroughSurface

__all__ = ["INTEGRATION_PREFIXES", "create_app"]

# The OpenAI-style route set is served under the unified root and under each of these (spec §1.2).
INTEGRATION_PREFIXES = ("openai", "litellm", "langchain", "pydanticai")
# The framework prefixes serve Bifrost's Anthropic (and GenAI) route sets too, under their own name.
FRAMEWORK_PREFIXES = ("litellm", "langchain", "pydanticai")

Handler = Callable[[Any, Any, Any], Awaitable[None]]


class _Models:
    __slots__ = ("gw",)

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await handle_list_models(self.gw, scope, receive, send)


class _GatewayApp(Starlette):
    """Starlette, with the raw ASGI endpoints (inference, count tokens, models, /anthropic) found by one
    dict lookup on method and path.

    Those endpoints answer every error in Bifrost's shape themselves, so Starlette's two error
    middlewares and its regex routing add nothing to them but a cost per request and per ASGI send
    (~5% of a request; BENCHMARKS.md). Everything else, and every request once a middleware has been
    added to this app, takes Starlette's own path.
    """

    def __init__(self, *, routes: list[BaseRoute], gw: Gateway, **kwargs: Any) -> None:
        super().__init__(routes=routes, **kwargs)
        _refuse_duplicates(routes)
        self._direct: dict[tuple[str, str], Handler] = {
            (method, route.path): route.app
            for route in routes
            if isinstance(route, Route) and route.app is route.endpoint and not route.param_convertors
            for method in route.methods or ()
            if method != "HEAD"
        }
        metered = gw.telemetry.http_app  # a handler with the http_* metrics around it (None when off)
        # What one lookup on the fast path calls: a journey endpoint as it is (the probe it opens records
        # the http_* metrics, seeing status and sizes without a wrapper around every message), any other
        # endpoint inside the metrics wrapper. Everything else takes Starlette's path, inside it too.
        self._fast: dict[tuple[str, str], Handler] = {
            key: handler if isinstance(handler, Endpoint) else metered(handler, self._template) or handler
            for key, handler in self._direct.items()
        }
        self._routed: Handler = metered(self._starlette, self._template) or self._starlette

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if not self.user_middleware:
            handler = self._fast.get((scope["method"], _route_path(scope)))
            if handler is not None:
                scope["app"] = self
                await handler(scope, receive, send)
                return
        await self._routed(scope, receive, send)

    async def _starlette(self, scope: Any, receive: Any, send: Any) -> None:
        await super().__call__(scope, receive, send)

    def _template(self, scope: Any) -> str:
        """The route a request matched, as written in the route table (a bounded metrics label)."""
        path = _route_path(scope)
        if (scope["method"], path) in self._direct:
            return path
        for route in self.router.routes:
            if isinstance(route, Route) and route.path_regex.match(path):
                return route.path
        return "unmatched"


def _refuse_duplicates(routes: list[BaseRoute]) -> None:
    """Two routes for one method and path: the later would silently win (a dialect mounted over
    another's list). A wiring mistake of ours, caught when the app is built."""
    seen: set[tuple[str, str]] = set()
    for route in routes:
        if not isinstance(route, Route):
            continue
        for method in route.methods or ():
            if (method, route.path) in seen:
                raise RuntimeError(f"two routes for {method} {route.path}")
            seen.add((method, route.path))


def _route_path(scope: Any) -> str:
    """The path relative to where this app is mounted (what Starlette's router matches on)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


def _routes(gw: Gateway) -> list[BaseRoute]:
    """Every route of the gateway. A dialect is a surface on the one journey: serving it under another
    prefix is one more line here."""
    routes: list[BaseRoute] = []
    for integration in (None, *INTEGRATION_PREFIXES):
        p = f"/{integration}" if integration else ""
        chat = Endpoint(gw, OpenAISurface(Op.CHAT, integration))
        text = Endpoint(gw, OpenAISurface(Op.TEXT, integration))
        responses = Endpoint(gw, OpenAISurface(Op.RESPONSES, integration))
        count = Endpoint(gw, CountTokensSurface(integration))
        media = _media_endpoints(gw, integration)
        # Integration prefixes also accept the paths without /v1, as OpenAI SDK base URLs vary.
        for root in [p + "/v1", p] if integration else ["/v1"]:
            routes += [
                Route(root + "/chat/completions", chat, methods=["POST"]),
                Route(root + "/responses", responses, methods=["POST"]),
                Route(root + "/responses/input_tokens", count, methods=["POST"]),
                Route(root + "/completions", text, methods=["POST"]),
                Route(root + "/models", _Models(gw), methods=["GET"]),
            ]
            routes += [Route(root + path, endpoint, methods=["POST"]) for path, endpoint in media.items()]
        if integration:
            routes += [
                Route(p + "/openai/responses", responses, methods=["POST"]),
                Route(p + "/openai/responses/input_tokens", count, methods=["POST"]),
            ]
    for integration in ("anthropic", *FRAMEWORK_PREFIXES):
        routes += _messages_routes(gw, integration)
    routes.append(Route("/anthropic/v1/models", AnthropicModels(gw), methods=["GET"]))
    for integration in ("genai", *FRAMEWORK_PREFIXES):
        routes += _gemini_routes(gw, integration)
    routes += _passthrough_routes(gw)
    routes.append(Route("/health", _health, methods=["GET"]))
    return routes + observability_routes(gw)


def _passthrough_routes(gw: Gateway) -> list[BaseRoute]:
    """Bifrost's raw passthrough prefixes (surfaces/passthrough.py). Every method reaches the surface,
    which answers Bifrost's 403 for anything but the POST inference operations."""
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route(f"/{prefix}/{{path:path}}", Endpoint(gw, PassthroughSurface(prefix)), methods=methods)
        for prefix in PASSTHROUGH_PREFIXES
    ]


def _media_endpoints(gw: Gateway, integration: str | None) -> dict[str, Endpoint]:
    """Embeddings, images and audio (surfaces/media.py, surfaces/audio.py), by path below ``/v1``."""
    return {
        "/embeddings": Endpoint(gw, EmbeddingsSurface(integration)),
        "/images/generations": Endpoint(gw, ImageGenerationSurface(integration)),
        "/images/edits": Endpoint(gw, ImageEditSurface(integration)),
        "/audio/speech": Endpoint(gw, SpeechSurface(integration)),
        "/audio/transcriptions": Endpoint(gw, TranscriptionSurface(Op.TRANSCRIPTION, integration)),
        "/audio/translations": Endpoint(gw, TranscriptionSurface(Op.TRANSLATION, integration)),
    }


def _gemini_routes(gw: Gateway, integration: str) -> list[BaseRoute]:
    """The Gemini dialect under ``/{integration}``: ``models/{model}:{method}`` and the model list, under
    ``v1beta`` (Bifrost's) and ``v1`` (google-genai's default API version). Under a framework prefix
    ``GET .../v1/models`` stays the OpenAI list, so Gemini's list is there only under ``v1beta``."""
    endpoint, models = GeminiEndpoint(gw, integration), GeminiModels(gw)
    routes: list[BaseRoute] = []
    for version in ("v1beta", "v1"):
        p = f"/{integration}/{version}/models"
        routes.append(Route(p + "/{target:path}", endpoint, methods=["POST"]))
        if version == "v1beta" or integration == "genai":
            routes += [
                Route(p, models, methods=["GET"]),
                Route(p + "/{target:path}", models, methods=["GET"]),
            ]
    return routes


def _messages_routes(gw: Gateway, integration: str) -> list[BaseRoute]:
    """The Anthropic Messages dialect under ``/{integration}`` (only with /v1, as Bifrost registers it)."""
    p = f"/{integration}/v1"
    return [
        Route(p + "/messages", Endpoint(gw, MessagesSurface(integration)), methods=["POST"]),
        Route(
            p + "/messages/count_tokens", Endpoint(gw, MessagesCountSurface(integration)), methods=["POST"]
        ),
    ]


async def _health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods answer in Bifrost's error shape too."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = exc.detail if isinstance(exc, HTTPException) else "internal gateway error"
    err = http_error(status, f"{message}: {request.method} {request.url.path}")
    return Response(err.to_json(), status_code=status, media_type="application/json")


def create_app(
    config: GatewayConfig | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    owner_directory: OwnerDirectory | None = None,
    key_store: KeyStore | None = None,
    counter_store: CounterStore | None = None,
    log_store: LogStore | None = None,
    providers: Mapping[str, ProviderFactory] | None = None,
    hooks: Hooks | None = None,
    tracer_provider: TracerProvider | None = None,
    redact_content: ContentRedactor | None = None,
) -> Starlette:
    """The gateway as an ASGI app; mount it anywhere.

    >>> app.mount("/ai", create_app(GatewayConfig.from_file("config.json")))

    The app owns one pooled upstream transport, opened on lifespan startup (or on the first request when
    the host does not forward lifespan events to mounted apps) and closed on shutdown. ``transport``
    replaces the network, for tests (``httpx.MockTransport``). Framework adapters pass the host's
    ``owner_directory`` (are a key owner's account and its keys still usable?) and may inject their own
    stores (the Django ORM ones). ``providers`` maps a configured provider's name to a factory for a
    provider of your own (docs/extending.md). ``hooks`` are the host's callbacks on usage, budgets and
    keys; ``tracer_provider`` replaces OpenTelemetry's global one for the gateway's spans;
    ``redact_content`` edits what content logging stores (docs/observability.md).
    """
    gw = Gateway(
        config or GatewayConfig(),
        transport=transport,
        owner_directory=owner_directory,
        key_store=key_store,
        counter_store=counter_store,
        log_store=log_store,
        provider_factories=providers,
        hooks=hooks,
        tracer_provider=tracer_provider,
        redact_content=redact_content,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.start()
        try:
            yield
        finally:
            await gw.aclose()

    routes = _routes(gw)
    if gw.governance is not None:

        async def admin_backend() -> Gateway:
            await gw.start()  # hosts that do not forward lifespan events to mounted apps
            return gw

        gov_cfg = gw.config.governance or GovernanceConfig()
        # In a host app (owner directory) or with signed tokens, admins have another way in: an
        # unauthenticated management API would then be an accident, so it is closed instead.
        closed = gw.governance.tokens is not None or gw.owners is not None
        routes += admin_routes(admin_backend, auth=gov_cfg.auth_config, other_admin_auth=closed)
        routes += self_service_routes(admin_backend)
    app = _GatewayApp(
        routes=routes,
        gw=gw,
        lifespan=lifespan,
        exception_handlers={404: _http_error, 405: _http_error, 500: _http_error},
    )
    app.state.gateway = gw
    return app
