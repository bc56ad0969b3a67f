"""What the journey calls to be observed: metrics, spans and hooks, from three small hooks.

    journey.handle   probe = telemetry.begin(scope)          the request span opens and becomes current
    attempts._attempt executor = telemetry.watch(index, ...)  each upstream call: a child span (retry n),
                                                              traceparent upstream (traced requests only)
                      probe.attempted(index, ..., seconds)    each target's time waiting, and its failure
    journey          probe.answer(status, size)              what it sends (the http_* metrics)
    journey.handle   probe.end(req, served, error)           the request's figures noted for the metrics
                                                              (added in batches: `Metrics.defer`), span
                                                              attributes, budget alerts; the span ends
    app              telemetry.http_app(...)                  http_* metrics around every gateway request
                                                              (a journey's own probe records them for
                                                              the endpoints the app reaches directly)

The probe of the request being served travels in a context variable (as OpenTelemetry's current span
does), so the attempt loop finds it without a field on every request. When metrics, tracing and budget
alerts are all off, ``begin`` answers None and nothing else runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.observability.hooks import BudgetWatch, Hooks
from bifrost_asgi.observability.metrics import Metrics, UpstreamCells, error_kind, observe
from bifrost_asgi.observability.tracing import (
    Tracing,
    finish_reasons,
    operation_name,
    propagating,
    stop_propagating,
)
from bifrost_asgi.providers.base import Call, ChunkStream, Provider, Reply

if TYPE_CHECKING:
    from bifrost_asgi.config import GatewayConfig, KeyConfig
    from bifrost_asgi.pipeline.request import Request, Served
    from bifrost_asgi.types import Scope

__all__ = ["Probe", "Telemetry"]

_PROBE: ContextVar[Probe | None] = ContextVar("bifrost_asgi.probe", default=None)
_DIMS_KEY = "bifrost.dims"  # the request's custom label values, read from its headers once
_DIM_PREFIX = b"x-bf-dim-"
_PROM_PREFIX = b"x-bf-prom-"
_HTTP_SEEN = "bifrost.http_metrics"  # in the scope: HTTPMetrics records this request's http_* metrics
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class Telemetry:
    """One gateway's metrics (None when off), tracing (None when off) and hooks."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        hooks: Hooks | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        tc = config.telemetry
        self.custom = config.client.prometheus_labels
        self.metrics: Metrics | None = None
        if tc.metrics:
            self.metrics = Metrics(
                custom_labels=self.custom,
                directory=tc.metrics_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None,
                flush_seconds=tc.metrics_flush_seconds,
                max_label_values=tc.max_label_values,
                apply=lambda metrics, facts: _apply(self, metrics, facts),
            )
        self.tracing = Tracing(tracer_provider) if tc.tracing else None
        self.hooks = hooks or Hooks()
        self.budgets: BudgetWatch | None = None  # set by the gateway when governance counts budgets
        # x-bf-dim-<label> wins over the older x-bf-prom-<label> (Bifrost's rule).
        self._dim_headers = {_DIM_PREFIX + n.encode(): (i, True) for i, n in enumerate(self.custom)}
        self._dim_headers |= {_PROM_PREFIX + n.encode(): (i, False) for i, n in enumerate(self.custom)}
        self.template: Callable[[Scope], str] = _unmatched  # the app's route template (http_app sets it)

    def begin(self, scope: Scope) -> Probe | None:
        tracer = self.tracing.tracer() if self.tracing is not None else None
        if self.metrics is None and tracer is None and self.budgets is None:
            return None
        return Probe(self, scope, tracer)

    def watch(self, index: int, executor: Provider) -> Provider:
        """``executor`` as the attempt loop should call it for target ``index``: itself when this request
        has no span, else wrapped to give each call a span (the loop times the calls itself)."""
        probe = _PROBE.get()
        if probe is None or probe.span is None:
            return executor
        watched = WatchedProvider(probe, executor, index)
        probe.targets.append(watched)
        return watched

    def dims(self, scope: Scope) -> tuple[str, ...]:
        """The request's custom label values, from its x-bf-dim-* / x-bf-prom-* headers (bounded)."""
        if not self.custom:
            return ()
        cached: tuple[str, ...] | None = scope.get(_DIMS_KEY)
        if cached is not None:
            return cached
        values = [""] * len(self.custom)
        from_dim = [False] * len(self.custom)
        for name, value in scope["headers"]:
            found = self._dim_headers.get(name)
            if found is not None and not from_dim[found[0]]:
                values[found[0]] = value.decode("latin-1")
                from_dim[found[0]] = found[1]
        metrics = self.metrics
        if metrics is not None:
            values = [metrics.bounded(n, v) if v else v for n, v in zip(self.custom, values, strict=True)]
        dims = scope[_DIMS_KEY] = tuple(values)
        return dims

    def http_app(self, app: ASGIApp, template: Callable[[Scope], str]) -> ASGIApp | None:
        """``app`` with the http_* metrics around it (None when metrics are off); ``template`` names the
        route a request matched (a bounded ``path`` label)."""
        if self.metrics is None:
            return None
        self.template = template
        return HTTPMetrics(self.metrics, app)


