"""`Bifrost`: the Flask extension (flask-sqlalchemy's and flask-login's conventions)."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app
from starlette.applications import Starlette

from bifrost_asgi import ConfigError, create_app
from bifrost_asgi.adapters import GatewayRuntime, LoopThread

from ._auth import AdminCheck, FlaskOwnerDirectory, OwnerCheck, PrincipalLoader, principal_source
from ._csrf import csrf_token, exempt_from_flask_wtf, set_csrf_cookie
from ._settings import gateway_config, set_defaults
from ._state import EXTENSION_KEY, BifrostState, state_of
from ._view import METHODS, gateway_view
from .signals import signal_hooks

__all__ = ["Bifrost"]


class Bifrost:
    """The AI gateway inside a Flask app, for the app's own users.

    >>> app = Flask(__name__)
    >>> app.config["BIFROST_CONFIG"] = {"providers": {"openai": {"keys": [{"value": "env.OPENAI_API_KEY"}]}}}
    >>> LoginManager(app)            # Flask-Login: current_user is who calls /ai/...
    >>> bifrost = Bifrost(app)       # or Bifrost() now and bifrost.init_app(app) in the factory

    Every gateway route is served under ``BIFROST_URL_PREFIX`` (default ``/ai``): ``/ai/v1/responses``,
    ``/ai/v1/chat/completions``, ``/ai/api/me/virtual-keys``, ... A signed-in user's calls are charged
    to their default virtual key; a call that sends a virtual key uses that key, whose owner must still
    be active. Session-authenticated writes need a CSRF token (`csrf_token`, in ``X-CSRFToken``).

    Options, the same for every app the extension is registered on:

    - ``principal_loader``: ``() -> Principal | None`` called in the request, instead of Flask-Login.
      Return ``Principal(user_id, via="session")`` for cookie-authenticated users (CSRF-checked) and
      ``via="token"`` for users authenticated by a header the browser does not send on its own.
    - ``is_admin``: the user attribute (default ``"is_admin"``) or ``callable(user) -> bool`` that grants
      the management API (``/ai/api/governance/...``, ``/ai/api/logs``) to Flask-Login users.
    - ``owner_active``: ``callable(user_id) -> bool``, whether a key's owner may still use it. Runs in a
      worker thread inside an app context. Default: Flask-Login's user_loader finds an active user.

    Config keys (``app.config``): ``BIFROST_CONFIG`` (a config.json-shaped dict, a path or a
    `GatewayConfig`), ``BIFROST_URL_PREFIX``, ``BIFROST_CSRF_ENABLED``, ``BIFROST_CSRF_COOKIE_NAME``,
    ``BIFROST_CSRF_HEADER_NAME``; defaults in ``bifrost_flask._settings.DEFAULTS``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        principal_loader: PrincipalLoader | None = None,
        is_admin: AdminCheck = "is_admin",
        owner_active: OwnerCheck | None = None,
    ) -> None:
        self._principal_loader = principal_loader
        self._is_admin = is_admin
        self._owner_active = owner_active
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the gateway on ``app``: its config, its blueprint, its (lazily started) runtime."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "A 'Bifrost' instance is already registered on this Flask app: import and use that one."
            )
        set_defaults(app.config)
        prefix = _url_prefix(app.config["BIFROST_URL_PREFIX"])
        config = gateway_config(
            app.config["BIFROST_CONFIG"], root_path=app.root_path, instance_path=app.instance_path
        )
        owners = FlaskOwnerDirectory(app, self._owner_active)
        hooks = signal_hooks(app)  # bifrost_flask.signals
        runtime = GatewayRuntime(
            lambda: create_app(config, owner_directory=owners, hooks=hooks), name="bifrost-flask-loop"
        )
        blueprint = _blueprint()
        app.register_blueprint(blueprint, url_prefix=prefix)
        auth = config.governance.auth_config if config.governance else None
        app.extensions[EXTENSION_KEY] = BifrostState(
            runtime,
            prefix,
            principal_source(self._principal_loader, self._is_admin),
            admin_api_open=auth is None or not auth.is_enabled,
        )
        with app.app_context():
            exempt_from_flask_wtf(blueprint)  # CSRFProtect set up before us; after us: see _blueprint

    def csrf_token(self) -> str:
        """The token the current page must send in ``X-CSRFToken`` with session-authenticated writes.

        >>> render_template("chat.html", csrf=bifrost.csrf_token())

        With Flask-WTF's CSRFProtect on the app, this is Flask-WTF's token; otherwise the value of the
        ``bifrost_csrf`` cookie (set on this response when the browser has none yet).
        """
        state_of(current_app)
        return csrf_token()

    @property
    def gateway(self) -> Starlette:
        """The current app's gateway, as an ASGI app."""
        return state_of(current_app).runtime.app

    @property
    def loop(self) -> LoopThread:
        """The current app's event loop thread, started on first use and shared by every request."""
        return state_of(current_app).runtime.get()[0]

    def close(self, app: Flask | None = None) -> None:
        """Shut the gateway down and stop its loop thread (done at interpreter exit otherwise)."""
        state_of(app or current_app).runtime.close()


def _blueprint() -> Blueprint:
    blueprint = Blueprint("bifrost", __name__)
    blueprint.add_url_rule("/", "gateway", gateway_view, defaults={"path": ""}, methods=METHODS)
    blueprint.add_url_rule("/<path:path>", "gateway", gateway_view, methods=METHODS)

    # Registered before Flask-WTF's own hook when CSRFProtect is set up after this extension.
    @blueprint.before_app_request
    def _exempt() -> None:
        exempt_from_flask_wtf(blueprint)

    blueprint.after_app_request(set_csrf_cookie)
    return blueprint


def _url_prefix(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ConfigError(f"BIFROST_URL_PREFIX: must be a path starting with '/', got {value!r}")
    return value.rstrip("/") or "/"
