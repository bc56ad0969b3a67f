"""``bifrost-asgi serve``: the gateway standalone, served by uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from starlette.applications import Starlette

from bifrost_asgi.app import create_app
from bifrost_asgi.cli.keys import add_keys_parser, run_keys
from bifrost_asgi.config import ConfigError, GatewayConfig

__all__ = ["main"]

_CONFIG_ENV = "BIFROST_ASGI_CONFIG"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bifrost-asgi", description="A Bifrost-compatible AI gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the gateway with uvicorn")
    serve.add_argument("--config", help="a Bifrost config.json (default: the offline mock provider only)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    add_keys_parser(sub)
    return parser


def _load(path: str | None) -> GatewayConfig:
    if path is None:
        return GatewayConfig.from_dict({"providers": {"mock": {}}})
    return GatewayConfig.from_file(path)


def app_factory() -> Starlette:
    """Each uvicorn worker process builds its own app from the config path in the environment."""
    return create_app(_load(os.environ.get(_CONFIG_ENV) or None))


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
        uvicorn.run(
            "bifrost_asgi.cli.main:app_factory",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
        )
    else:
        uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)
    return 0