def _unmatched(scope: Scope) -> str:
    return "unmatched"


class Probe:
    """One request under observation: its span, the time it waited on upstreams, the attempts that
    failed, and (for its http_* metrics) its answer's status and sizes."""

    __slots__ = ("telemetry", "scope", "started", "span", "wait", "latency", "failed", "targets", "_token",
                 "_context", "http", "status", "received", "sent")  # fmt: skip

    def __init__(self, telemetry: Telemetry, scope: Scope, tracer: Tracer | None) -> None:
        self.telemetry = telemetry
        self.scope = scope
        self.started = time.perf_counter()
        self.wait = 0.0  # seconds spent waiting on upstreams (attempts with their retries, stream reads)
        self.latency = 0.0  # seconds the attempt that answered took (its retries included)
        self.failed: list[tuple[int, str, str, float, BifrostError]] | None = None  # attempts that failed
        self.targets: list[WatchedProvider] = []  # the traced targets (only when the request has a span)
        # This request's http_* metrics, when no HTTPMetrics wrapper around the app records them: the
        # journey reports its body's size and its answer (`answer`).
        self.http = telemetry.metrics is not None and _HTTP_SEEN not in scope
        self.status = 500  # an answer never started: the server answers 500 (as HTTPMetrics counts it)
        self.received = 0
        self.sent = 0
        self.span: Span | None = None
        self._context: Token[Context] | None = None
        if tracer is not None:
            # A child of whatever span is current: the host's request span when the host is traced.
            self.span = tracer.start_span("bifrost.request", kind=SpanKind.INTERNAL)
            self._context = otel_context.attach(trace.set_span_in_context(self.span))
        self._token: Token[Probe | None] = _PROBE.set(self)

    def attempted(
        self, index: int, provider: str, model: str, seconds: float, error: BaseException | None
    ) -> None:
        """The attempt loop's report of one target: how long it took (retries and their backoff
        included) and, when it failed with an error of ours, why."""
        self.wait += seconds
        if error is None:
            self.latency = seconds
        elif isinstance(error, BifrostError):
            self._failed(index, provider, model, seconds, error)

    def rejected(self, index: int, provider: str, model: str, error: BifrostError) -> None:
        """Target ``index`` answered, but its answer could not be read: a failed attempt (its time was
        reported by `attempted` already)."""
        self._failed(index, provider, model, self.latency, error)

    def _failed(self, index: int, provider: str, model: str, seconds: float, error: BifrostError) -> None:
        if self.failed is None:
            self.failed = []
        self.failed.append((index, provider, model, seconds, error))

    def answer(self, status: int, size: int) -> None:
        """The journey's report of what it sends (a status, then body bytes: a stream reports each
        batch), for the http_* metrics; reported, not watched, so no wrapper sits on the server's send."""
        self.status = status
        self.sent += size

    def end(self, req: Request | None, served: Served | None, error: BifrostError | None) -> None:
        """Record what the request did, once, after its answer and its log record."""
        _PROBE.reset(self._token)
        try:
            metrics = self.telemetry.metrics
            if metrics is not None:
                metrics.defer(_facts(self, req, served, error))
            budgets = self.telemetry.budgets
            if budgets is not None and req is not None and served is not None and served.ticket is not None:
                key_id = req.vk.id if req.vk is not None else None
                budgets.check([claim.limit for claim in served.ticket.claims], key_id, time.time())
        finally:
            if self.span is not None:
                _end_spans(self, req, served, error)
            if self._context is not None:
                otel_context.detach(self._context)
            # The targets point back at this probe: break the cycle, so a request's objects (its scope,
            # its answer) are freed now by reference counting rather than later by the cycle collector.
            self.targets.clear()
            self.failed = None


