"""Prometheus metrics with Bifrost's names and labels, cheap enough to leave on.

    a request   -> its figures as plain values, noted (`defer`)
    every 128   -> added to their label sets' precomputed cells in one go (`settle`): dict lookups, additions
    GET /metrics -> this process's cells + every other worker's last snapshot, as Prometheus text

Why a batch: added one request at a time, at the end of each, the figures cost ~3x as much CPU as in
a batch (the code and cells were out of the CPU's caches by then; BENCHMARKS.md). Every reader settles
first (a scrape, a worker's snapshot), so nothing noted is ever missing from an answer.

Why not prometheus_client's metric objects: in its multiprocess mode every ``inc``/``observe`` is a
locked write to a memory-mapped file (2-4 µs each, ~30 µs for the dozen a request makes: 6% of a
gateway request's CPU, BENCHMARKS.md). Here a request only adds to plain lists in its own process;
every ``metrics_flush_seconds`` a worker writes its totals to ``<metrics_dir>/bifrost-metrics-<pid>.json``
(the directory prometheus_client's multiprocess mode uses, ``PROMETHEUS_MULTIPROC_DIR``), and the worker
answering a scrape adds them up, so the answer is the same whichever worker Prometheus reaches, at most
one flush interval behind for the others. A worker that exits leaves its file, so counters never go
backwards (as in prometheus_client's multiprocess mode; empty the directory when the server restarts).
The exposition itself is prometheus_client's (`generate_latest` over a collector of metric families).
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from bifrost_asgi.errors import BifrostError

__all__ = [
    "BASE_LABELS",
    "HTTP_LABELS",
    "Metrics",
    "OTHER",
    "UpstreamCells",
    "error_kind",
]

log = logging.getLogger("bifrost_asgi")

# Bifrost's labels (its telemetry plugin's base labels, for the ones a gateway in a web app has).
HTTP_LABELS = ("path", "method", "status")
BASE_LABELS = (
    "provider", "model", "method", "virtual_key_id", "virtual_key_name", "selected_key_id",
    "selected_key_name", "fallback_index", "team_id", "team_name", "customer_id", "customer_name",
)  # fmt: skip
# The value a bounded label reports once it has seen ``max_label_values`` distinct values.
OTHER = "_other"
_MAX_VALUE_CHARS = 128

# Bifrost's buckets: upstream latency runs to reasoning-model outliers; sizes 100 B to 1 GB.
_LATENCY = (
    .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 45, 60, 90, 120, 180, 300, 600, 900,
)  # fmt: skip
_SIZES = tuple(100.0 * 10**i for i in range(8))
_BATCH = 128  # requests noted before their figures are added to the cells
# Overhead: tens of microseconds to seconds (a slow store, a huge body).
_OVERHEAD = (
    .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30,
)  # fmt: skip


@dataclass(frozen=True)
class _Family:
    name: str
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] | None = None  # None: a counter

    def cell(self) -> list[float]:
        """A counter is ``[value]``; a histogram is one count per bucket (the last is +Inf), then the sum."""
        return [0.0] if self.buckets is None else [0.0] * (len(self.buckets) + 2)


def _families(custom: tuple[str, ...]) -> dict[str, _Family]:
    http = HTTP_LABELS + custom
    base = BASE_LABELS + custom
    fams = [
        _Family("http_requests_total", "Total number of HTTP requests.", http),
        _Family("http_request_duration_seconds", "Duration of HTTP requests.", http, _LATENCY),
        _Family("http_request_size_bytes", "Size of HTTP requests.", http, _SIZES),
        _Family("http_response_size_bytes", "Size of HTTP responses.", http, _SIZES),
        _Family("bifrost_upstream_requests_total", "Requests forwarded to upstream providers.", base),
        _Family("bifrost_success_requests_total", "Successful requests to upstream providers.", base),
        _Family(
            "bifrost_error_requests_total",
            "Failed requests, by status_code and normalized error_type.",
            BASE_LABELS + ("status_code", "error_type") + custom,
        ),
        _Family(
            "bifrost_upstream_latency_seconds",
            "Latency of requests forwarded to upstream providers.",
            BASE_LABELS + ("is_success",) + custom,
            _LATENCY,
        ),
        _Family("bifrost_input_tokens_total", "Input tokens sent to upstream providers.", base),
        _Family("bifrost_output_tokens_total", "Output tokens received from upstream providers.", base),
        _Family("bifrost_cost_total", "Cost in USD of requests to upstream providers.", base),
        _Family(
            "bifrost_cache_hits_total",
            "Cache hits by type (direct/semantic).",
            BASE_LABELS + ("cache_type",) + custom,
        ),
        _Family(
            "bifrost_gateway_overhead_seconds",
            "Time a request spent in the gateway, minus the time it waited on upstream providers.",
            base,
            _OVERHEAD,
        ),
    ]
    return {f.name: f for f in fams}


class HTTPCells:
    """One HTTP label set's cells: found once per distinct label set, then only added to."""

    __slots__ = ("requests", "duration", "request_size", "response_size")

    def __init__(self, m: Metrics, values: tuple[str, ...]) -> None:
        self.requests = m.cell("http_requests_total", values)
        self.duration = m.cell("http_request_duration_seconds", values)
        self.request_size = m.cell("http_request_size_bytes", values)
        self.response_size = m.cell("http_response_size_bytes", values)


