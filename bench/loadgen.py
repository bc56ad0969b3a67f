"""A lean HTTP/1.1 load generator: keep-alive connections, one fixed POST, per-request timings.

Used for what wrk cannot measure (time to first byte of a stream) and as the whole load generator when
wrk is not installed. Each connection sends the request, reads the status line and headers, then the
body (Content-Length or chunked); the time to the first non-empty body chunk is the TTFB.

    python bench/loadgen.py --url http://127.0.0.1:9001/v1/chat/completions --body-file body.json \
        --concurrency 1 --duration 5 --warmup 1

Prints one JSON object: requests, errors, duration, rps, and latency/TTFB percentiles in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


@dataclass(slots=True)
class Tally:
    """What the connections record while the clock runs."""

    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    errors: int = 0


class BadResponse(Exception):
    """A non-2xx status or a response we cannot frame."""


def build_request(url: str, body: bytes, extra: str = "") -> tuple[str, int, bytes]:
    """The request's bytes; ``extra`` is more header lines (each ending in CRLF)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nAuthorization: Bearer sk-bench\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return host, port, head.encode() + body


class Requests:
    """The same request every time, or with ``vary`` naming a header whose value changes per request
    (a cache key: every request a cache miss)."""

    def __init__(self, url: str, body: bytes, vary: str | None) -> None:
        self.url, self.body, self.vary = url, body, vary
        self.host, self.port, self.fixed = build_request(url, body)
        self.count = 0
        self.run = uuid.uuid4().hex  # values unique to this run: an earlier run's would be cache hits

    def next(self) -> bytes:
        if self.vary is None:
            return self.fixed
        self.count += 1
        return build_request(self.url, self.body, f"{self.vary}: bench-{self.run}-{self.count}\r\n")[2]


async def read_head(reader: asyncio.StreamReader) -> dict[bytes, bytes]:
    raw = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = raw[:-4].split(b"\r\n")
    if not status_line.split(b" ", 2)[1].startswith(b"2"):
        raise BadResponse(status_line.decode("latin-1"))
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return headers


async def read_body(reader: asyncio.StreamReader, headers: dict[bytes, bytes]) -> float | None:
    """Consume the body; return when its first non-empty chunk arrived (perf_counter), or None."""
    length = headers.get(b"content-length")
    if length is not None:
        await reader.readexactly(int(length))
        return time.perf_counter()
    if headers.get(b"transfer-encoding", b"").lower() != b"chunked":
        raise BadResponse("neither content-length nor chunked")
    first: float | None = None
    while True:
        size = int((await reader.readline()).split(b";", 1)[0], 16)
        if size == 0:
            await reader.readline()  # the blank line after the last chunk (no trailers expected)
            return first
        await reader.readexactly(size + 2)
        if first is None:
            first = time.perf_counter()


async def connection(requests: Requests, start: float, stop: float, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection(requests.host, requests.port)
    try:
        while (t0 := time.perf_counter()) < stop:
            writer.write(requests.next())
            try:
                first = await read_body(reader, await read_head(reader))
            except BadResponse:
                tally.errors += 1
                continue
            t1 = time.perf_counter()
            if t0 >= start:  # requests begun during the warm-up are not recorded
                tally.latencies.append(t1 - t0)
                tally.ttfbs.append((first or t1) - t0)
    finally:
        writer.close()


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile, in microseconds."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank] * 1e6


def summarise(tally: Tally, duration: float) -> dict[str, object]:
    def stats(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        return {
            "p50": percentile(values, 50),
            "p90": percentile(values, 90),
            "p99": percentile(values, 99),
            "max": max(values) * 1e6,
            "mean": statistics.fmean(values) * 1e6,
        }

    return {
        "requests": len(tally.latencies),
        "errors": tally.errors,
        "duration_s": duration,
        "rps": len(tally.latencies) / duration,
        "latency_us": stats(tally.latencies),
        "ttfb_us": stats(tally.ttfbs),
    }


async def run(
    url: str, body: bytes, concurrency: int, duration: float, warmup: float, vary: str | None = None
) -> dict[str, object]:
    requests = Requests(url, body, vary)
    tally = Tally()
    start = time.perf_counter() + warmup
    stop = start + duration
    await asyncio.gather(*(connection(requests, start, stop, tally) for _ in range(concurrency)))
    return summarise(tally, duration)


def _runner() -> Callable[[Coroutine[Any, Any, T]], T]:
    """uvloop's runner when installed: the client's own overhead is then as small as it gets."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--body-file", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--vary-header", help="send this header with another value on every request")
    args = parser.parse_args()
    with open(args.body_file, "rb") as f:
        body = f.read()
    result = _runner()(run(args.url, body, args.concurrency, args.duration, args.warmup, args.vary_header))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
