"""Helpers for the servers that live tests start as child processes."""

from __future__ import annotations

import ctypes
import signal
import sys

__all__ = ["die_with_test_run"]

_PR_SET_PDEATHSIG = 1


def die_with_test_run() -> None:
    """``preexec_fn`` for a test's server: the kernel sends it SIGTERM when the test run itself dies.

    A killed or timed-out pytest never runs its fixtures' teardown; without this its gunicorn and
    uvicorn children kept serving (and using CPU) long after, on a developer's machine and in CI.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