class UpstreamCells:
    """One base label set's cells (the per-request bifrost_* metrics)."""

    __slots__ = (
        "upstream", "success", "latency_ok", "latency_failed", "input_tokens", "output_tokens", "cost",
        "overhead",
    )  # fmt: skip

    def __init__(self, m: Metrics, values: tuple[str, ...], custom: tuple[str, ...]) -> None:
        base = values + custom
        self.upstream = m.cell("bifrost_upstream_requests_total", base)
        self.success = m.cell("bifrost_success_requests_total", base)
        self.latency_ok = m.cell("bifrost_upstream_latency_seconds", values + ("true",) + custom)
        self.latency_failed = m.cell("bifrost_upstream_latency_seconds", values + ("false",) + custom)
        self.input_tokens = m.cell("bifrost_input_tokens_total", base)
        self.output_tokens = m.cell("bifrost_output_tokens_total", base)
        self.cost = m.cell("bifrost_cost_total", base)
        self.overhead = m.cell("bifrost_gateway_overhead_seconds", base)


def observe(cell: list[float], buckets: tuple[float, ...], value: float) -> None:
    cell[bisect_left(buckets, value)] += 1
    cell[-1] += value


class Metrics:
    """This process's figures, and the files other workers leave (see the module docstring).

    >>> metrics = Metrics(custom_labels=("team",), directory="/run/bifrost-metrics")
    >>> await metrics.exposition()   # Prometheus text, every worker's figures added up
    """

    LATENCY = _LATENCY
    SIZES = _SIZES
    OVERHEAD = _OVERHEAD

    def __init__(
        self,
        *,
        custom_labels: Sequence[str] = (),
        directory: str | None = None,
        flush_seconds: float = 1.0,
        max_label_values: int = 100,
        apply: Callable[[Metrics, Any], None] | None = None,
    ) -> None:
        self.custom_labels = tuple(custom_labels)
        self.families = _families(self.custom_labels)
        self.series: dict[str, dict[tuple[str, ...], list[float]]] = {name: {} for name in self.families}
        self.http_cells: dict[tuple[str, ...], HTTPCells] = {}
        self.upstream_cells: dict[tuple[str, ...], UpstreamCells] = {}
        self.directory = Path(directory) if directory else None
        self.flush_seconds = flush_seconds
        self._max_values = max_label_values
        self._seen: dict[str, set[str]] = {}
        self._apply = apply  # adds one request's deferred figures to the cells
        self._pending: list[Any] = []
        self._dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Future[None] | None = None
        _LIVE.add(self)

    # -- recording --------------------------------------------------------------------------------------

    def defer(self, facts: Any) -> None:
        """Note one request's figures; they are added with the next batch (or the next reader)."""
        pending = self._pending
        pending.append(facts)
        if len(pending) >= _BATCH:
            self.settle()
        self.touched()

    def settle(self) -> None:
        """Add every noted request's figures to the cells."""
        pending, self._pending = self._pending, []
        apply = self._apply
        if apply is not None:
            for facts in pending:
                try:
                    apply(self, facts)
                except Exception:  # a bug of ours costs one request's figures, never a request or a batch
                    log.exception("metrics: could not add a request's figures")

    def cell(self, family: str, values: tuple[str, ...]) -> list[float]:
        series = self.series[family]
        found = series.get(values)
        if found is None:
            found = series[values] = self.families[family].cell()
        return found

    def http(self, values: tuple[str, ...]) -> HTTPCells:
        cells = self.http_cells.get(values)
        if cells is None:
            cells = self.http_cells[values] = HTTPCells(self, values)
        return cells

    def upstream(self, values: tuple[str, ...], custom: tuple[str, ...]) -> UpstreamCells:
        key = values + custom
        cells = self.upstream_cells.get(key)
        if cells is None:
            cells = self.upstream_cells[key] = UpstreamCells(self, values, custom)
        return cells

    def bounded(self, label: str, value: str) -> str:
        """``value`` for a label whose values come from clients (a model name, a custom label): at most
        `max_label_values` distinct ones per label and process, each at most 128 characters."""
        value = value[:_MAX_VALUE_CHARS]
        seen = self._seen.get(label)
        if seen is None:
            seen = self._seen[label] = set()
        if value in seen:
            return value
        if len(seen) >= self._max_values:
            return OTHER
        seen.add(value)
        return value

    def touched(self) -> None:
        """Note new figures; with a shared directory, schedule this worker's next snapshot."""
        if self._dirty or self.directory is None:
            return
        self._dirty = True
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_seconds, self._flush_soon)

    # -- snapshots for other workers --------------------------------------------------------------------

    def _flush_soon(self) -> None:
        self._timer = None
        if self._writing is None or self._writing.done():
            self._writing = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        """Write this worker's totals for the others (in a thread: the loop never waits on a disk)."""
        if self.directory is None or not self._dirty:
            return
        self._dirty = False
        self.settle()
        data = self._snapshot()
        try:
            await asyncio.get_running_loop().run_in_executor(None, _write_atomically, self._path(), data)
        except OSError:
            log.warning("could not write metrics to %s", self.directory, exc_info=True)

    def _path(self) -> Path:
        assert self.directory is not None
        return self.directory / f"bifrost-metrics-{os.getpid()}.json"

    def _snapshot(self) -> bytes:
        return orjson.dumps({name: [[*k, *v] for k, v in rows.items()] for name, rows in self.series.items()})

    def _reset_after_fork(self) -> None:
        """A forked worker starts from zero: the parent's figures are the parent's file's."""
        self.series = {name: {} for name in self.families}
        self.http_cells.clear()
        self.upstream_cells.clear()
        self._pending = []
        self._dirty, self._timer, self._writing = False, None, None

    # -- the scrape -------------------------------------------------------------------------------------

    def merged(self) -> dict[str, dict[tuple[str, ...], list[float]]]:
        """Every worker's figures added up: this process's live ones and the others' last snapshots."""
        return self._with_peers(self._own())

    def _own(self) -> dict[str, dict[tuple[str, ...], list[float]]]:
        self.settle()
        return {name: {k: list(v) for k, v in rows.items()} for name, rows in self.series.items()}

    def _with_peers(
        self, total: dict[str, dict[tuple[str, ...], list[float]]]
    ) -> dict[str, dict[tuple[str, ...], list[float]]]:
        for path in self._peer_files():
            try:
                peer = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue  # a worker replacing its file right now, or one from another version: skip it
            self._add_peer(total, peer)
        return total

    def _peer_files(self) -> Iterator[Path]:
        if self.directory is None:
            return
        own = self._path().name
        for path in self.directory.glob("bifrost-metrics-*.json"):
            if path.name != own:
                yield path

    def _add_peer(self, total: dict[str, dict[tuple[str, ...], list[float]]], peer: Any) -> None:
        if not isinstance(peer, dict):
            return
        for name, rows in peer.items():
            family = self.families.get(name)
            if family is None or not isinstance(rows, list):
                continue  # a metric another configuration has and this one does not
            width, size = len(family.labels), len(family.cell())
            into = total[name]
            for row in rows:
                if not isinstance(row, list) or len(row) != width + size:
                    continue
                key = tuple(str(v) for v in row[:width])
                cell = into.setdefault(key, family.cell())
                for i, v in enumerate(row[width:]):
                    cell[i] += float(v)

    async def exposition(self) -> bytes:
        """The Prometheus text for a scrape. This process's figures are copied on the loop; the other
        workers' files are read, and the text built, in a thread."""
        own = self._own()
        return await asyncio.to_thread(self._text, own)

    def _text(self, own: dict[str, dict[tuple[str, ...], list[float]]]) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self.families, self._with_peers(own)))
        return generate_latest(registry)


