"""Loaded by bench/bytecodes.py's servers (this folder is put on their PYTHONPATH): on SIGUSR2, start
counting every bytecode the main thread (the event loop) executes, by function; on the next SIGUSR2, stop
and write the counts to $BENCH_BYTECODES_OUT as JSON ``[[file, first line, name], count]`` rows."""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
from types import FrameType
from typing import Any

_OUT = os.environ.get("BENCH_BYTECODES_OUT")
_counts: collections.Counter[tuple[str, int, str]] = collections.Counter()
_on = False


def _opcodes(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "opcode":
        code = frame.f_code
        _counts[(code.co_filename, code.co_firstlineno, code.co_name)] += 1
    return _opcodes


def _each_frame(frame: FrameType, event: str, arg: Any) -> Any:
    frame.f_trace_opcodes = True
    return _opcodes


def _toggle(signum: int, frame: FrameType | None) -> None:
    global _on
    if not _on:
        _counts.clear()
        _on = True
        sys.settrace(_each_frame)  # this thread's frames from now on: the loop's callbacks and tasks
        return
    sys.settrace(None)
    _on = False
    assert _OUT is not None
    with open(_OUT, "w") as f:
        json.dump([[list(k), v] for k, v in _counts.items()], f)


if _OUT:
    signal.signal(signal.SIGUSR2, _toggle)