class WatchedProvider:
    """A provider as one target of a traced request sees it: each call (the first and each retry) gets a
    CLIENT span that is current while the call is made, so `trace_headers` sends its traceparent."""

    __slots__ = ("inner", "probe", "index", "name", "uses_keys", "calls", "span")

    def __init__(self, probe: Probe, inner: Provider, index: int) -> None:
        self.inner = inner
        self.probe = probe
        self.index = index
        self.name = inner.name
        self.uses_keys = inner.uses_keys
        self.calls = 0
        self.span: Span | None = None

    def models(self) -> list[str]:
        return self.inner.models()

    def send(self, call: Call, key: KeyConfig | None) -> Coroutine[Any, Any, Reply]:
        return self._call(self.inner.send, call, key)

    def open_stream(self, call: Call, key: KeyConfig | None) -> Coroutine[Any, Any, ChunkStream]:
        return self._call(self.inner.open_stream, call, key)

    async def _call(self, method: Callable[[Call, Any], Awaitable[Any]], call: Call, key: Any) -> Any:
        span, token = self._start_span(call, key)
        try:
            result = await method(call, key)
        except BaseException as exc:
            if span is not None:
                _fail_span(span, exc)
                span.end()
            raise
        finally:
            self.calls += 1
            if token is not None:
                otel_context.detach(token[0])
                stop_propagating(token[1])
        self.span = span  # ended with the request, once the answer's usage is known
        return result

    def _start_span(self, call: Call, key: Any) -> tuple[Span | None, tuple[Token[Context], Any] | None]:
        if self.probe.span is None:
            return None, None
        tracer = self.probe.telemetry.tracing.tracer() if self.probe.telemetry.tracing else None
        if tracer is None:
            return None, None
        op = operation_name(call.op.value)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": op,
            "gen_ai.system": self.name,
            "gen_ai.request.model": call.model,
            "bifrost.fallback_index": self.index,
            "bifrost.retry": self.calls,
        }
        if key is not None and key.name:
            attributes["bifrost.provider_key"] = key.name
        span = tracer.start_span(f"{op} {call.model}", kind=SpanKind.CLIENT, attributes=attributes)
        ctx = otel_context.attach(trace.set_span_in_context(span))
        return span, (ctx, propagating(True))


def current_probe() -> Probe | None:
    """The probe of the request being handled in this task, if it is observed."""
    return _PROBE.get()


# -- metrics at the end of a request ---------------------------------------------------------------------
#
# A request only notes its figures (`_facts`, plain values: nothing that holds its body); `Metrics` adds a
# batch of them to its cells at once (`_apply`). Measured in the request, the adding cost several times
# what it costs in a batch: its code and the cells were no longer in the CPU's caches by the time a
# request ended (BENCHMARKS.md, "Prometheus metrics on vs off").

# One failed attempt: (provider, model, index, seconds, status code, error_type); an error answered
# before any attempt is one with no seconds. A served answer: (provider, model, index, selected key,
# cache hit type, seconds, (status, error_type) of a failure after it started or None, input tokens,
# output tokens, cost).
_Failure = tuple[str, str, int, float, int, str]
_Answer = tuple[str, str, int, str | None, str | None, float, tuple[int, str] | None, int, int, float]


