"""What the extension keeps per Flask app, in ``app.extensions["bifrost"]``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from bifrost_asgi.adapters import GatewayRuntime

from ._auth import PrincipalLoader

__all__ = ["EXTENSION_KEY", "BifrostState", "state_of"]

EXTENSION_KEY = "bifrost"


@dataclass(frozen=True)
class BifrostState:
    runtime: GatewayRuntime
    prefix: str
    load_principal: PrincipalLoader
    # governance.auth_config is off: the core would serve its management API to anyone.
    admin_api_open: bool


def state_of(app: Flask) -> BifrostState:
    """The app's state; a RuntimeError saying what to do when ``init_app`` was never called for it."""
    try:
        state: BifrostState = app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "The Bifrost extension is not registered on the current Flask app: call "
            "Bifrost(app) or bifrost.init_app(app) when creating the app."
        ) from None
    return state
