"""Processes for the benchmark: servers on free loopback ports, CPU pinning, CPU accounting.

Every server is started by :func:`serving`, a context manager that waits until it answers and always stops
it (terminate, then kill) on the way out, also when the run fails or is interrupted.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Server:
    """A started server: its process and where it listens."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def source_env(src: Path | None) -> dict[str, str] | None:
    """The environment that makes ``python -m bifrost_asgi`` run the package in ``src`` (an extracted
    baseline); None: the installed tree. PYTHONSAFEPATH: ``python -m`` would otherwise put the working
    directory (the repository, when a bench runs from there) ahead of PYTHONPATH, and the "baseline"
    would quietly be the current tree."""
    if src is None:
        return None
    return {**os.environ, "PYTHONPATH": str(src), "PYTHONSAFEPATH": "1"}


def pinned(cpus: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child to ``cpus`` (None: leave scheduling to the kernel)."""
    if not cpus:
        return None
    chosen = set(cpus)
    return lambda: os.sched_setaffinity(0, chosen)


def _wait_ready(name: str, proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with status {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer {url} within {timeout:.0f}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process we started, by its own handle: SIGTERM, then SIGKILL after 5 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextmanager
def serving(
    name: str,
    argv: Sequence[str],
    port: int,
    log_dir: Path,
    cpus: set[int] | None = None,
    env: dict[str, str] | None = None,
    health: str = "/health",
    startup_timeout: float = 30.0,
) -> Iterator[Server]:
    """Start ``argv`` (which must listen on ``port`` and answer ``GET {health}``); stop it on exit."""
    log = (log_dir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        list(argv),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=pinned(cpus),
        start_new_session=True,
    )
    try:
        _wait_ready(name, proc, f"http://{LOOPBACK}:{port}{health}", timeout=startup_timeout)
        yield Server(name, proc, port)
    finally:
        stop(proc)
        log.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """CPU seconds used so far: by the machine, by our finished load generators, by chosen processes."""

    wall: float
    machine: float
    children: float
    procs: tuple[float, ...]

    @classmethod
    def take(cls, pids: Sequence[int]) -> CpuSnapshot:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, _ = _busy_ticks()
        own = tuple(cpu_seconds(pid) for pid in pids)
        return cls(time.monotonic(), busy / _CLOCK_TICKS, kids.ru_utime + kids.ru_stime, own)


@dataclass(frozen=True, slots=True)
class CpuUse:
    """What happened between two snapshots: ``procs[0]`` is the measured server."""

    wall: float
    procs: tuple[float, ...]
    interference: float  # CPUs' worth of work by processes that are not part of the benchmark

    @classmethod
    def between(cls, a: CpuSnapshot, b: CpuSnapshot) -> CpuUse:
        procs = tuple(y - x for x, y in zip(a.procs, b.procs, strict=True))
        ours = sum(procs) + (b.children - a.children)
        wall = b.wall - a.wall
        other = max(0.0, (b.machine - a.machine) - ours)
        return cls(wall, procs, other / wall if wall > 0 else 0.0)


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) ticks of the whole machine. Busy is user + nice + system + steal: interrupt and
    softirq time is left out because on loopback it is mostly the benchmark's own network traffic."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    busy = user + nice + system + steal
    return busy, busy + idle + iowait + irq + softirq


def background_load(interval: float = 0.5) -> float:
    """How many CPUs were busy during ``interval`` (call it while the benchmark itself is idle)."""
    busy0, total0 = _busy_ticks()
    time.sleep(interval)
    busy1, total1 = _busy_ticks()
    if total1 == total0:
        return 0.0
    return (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1)


def wait_for_quiet(limit: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until other work on the machine uses under ``limit`` CPUs; return it."""
    deadline = time.monotonic() + max_wait
    load = background_load()
    while load > limit and time.monotonic() < deadline:
        time.sleep(1.0)
        load = background_load()
    return load