class _Collector(Collector):
    def __init__(
        self, families: dict[str, _Family], merged: dict[str, dict[tuple[str, ...], list[float]]]
    ) -> None:
        self._families = families
        self._merged = merged

    def collect(self) -> Iterator[Metric]:
        for name, family in self._families.items():
            yield _metric_family(family, self._merged[name])


def _metric_family(family: _Family, rows: dict[tuple[str, ...], list[float]]) -> Metric:
    if family.buckets is None:
        counter = CounterMetricFamily(family.name, family.help, labels=family.labels)
        for values, cell in sorted(rows.items()):
            if cell[0]:  # label sets are made whole at once; the ones never counted are not shown
                counter.add_metric(values, cell[0])
        return counter
    histogram = HistogramMetricFamily(family.name, family.help, labels=family.labels)
    bounds = [*(_le(b) for b in family.buckets), "+Inf"]
    for values, cell in sorted(rows.items()):
        if not any(cell[:-1]):
            continue
        cumulative, running = [], 0.0
        for bound, count in zip(bounds, cell[:-1], strict=True):
            running += count
            cumulative.append((bound, running))
        histogram.add_metric(values, cumulative, cell[-1])
    return histogram


def _le(bound: float) -> str:
    return repr(float(bound))


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a reader sees the old file or the new one, never half of one


