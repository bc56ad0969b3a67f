"""``GatewayLifespan``: the gateway starts and stops with the ASGI server.

Django's ASGI handler does not speak the lifespan protocol, so without this the gateway opens its
upstream client on the first request and nothing closes it: the usage records still waiting to be
written when the server stops would be lost (uvicorn ends its workers right after its loop). Wrapped,
the server starts the gateway before the first request (a configuration error stops the boot, with
its message) and shuts it down on exit, flushing the last usage logs::

    # asgi.py
    from django.core.asgi import get_asgi_application
    from bifrost_django.asgi import GatewayLifespan

    application = GatewayLifespan(get_asgi_application())

This module imports nothing that needs Django's app registry, so it may be imported before
``get_asgi_application()`` sets Django up, as in the snippet; the gateway is built on lifespan startup.
Under WSGI there is no lifespan; the logs are flushed when the worker process exits instead.
"""

from __future__ import annotations

import logging

from bifrost_asgi.types import ASGIApp, Receive, Scope, Send

__all__ = ["GatewayLifespan"]

log = logging.getLogger("bifrost_django")

# Any ASGI application: Django's handler types its scope and messages more narrowly than this module.


class GatewayLifespan:
    """Answers the ASGI lifespan protocol for the gateway; every other scope goes to ``app``.

    >>> application = GatewayLifespan(get_asgi_application())
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        await _lifespan(receive, send)


async def _lifespan(receive: Receive, send: Send) -> None:
    await receive()  # lifespan.startup
    started = False
    try:
        # Imported now, not with this module: it reaches the models, which need Django set up, and the
        # documented asgi.py imports this module before get_asgi_application() has done that.
        from ._runtime import asgi_gateway

        gateway = asgi_gateway().app
        # Entered and left in this one task, as Starlette's lifespan context requires.
        async with gateway.router.lifespan_context(gateway):
            started = True
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown: leaving the block closes the gateway and flushes its logs
    except Exception as exc:
        phase = "shutdown" if started else "startup"
        log.exception("the AI gateway failed at %s", phase)
        await send({"type": f"lifespan.{phase}.failed", "message": f"bifrost_django: {exc}"})
        return
    await send({"type": "lifespan.shutdown.complete"})
