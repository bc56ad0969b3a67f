"""bifrost-asgi: a Bifrost-compatible AI gateway that lives inside your Python web app."""

from __future__ import annotations

from bifrost_asgi.adapters.principal import OwnerDirectory, Principal
from bifrost_asgi.adapters.starlette import BifrostMiddleware
from bifrost_asgi.app import create_app
from bifrost_asgi.config import ConfigError, GatewayConfig
from bifrost_asgi.errors import BifrostError

__all__ = [
    "BifrostError",
    "BifrostMiddleware",
    "ConfigError",
    "GatewayConfig",
    "OwnerDirectory",
    "Principal",
    "__version__",
    "create_app",
]

__version__ = "0.1.0"