# A forked worker must not report its parent's figures as its own (gunicorn --preload).
_LIVE: weakref.WeakSet[Metrics] = weakref.WeakSet()


def _after_fork() -> None:
    for metrics in list(_LIVE):
        metrics._reset_after_fork()


os.register_at_fork(after_in_child=_after_fork)


# -- Bifrost's normalized error_type vocabulary (core/schemas/errors.go) ----------------------------------

_BY_TYPE = {
    "model_blocked": "policy_model_blocked",
    "provider_blocked": "policy_provider_blocked",
    "budget_exceeded": "policy_budget_exceeded",
    "rate_limited": "policy_rate_limited",
    "request_limited": "policy_rate_limited",
    "token_limited": "policy_rate_limited",
    "unauthorized": "policy_access_denied",
    "forbidden": "policy_access_denied",
    "csrf_failed": "policy_access_denied",
    "invalid_token": "policy_access_denied",
    "request_cancelled": "caller_cancelled",
    "invalid_request_error": "caller_invalid_request",
    "request_too_large": "caller_invalid_request",
    "unsupported_operation": "caller_invalid_request",
    "request_timed_out": "provider_timeout",
    "provider_connection_failed": "provider_connection_failed",
    "upstream_credentials_exhausted": "provider_credentials_exhausted",
    "provider_bad_response": "provider_server_error",
    "request_dropped": "bifrost_dropped",
    "bifrost_internal": "bifrost_internal",
    "configuration_error": "bifrost_internal",
    "governance_store_unavailable": "bifrost_internal",
}
_BY_STATUS = {401: "provider_auth_failed", 403: "provider_auth_failed", 402: "provider_billing",
              404: "caller_model_not_available", 429: "provider_rate_limited", 503: "provider_overloaded",
              529: "provider_overloaded"}  # fmt: skip


def error_kind(err: BifrostError, *, from_upstream: bool = False) -> str:
    """The error's class in Bifrost's closed vocabulary (caller_*, policy_*, provider_*, bifrost_*,
    _OTHER), so alerts can tell whose fault a failure is without enumerating status codes.

    An upstream's answer is classed by its status first: OpenAI calls a rejected key an
    ``invalid_request_error``, but a 401 from a provider is the provider refusing our credentials."""
    status = err.status_code
    if from_upstream and status in _BY_STATUS:
        return _BY_STATUS[status]
    for name in (err.top_type, err.error_type):
        if name is not None and name in _BY_TYPE:
            return _BY_TYPE[name]
        if name is not None and name.startswith("virtual_key"):
            return "policy_access_denied"
    if from_upstream:
        return "provider_server_error" if status >= 500 else "caller_invalid_request"
    return "bifrost_internal" if status >= 500 else "_OTHER"