def _facts(
    probe: Probe, req: Request | None, served: Served | None, error: BifrostError | None
) -> tuple[Any, ...]:
    """What the metrics need of a finished request: (scope, its (http status, body size in, out) or None
    when an HTTPMetrics wrapper counts them, seconds in the gateway, its (type, virtual key) or None when
    it could not be read, failed attempts, answer or None, refusal or None, overhead seconds)."""
    now = time.perf_counter()
    http = (probe.status, probe.received, probe.sent) if probe.http else None
    if req is None:
        return _http_facts(probe.scope, http, now - probe.started)
    failures: list[_Failure] = []
    if probe.failed is not None:
        for index, provider, model, seconds, err in probe.failed:
            if served is None or index != served.index:
                failures.append(
                    (provider, model, index, seconds, err.status_code, error_kind(err, from_upstream=True))
                )
    answer: _Answer | None = None
    refused: _Failure | None = None
    if served is not None:
        late = served.error
        usage = served.usage
        answer = (
            served.provider, served.model, served.index, served.key_name, served.cache_hit,
            probe.latency,
            None if late is None else (late.status_code, error_kind(late, from_upstream=True)),
            usage.input_tokens if usage is not None else 0, usage.output_tokens if usage is not None else 0,
            served.cost["total_cost"] if served.cost is not None else 0.0,
        )  # fmt: skip
    elif error is not None and (probe.failed is None or all(f[4] is not error for f in probe.failed)):
        # Refused before reaching a provider (authorization, limits, a bad request): an error, no upstream.
        provider = str(error.extra_fields.get("provider") or (req.targets[0][0] if req.targets else ""))
        model = str(error.extra_fields.get("model_requested") or req.model)
        refused = (provider, model, 0, 0.0, error.status_code, error_kind(error))
    overhead = now - probe.started - probe.wait
    request = (req.request_type, req.vk)
    return (probe.scope, http, now - probe.started, request, failures, answer, refused, overhead)


def _http_facts(scope: Scope, http: tuple[int, int, int] | None, seconds: float) -> tuple[Any, ...]:
    """`_facts` of a request that has only its http_* figures (unread, or outside the journey)."""
    return (scope, http, seconds, None, (), None, None, 0.0)


def _apply(telemetry: Telemetry, metrics: Metrics, facts: tuple[Any, ...]) -> None:
    """Add one request's figures (`_facts`) to the cells: run by `Metrics.settle` over a batch."""
    scope, http, seconds, request, failures, answer, refused, overhead = facts
    dims = telemetry.dims(scope)
    if http is not None:
        _add_http(telemetry, metrics, scope, http[0], seconds, http[1], http[2], dims)
    if request is None:
        return
    request_type, vk = request
    last: tuple[str, ...] | None = None  # the labels of the request's outcome, for its overhead
    cells: UpstreamCells | None = None  # their cells, when the answer looked them up
    for provider, model, index, spent, status, kind in failures:
        last = _base(metrics, request_type, vk, provider, model, index, None)
        failed = metrics.upstream(last, dims)
        failed.upstream[0] += 1
        observe(failed.latency_failed, Metrics.LATENCY, spent)
        _count_error(metrics, last, dims, status, kind)
    if refused is not None:
        provider, model, index, _, status, kind = refused
        last = _base(metrics, request_type, vk, provider, model, index, None)
        _count_error(metrics, last, dims, status, kind)
    if answer is not None:
        provider, model, index, key, hit, latency, late, tokens_in, tokens_out, cost = answer
        last = _base(metrics, request_type, vk, provider, model, index, key)
        if hit is not None:  # no upstream call: a hit, by its type
            metrics.cell("bifrost_cache_hits_total", last + (hit,) + dims)[0] += 1
        else:
            cells = metrics.upstream(last, dims)
            cells.upstream[0] += 1
            if late is None:
                cells.success[0] += 1
                observe(cells.latency_ok, Metrics.LATENCY, latency)
            else:
                observe(cells.latency_failed, Metrics.LATENCY, latency)
                _count_error(metrics, last, dims, late[0], late[1])
            cells.input_tokens[0] += tokens_in
            cells.output_tokens[0] += tokens_out
            cells.cost[0] += cost
    if last is not None:
        if cells is None:
            cells = metrics.upstream(last, dims)
        observe(cells.overhead, Metrics.OVERHEAD, max(overhead, 0.0))


def _base(
    metrics: Metrics, request_type: str, vk: Any, provider: str, model: str, index: int, key: str | None
) -> tuple[str, ...]:
    return (
        provider,
        metrics.bounded("model", model),
        request_type,
        vk.id if vk is not None else "",
        vk.name if vk is not None else "",
        key or "",
        key or "",
        str(index),
        (vk.team_id or "") if vk is not None else "",
        "",
        (vk.customer_id or "") if vk is not None else "",
        "",
    )


def _count_error(
    metrics: Metrics, base: tuple[str, ...], dims: tuple[str, ...], status: int, kind: str
) -> None:
    metrics.cell("bifrost_error_requests_total", base + (str(status), kind) + dims)[0] += 1


# -- spans at the end of a request -----------------------------------------------------------------------


