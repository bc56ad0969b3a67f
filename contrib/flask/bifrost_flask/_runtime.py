"""One process's gateway: the ASGI app and the event loop thread that runs it, started on first use.

Flask views are synchronous; the gateway is async. Every request of the process runs on one long-lived
loop in a background thread (`LoopThread`), so the gateway's pooled upstream connections, its key cache
and its usage-log batches outlive each request. The loop is created lazily, in the process that serves:
gunicorn forks workers after importing the app, and threads do not survive a fork.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from starlette.applications import Starlette

from bifrost_asgi.adapters.bridge import LoopThread

__all__ = ["GatewayRuntime"]

log = logging.getLogger("bifrost_flask")

# Long enough to flush the last usage logs and close pooled connections; short enough not to hang exit.
_SHUTDOWN_TIMEOUT = 10.0


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

    >>> runtime = GatewayRuntime(lambda: create_app(config))
    >>> loop, app = runtime.get()      # the same loop for every call in this process
    >>> runtime.close()                # also done at interpreter exit
    """

    def __init__(self, factory: Callable[[], Starlette]) -> None:
        self._factory = factory
        # Built now, so that configuration errors surface when the Flask app is set up.
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
        loop = LoopThread(name="bifrost-flask-loop")
        try:
            self._lifespan = loop.run(_enter_lifespan(self._app))
        except BaseException:
            _stop_loop(loop)
            raise
        self._loop = loop
        if not self._exit_hook:
            _close_at_exit(self)
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
            _stop_loop(loop)


def _close_at_exit(runtime: GatewayRuntime) -> None:
    """Close ``runtime`` when the interpreter exits, while worker threads can still be started.

    ``atexit`` is too late: the interpreter shuts every thread pool down first (``asyncio.to_thread``
    then fails), and the gateway's last usage-log flush runs in one. Hooks registered with
    ``threading._register_atexit`` run before that shutdown, newest first; it is private, hence the
    fallback. Held weakly, so that an app closed and dropped early (tests) is not kept alive.
    """
    ref = weakref.ref(runtime)

    def close() -> None:
        alive = ref()
        if alive is not None:
            alive.close()

    register: Callable[[Callable[[], None]], object] = getattr(threading, "_register_atexit", atexit.register)
    register(close)


def _stop_loop(loop: LoopThread) -> None:
    # Join the worker threads the stores use (asyncio.to_thread) before the loop stops, then close the
    # loop so that no "unclosed event loop" warning is left for the garbage collector.
    with suppress(Exception):
        loop.run(loop.loop.shutdown_default_executor(), timeout=_SHUTDOWN_TIMEOUT)
    loop.stop()
    with suppress(RuntimeError):  # still running: the thread did not stop in time; leave it to exit
        loop.loop.close()
