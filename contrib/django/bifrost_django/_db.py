"""How the gateway's async code reaches the ORM: `sync_to_async` on a small pool of our own threads.

The gateway's work outlives the request that started it (a log writer flushing in the background, a
stream settling after the response ended), so it cannot use Django's per-request thread. Each call is
a unit of work, like a request: stale or broken connections are closed before and after it, exactly
as Django does around requests (and as channels' ``database_sync_to_async`` does), so ``CONN_MAX_AGE``
and ``CONN_HEALTH_CHECKS`` apply to these threads too.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import close_old_connections, connections, models, router, transaction
from django.utils import timezone

from .conf import conf

__all__ = ["run", "to_datetime", "to_timestamp", "user_pk", "write_transaction"]

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _executor() -> ThreadPoolExecutor:
    # One pool per process: a pool inherited through fork() has no threads in the child.
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(conf.DB_THREADS, thread_name_prefix="bifrost-db"))
        return _pool[1]


def _unit_of_work(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def run(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``await run(fn, *args)``: ``fn(*args)`` on a database thread."""
    call = sync_to_async(_unit_of_work, thread_sensitive=False, executor=_executor())
    result: T = await call(fn, *args, **kwargs)
    return result


@contextlib.contextmanager
def write_transaction(model: type[models.Model]) -> Iterator[str]:
    """``transaction.atomic()`` on ``model``'s database (its alias is yielded), holding the write lock from
    its first statement on SQLite, whatever the site's ``transaction_mode``.

    A default (deferred) SQLite transaction reads under a shared lock, and its first write then fails at
    once with "database is locked" if another connection wrote meanwhile: the busy timeout cannot help
    that upgrade. A first statement that writes (and changes no row) makes the transaction wait for the
    lock up front, within the timeout, as ``BEGIN IMMEDIATE`` does, so concurrent admissions queue
    instead of failing on a fresh project's settings.
    """
    alias = router.db_for_write(model)
    with transaction.atomic(using=alias):
        connection = connections[alias]
        if connection.vendor == "sqlite":
            table = connection.ops.quote_name(model._meta.db_table)
            with connection.cursor() as cursor:
                # No row matches, but SQLite starts the write transaction for the statement all the same.
                cursor.execute(f"UPDATE {table} SET rowid = rowid WHERE 0")
        yield alias


def to_datetime(seconds: float | None) -> datetime | None:
    """Unix seconds (the core's times) as the datetime the database expects under ``USE_TZ``."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment if settings.USE_TZ else timezone.make_naive(moment)


def to_timestamp(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if timezone.is_aware(moment) else timezone.make_aware(moment)).timestamp()


def user_pk(owner: str) -> Any | None:
    """The user primary key an owner id names (the core keeps it as a string), or None if it cannot be one."""
    try:
        pk_field = get_user_model()._meta.pk
        return owner if pk_field is None else pk_field.to_python(owner)
    except ValidationError:
        return None
