"""``bifrost-asgi serve``: the gateway standalone, served by uvicorn."""

from __future__ import annotations

import argparse
import gc
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from bifrost_asgi.app import create_app
from bifrost_asgi.cli.keys import add_keys_parser, run_keys
from bifrost_asgi.cli.server import access_log_config
from bifrost_asgi.config import ConfigError, GatewayConfig

__all__ = ["main"]

_CONFIG_ENV = "BIFROST_ASGI_CONFIG"
_OTLP_ENV = "BIFROST_ASGI_OTLP_ENDPOINT"
_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bifrost-asgi", description="A Bifrost-compatible AI gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the gateway with uvicorn")
    serve.add_argument("--config", help="a Bifrost config.json (default: the offline mock provider only)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    # Why these defaults: an idle client must not hold a connection (and a file descriptor) forever,
    # and a flood of connections must be refused (503) before it exhausts the process.
    serve.add_argument(
        "--timeout-keep-alive", type=float, default=5.0,
        help="seconds an idle connection (also a new one that has sent no request yet) stays open",
    )  # fmt: skip
    serve.add_argument(
        "--limit-concurrency", type=int, default=2048,
        help="connections and requests one worker serves at once; more get 503",
    )  # fmt: skip
    serve.add_argument(
        "--otlp-endpoint",
        help="export the gateway's spans over OTLP/HTTP to this collector URL, e.g. "
        "http://127.0.0.1:4318/v1/traces (needs: pip install 'bifrost-asgi[otlp]')",
    )
    add_keys_parser(sub)
    return parser


def _load(path: str | None) -> GatewayConfig:
    if path is None:
        return GatewayConfig.from_dict({"providers": {"mock": {}}})
    return GatewayConfig.from_file(path)


def app_factory() -> Starlette:
    """Each uvicorn worker process builds its own app from the config path in the environment."""
    _export_spans(os.environ.get(_OTLP_ENV))
    app = create_app(_load(os.environ.get(_CONFIG_ENV) or None))
    _tune_collector()
    return app


# Container objects allocated (net) between two young-generation collections; CPython's default is 700.
YOUNG_COLLECTION_THRESHOLD = 10_000


def _tune_collector() -> None:
    """Keep what startup built (modules, the price catalog, the config: ~65,000 objects) out of the
    cycle collector's full collections: each walked all of it, ~25 ms, several times a minute under load
    (a pause every request in flight waited out). Measured: full collections 300-450 ms -> ~20 ms per
    11 s at c=16; requests/s +1-6% (BENCHMARKS.md).

    And collect the young generation less often. At the default threshold a collection ran every 9-18
    requests at c=16, each walking what the 16 requests in flight had allocated (~0.1 ms) only to
    promote it to the next generation, where it died: 3.8% of a governed worker's CPU (it allocates
    more, so it collected 2.9 times as often), 1.9% of an ungoverned one's. At 10,000 a collection runs
    about once a second (~1.3 ms, a pause for the requests in flight, as each young collection was) and
    collecting took 0.4% (BENCHMARKS.md). The older generations are counted in younger collections, so
    they too run ~14 times less often. Served requests leave no reference cycles behind (checked under
    load with ``gc.DEBUG_SAVEALL``); garbage in cycles from other paths (errors) waits at most until the
    next young collection. Only the standalone server does this: in a host app, the host owns its
    process's heap (docs/behaviour.md)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)


def _export_spans(endpoint: str | None) -> None:
    """An OpenTelemetry SDK for this process, sending spans to ``endpoint`` (in a host app, the host
    configures its own SDK and exporters instead)."""
    if not endpoint:
        return
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise SystemExit("bifrost-asgi: --otlp-endpoint needs: pip install 'bifrost-asgi[otlp]'") from None
    provider = TracerProvider(resource=Resource.create({"service.name": "bifrost-asgi"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)


def _share_metrics(config: GatewayConfig) -> None:
    """Several workers add up their metrics in one directory: a fresh one unless one was given, and
    none of this server's old figures in it (a restart starts counting from zero, as Prometheus expects
    of a restarted target)."""
    given = config.telemetry.metrics_dir or os.environ.get(_METRICS_ENV)
    if not config.telemetry.metrics:
        return
    if not given:
        os.environ[_METRICS_ENV] = tempfile.mkdtemp(prefix="bifrost-metrics-")
        return
    for old in Path(given).glob("bifrost-metrics-*.json"):
        old.unlink(missing_ok=True)


def _server_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "timeout_keep_alive": args.timeout_keep_alive,
        "limit_concurrency": args.limit_concurrency,
        # Our protocol classes: uvicorn's, plus a deadline for a connection's first request.
        "http": f"bifrost_asgi.cli.server:{'HttpToolsProtocol' if _has_httptools() else 'H11Protocol'}",
        "log_config": access_log_config(),
    }


def _has_httptools() -> bool:
    return importlib.util.find_spec("httptools") is not None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "keys":
        return run_keys(args)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        config = _load(args.config)  # validate once up front: a bad config fails before any worker starts
    except ConfigError as exc:
        print(f"bifrost-asgi: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    if args.workers > 1:
        if args.config:
            os.environ[_CONFIG_ENV] = os.path.abspath(args.config)
        if args.otlp_endpoint:
            os.environ[_OTLP_ENV] = args.otlp_endpoint
        _share_metrics(config)
        options = _server_options(args)
        uvicorn.run("bifrost_asgi.cli.main:app_factory", factory=True, workers=args.workers, **options)
    else:
        _export_spans(args.otlp_endpoint)
        app = create_app(config)
        _tune_collector()
        uvicorn.run(app, **_server_options(args))
    return 0
