"""Helpers for the servers that live tests start as child processes."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from multiprocessing.queues import Queue
from typing import Any, TypeVar

__all__ = ["die_with_test_run", "report_to", "stop_process_group"]

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1


def die_with_test_run() -> None:
    """``preexec_fn`` for a test's server: the kernel sends it SIGTERM when the test run itself dies.

    A killed or timed-out pytest never runs its fixtures' teardown; without this its gunicorn and
    uvicorn children kept serving (and using CPU) long after, on a developer's machine and in CI.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started with ``start_new_session=True`` and every worker it forked: SIGTERM to the
    group, SIGKILL after 15 s."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def report_to(results: Queue[T | str], main: Callable[[], Coroutine[Any, Any, T]]) -> None:
    """In a child process of a test: run ``main()`` and put its result on ``results``, or the repr of what
    it raised, so the test sees the failure instead of the child dying silently."""
    try:
        results.put(asyncio.run(main()))
    except BaseException as exc:
        results.put(repr(exc))
