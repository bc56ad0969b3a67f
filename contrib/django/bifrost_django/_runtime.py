"""The gateway each process serves: built from ``settings.BIFROST`` on first use, with the ORM stores.

Under ASGI the gateway runs on the server's event loop. Under WSGI it runs on one long-lived loop in a
background thread (the core's `GatewayRuntime`), shared by every request thread of the process, so
pooled upstream connections survive between requests. Both are built after fork (keyed by pid): a
gunicorn worker never inherits its parent's sockets, loop or threads. A change to ``BIFROST``
(``override_settings``) builds them anew.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from starlette.applications import Starlette

from bifrost_asgi import GatewayConfig, create_app
from bifrost_asgi.adapters import GatewayRuntime, register_exit_for
from bifrost_asgi.stores import CounterStore, LogWriter, RedisCounterStore

from .conf import conf
from .owners import UserDirectory
from .signals import signal_hooks
from .stores import ORMCounterStore, ORMKeyStore, ORMLogStore

__all__ = ["Gateway", "asgi_gateway", "build_gateway", "counter_store", "wsgi_gateway"]

log = logging.getLogger("bifrost_django")


@dataclass(frozen=True)
class Gateway:
    app: Starlette
    max_body: int  # bytes: a larger body is refused by the gateway without being read whole


@dataclass
class _Process:
    pid: int
    asgi: Gateway | None = None
    wsgi: tuple[GatewayRuntime, Gateway] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _Process(pid=0)
_state_lock = threading.Lock()


def counter_store() -> CounterStore:
    if conf.COUNTERS == "redis":
        return RedisCounterStore(conf.REDIS_URL, prefix=conf.REDIS_PREFIX, fail_open=conf.REDIS_FAIL_OPEN)
    return ORMCounterStore()


def build_gateway(config: GatewayConfig | None = None) -> Gateway:
    """A gateway over this site's users and database (raises `ConfigError` on bad settings)."""
    config = config or conf.gateway_config()
    app = create_app(
        config,
        owner_directory=UserDirectory(),
        key_store=ORMKeyStore(),
        counter_store=counter_store(),
        log_store=ORMLogStore(),
        hooks=signal_hooks(),  # bifrost_django.signals
    )
    _flush_logs_at_exit(getattr(app.state.gateway, "logs", None))
    return Gateway(app, int(config.client.max_request_body_size_mb * 1024 * 1024))


def _flush_logs_at_exit(writer: LogWriter | None) -> None:
    """Write the usage records still waiting in ``writer`` when the process exits.

    The safety net for a gateway whose lifespan nobody closes: under ASGI without `GatewayLifespan`, a
    restart or a recycled worker would otherwise lose the last moments of usage. (`GatewayLifespan`
    flushes on the server's loop before exit; under WSGI the `GatewayRuntime` closes the gateway at
    exit, which flushes too, and this then finds nothing left.) By exit the loop the records were
    batched on may be gone, so the flush runs on a loop of its own; records
    go to the database on our own threads, before the interpreter shuts thread pools down
    (`register_exit_for`). Held weakly: a gateway replaced early (a settings change) is not kept alive.
    """
    if writer is not None:
        register_exit_for(writer, _flush_now)


def _flush_now(writer: LogWriter) -> None:
    try:
        asyncio.run(writer.flush())
    except Exception:  # at exit there is nobody to raise to; say what was lost
        log.exception("the last usage logs could not be written at exit")


def _process() -> _Process:
    global _state
    with _state_lock:
        if _state.pid != os.getpid():
            _state = _Process(pid=os.getpid())
        return _state


def asgi_gateway() -> Gateway:
    state = _process()
    with state.lock:
        if state.asgi is None:
            state.asgi = build_gateway()
        return state.asgi


def wsgi_gateway() -> tuple[GatewayRuntime, Gateway]:
    """The gateway and the runtime whose loop thread runs it (`GatewayRuntime.get` starts it)."""
    state = _process()
    with state.lock:
        if state.wsgi is None:
            gateway = build_gateway()
            # `_process` already gives each forked worker its own runtime, so the factory never rebuilds.
            state.wsgi = (GatewayRuntime(lambda: gateway.app, name="bifrost-django-loop"), gateway)
        return state.wsgi


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    global _state
    if setting in ("BIFROST", "DATABASES", "AUTH_USER_MODEL"):
        with _state_lock:
            old, _state = _state, _Process(pid=0)
        if old.wsgi is not None:
            old.wsgi[0].close()
