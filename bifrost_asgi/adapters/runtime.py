"""The event loop a WSGI adapter runs the gateway on (the Django adapter under WSGI, the Flask extension).

WSGI views are synchronous; the gateway is async. Every request of a process runs on one long-lived
loop in a background thread (`LoopThread`), so the gateway's pooled upstream connections, its key cache
and its usage-log batches outlive each request. `GatewayRuntime` starts that loop lazily, in the process
that serves: gunicorn forks workers after importing the app, and threads do not survive a fork. It holds
the gateway's ASGI lifespan open on the loop and closes it when the interpreter exits
(`register_exit`), which flushes the last usage logs.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.applications import Starlette

__all__ = ["GatewayRuntime", "LoopThread", "register_exit", "register_exit_for"]

log = logging.getLogger("bifrost_asgi")

T = TypeVar("T")

# Long enough to flush the last usage logs and close pooled connections; short enough not to hang exit.
_SHUTDOWN_TIMEOUT = 10.0


class LoopThread:
    """One event loop in a daemon thread, shared by every request of a WSGI process.

    >>> loop = LoopThread(name="myframework-bifrost")
    >>> loop.run(call_gateway(app, scope, body))   # from any request thread
    """

    def __init__(self, name: str = "bifrost-asgi-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    def close(self, timeout: float = _SHUTDOWN_TIMEOUT) -> None:
        """Stop for good: join the worker threads stores use (``asyncio.to_thread``), stop the loop and
        close it, so nothing is left for the garbage collector to warn about."""
        with suppress(Exception):
            self.run(self.loop.shutdown_default_executor(), timeout=timeout)
        self.stop()
        with suppress(RuntimeError):  # the thread did not stop in time; leave it to the interpreter
            self.loop.close()


def register_exit(callback: Callable[[], None]) -> None:
    """Run ``callback`` when the interpreter exits, while worker threads can still be started.

    ``atexit`` is too late for an adapter's last usage-log flush: the interpreter shuts its thread pools
    down first. Hooks registered with ``threading._register_atexit`` run before that, newest first; it
    is private, hence the ``atexit`` fallback.
    """
    register: Callable[[Callable[[], None]], object] = getattr(threading, "_register_atexit", atexit.register)
    register(callback)


def register_exit_for(target: T, callback: Callable[[T], None]) -> None:
    """`register_exit` for ``callback(target)``, holding ``target`` weakly: an object replaced and dropped
    before exit (a gateway rebuilt after a settings change, an app closed in a test) is not kept alive,
    and nothing runs for it."""
    ref = weakref.ref(target)

    def call() -> None:
        alive = ref()
        if alive is not None:
            callback(alive)

    register_exit(call)


@dataclass
class _Lifespan:
    """The gateway's ASGI lifespan, held open by a task on the loop until `stop` is set."""

    task: asyncio.Task[None]
    stop: asyncio.Event

    async def close(self) -> None:
        self.stop.set()
        await self.task


async def _enter_lifespan(app: Starlette) -> _Lifespan:
    """Start the app (open its upstream client) and keep its lifespan open in a task of its own.

    A task of its own, because Starlette's lifespan context must be entered and left in the same task.
    """
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def hold() -> None:
        try:
            async with app.router.lifespan_context(app):
                ready.set_result(None)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    task = asyncio.get_running_loop().create_task(hold())
    await ready
    return _Lifespan(task, stop)


class GatewayRuntime:
    """The gateway app and, once a request needs it, the loop thread running it.

    >>> runtime = GatewayRuntime(lambda: create_app(config), name="myframework-bifrost")
    >>> loop, app = runtime.get()      # the same loop for every call in this process
    >>> call_gateway_sync(loop, app, scope, body)
    >>> runtime.close()                # also done at interpreter exit
    """

    def __init__(self, factory: Callable[[], Starlette], *, name: str = "bifrost-asgi-loop") -> None:
        self._factory = factory
        self._name = name
        # Built now, so that configuration errors surface when the host app is set up.
        self._app = factory()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._loop: LoopThread | None = None
        self._lifespan: _Lifespan | None = None
        self._exit_hook = False

    @property
    def app(self) -> Starlette:
        return self._app

    def get(self) -> tuple[LoopThread, Starlette]:
        """The running loop and the app, starting both in this process on first use."""
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop, self._app
        with self._lock:
            return self._start(), self._app

    def _start(self) -> LoopThread:
        if self._pid != os.getpid():
            # A forked child (gunicorn --preload): the parent's loop thread does not exist here and its
            # app may hold the parent's connections, so this process builds its own.
            self._app, self._pid, self._loop, self._lifespan = self._factory(), os.getpid(), None, None
        if self._loop is not None:
            return self._loop
        loop = LoopThread(name=self._name)
        try:
            self._lifespan = loop.run(_enter_lifespan(self._app))
        except BaseException:
            loop.close()
            raise
        self._loop = loop
        if not self._exit_hook:
            register_exit_for(self, GatewayRuntime.close)
            self._exit_hook = True
        return loop

    def close(self) -> None:
        """Shut the gateway down (flushing its usage logs) and stop the loop thread. Idempotent."""
        with self._lock:
            loop, lifespan = self._loop, self._lifespan
            self._loop = self._lifespan = None
        if loop is None or self._pid != os.getpid():
            return
        try:
            if lifespan is not None:
                loop.run(lifespan.close(), timeout=_SHUTDOWN_TIMEOUT)
        except Exception:  # at exit there is nobody to raise to; say what was lost
            log.exception("the gateway did not shut down cleanly; the last usage logs may be missing")
        finally:
            loop.close()
