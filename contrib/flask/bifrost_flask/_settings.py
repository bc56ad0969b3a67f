"""The ``BIFROST_*`` config keys and their defaults, and ``BIFROST_CONFIG`` turned into `GatewayConfig`.

The extension only translates: every gateway rule lives in the one `GatewayConfig` (Bifrost's
``config.json`` shape), exactly as the CLI and the ASGI factory read it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Config

from bifrost_asgi.config import ConfigError, GatewayConfig, GovernanceConfig

__all__ = ["DEFAULTS", "gateway_config", "set_defaults"]

DEFAULTS: dict[str, Any] = {
    # A dict in config.json's shape, a path to a config.json (relative to the app's root_path, as
    # Flask's own config.from_file), or a GatewayConfig. None: the offline mock provider only, as the CLI.
    "BIFROST_CONFIG": None,
    "BIFROST_URL_PREFIX": "/ai",
    # Session-authenticated writes need a CSRF token. On by default: a browser sends the session cookie
    # with any cross-site POST, and those calls spend the user's budget.
    "BIFROST_CSRF_ENABLED": True,
    # The double-submit cookie and header, used when the app has no Flask-WTF CSRFProtect.
    "BIFROST_CSRF_COOKIE_NAME": "bifrost_csrf",
    "BIFROST_CSRF_HEADER_NAME": "X-CSRFToken",
}


def set_defaults(config: Config) -> None:
    """Fill in every ``BIFROST_*`` key the app did not set (flask-sqlalchemy's convention)."""
    for name, value in DEFAULTS.items():
        config.setdefault(name, value)


def gateway_config(source: object, *, root_path: str, instance_path: str) -> GatewayConfig:
    """``BIFROST_CONFIG`` as a `GatewayConfig`, with governance on.

    >>> gateway_config({"providers": {"mock": {}}}, root_path=app.root_path, instance_path=app.instance_path)

    Without a ``governance`` section the keys, counters and usage logs go to ``bifrost.db`` in the app's
    instance folder (where Flask apps keep local data): the extension exists so that host users own keys,
    which needs a store. An explicit section is used exactly as written.
    """
    config = _load(source, root_path)
    if config.governance is not None:
        return config
    os.makedirs(instance_path, exist_ok=True)
    store = {"store": {"type": "sqlite", "path": os.path.join(instance_path, "bifrost.db")}}
    return config.model_copy(update={"governance": GovernanceConfig.model_validate(store)})


def _load(source: object, root_path: str) -> GatewayConfig:
    if source is None:
        return GatewayConfig.from_dict({"providers": {"mock": {}}}, source="BIFROST_CONFIG")
    if isinstance(source, GatewayConfig):
        return source
    if isinstance(source, Mapping):
        return GatewayConfig.from_dict(source, source="BIFROST_CONFIG")
    if isinstance(source, str | os.PathLike):
        return GatewayConfig.from_file(os.path.join(root_path, os.fspath(source)))
    raise ConfigError(
        f"BIFROST_CONFIG: expected a dict in config.json's shape, a path or a GatewayConfig, "
        f"got {type(source).__name__}"
    )
