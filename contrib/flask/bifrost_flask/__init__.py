"""bifrost-asgi for Flask: every gateway route under a blueprint, authenticated by the host's own users.

>>> from flask import Flask
>>> from bifrost_flask import Bifrost
>>> app = Flask(__name__)
>>> app.config["BIFROST_CONFIG"] = "config.json"      # Bifrost's config.json shape, or a dict
>>> bifrost = Bifrost(app)                            # /ai/v1/responses, /ai/api/me/..., for current_user

Or with an application factory: ``bifrost = Bifrost()`` at import time, ``bifrost.init_app(app)`` in the
factory. See `Bifrost` for the options and the ``BIFROST_*`` config keys.
"""

from __future__ import annotations

try:
    import flask as _flask  # noqa: F401  (only to fail early, with one message, when Flask is missing)
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without Flask
    raise ImportError("bifrost_flask needs Flask: pip install 'bifrost-asgi[flask]'") from exc

from bifrost_asgi import Principal

from ._extension import Bifrost

__all__ = ["Bifrost", "Principal"]