def _end_spans(probe: Probe, req: Request | None, served: Served | None, error: BifrostError | None) -> None:
    span = probe.span
    assert span is not None
    if req is not None:
        op = operation_name(req.request_type)
        span.update_name(f"{op} {req.model}")
        span.set_attributes(_request_attributes(req, op))
    for tried in probe.targets:  # a call that went well but whose answer could not be read
        if tried.span is not None and (served is None or tried.index != served.index):
            why = next((f[4] for f in probe.failed or () if f[0] == tried.index), None)
            if why is not None:
                _fail_span(tried.span, why)
            tried.span.end()
    if served is not None:
        attributes = _served_attributes(served)
        span.set_attributes(attributes)
        target = next((t for t in probe.targets if t.index == served.index and t.span is not None), None)
        if target is not None and target.span is not None:
            target.span.set_attributes(attributes)
            if served.error is not None:
                _fail_span(target.span, served.error)
            target.span.end()
    failure = error or (served.error if served is not None else None)
    if failure is not None:
        _fail_span(span, failure)
    span.end()


def _request_attributes(req: Request, op: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": op,
        "gen_ai.request.model": req.model,
        "bifrost.request_id": req.request_id,
        "bifrost.request_type": req.request_type,
        "bifrost.stream": req.stream,
    }
    if req.vk is not None:
        attributes["bifrost.virtual_key.id"] = req.vk.id
        attributes["bifrost.virtual_key.name"] = req.vk.name
    if req.principal is not None:
        attributes["enduser.id"] = req.principal.user_id
    return attributes


def _served_attributes(served: Served) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.system": served.provider,
        "gen_ai.response.model": served.model,
        "bifrost.fallback_index": served.index,
    }
    if served.cache_hit is not None:
        attributes["bifrost.cache.hit_type"] = served.cache_hit
    if served.reply is not None:
        body = served.reply.body
        model = body.get("model")
        if isinstance(model, str) and model:
            attributes["gen_ai.response.model"] = model
        reasons = finish_reasons(body)
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
    if served.usage is not None:
        attributes["gen_ai.usage.input_tokens"] = served.usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = served.usage.output_tokens
    if served.cost is not None:
        attributes["bifrost.cost_usd"] = served.cost["total_cost"]
    return attributes


def _fail_span(span: Span, exc: BaseException) -> None:
    if isinstance(exc, BifrostError):
        span.set_attribute("error.type", exc.top_type or exc.error_type or str(exc.status_code))
        span.set_attribute("http.response.status_code", exc.status_code)
        span.set_status(Status(StatusCode.ERROR, exc.message[:200]))
    else:
        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(Status(StatusCode.ERROR))


# -- http_* metrics around every request ------------------------------------------------------------------


class HTTPMetrics:
    """http_requests_total, http_request_duration_seconds, http_request_size_bytes and
    http_response_size_bytes, labelled by route template, method and status."""

    __slots__ = ("metrics", "app")

    def __init__(self, metrics: Metrics, app: ASGIApp) -> None:
        self.metrics = metrics
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        scope[_HTTP_SEEN] = True  # a journey's probe under this wrapper leaves them to it
        exchange = _Exchange(receive, send)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        finally:
            seconds = time.perf_counter() - started
            http = (exchange.status, exchange.received, exchange.sent)
            self.metrics.defer(_http_facts(scope, http, seconds))


def _add_http(
    telemetry: Telemetry, metrics: Metrics, scope: Scope, status: int, seconds: float, received: int,
    sent: int, dims: tuple[str, ...],
) -> None:  # fmt: skip
    """One request's http_* figures, whoever watched its messages (HTTPMetrics, or the journey's probe)."""
    values = (telemetry.template(scope), scope["method"], str(status)) + dims
    cells = metrics.http(values)
    cells.requests[0] += 1
    observe(cells.duration, Metrics.LATENCY, seconds)
    observe(cells.request_size, Metrics.SIZES, received)
    observe(cells.response_size, Metrics.SIZES, sent)


class _Exchange:
    __slots__ = ("_receive", "_send", "status", "received", "sent")

    def __init__(self, receive: Any, send: Any) -> None:
        self._receive = receive
        self._send = send
        self.status = 500  # an app that raised before answering: the server answers 500
        self.received = 0
        self.sent = 0

    async def receive(self) -> Any:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
        return message

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.sent += len(message.get("body", b""))
        await self._send(message)
