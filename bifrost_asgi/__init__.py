"""bifrost-asgi: a Bifrost-compatible AI gateway that lives inside your Python web app."""

from __future__ import annotations

from ._app import create_app
from ._config import ConfigError, GatewayConfig
from ._errors import BifrostError
from ._middleware import BifrostMiddleware
from ._principal import OwnerDirectory, Principal

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
