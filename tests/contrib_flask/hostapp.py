"""A small host app for the Flask extension's tests: Flask-Login users in a SQLite file (so that
gunicorn's worker processes share them, and a test can deactivate a user), a login route, and the
gateway at /ai with its openai provider pointed at the upstream-shaped test server.

Under gunicorn: ``HOSTAPP_UPSTREAM_URL=... HOSTAPP_DATA_DIR=... gunicorn -w 2
'tests.contrib_flask.hostapp:create_app()'``.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask, abort

from bifrost_flask import Bifrost

# Flask-Login ships no type information.
flask_login: Any = importlib.import_module("flask_login")

USERS = ("alice", "bob", "carol", "root")
ADMINS = ("root",)


class User:
    """What Flask-Login needs from a user, without subclassing its untyped UserMixin."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, user_id: str, active: bool, admin: bool) -> None:
        self.id = user_id
        self.is_active = active
        self.is_admin = admin

    def get_id(self) -> str:
        return self.id


class UserTable:
    """The host's users, in SQLite; every call opens its own connection (any thread, any process)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, active INT, admin INT)")
            for name in USERS:
                db.execute("INSERT OR IGNORE INTO users VALUES (?, 1, ?)", (name, int(name in ADMINS)))

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def get(self, user_id: str) -> User | None:
        with self._connect() as db:
            row = db.execute("SELECT active, admin FROM users WHERE id=?", (user_id,)).fetchone()
        return None if row is None else User(user_id, bool(row[0]), bool(row[1]))

    def add(self, user_id: str) -> None:
        with self._connect() as db:
            db.execute("INSERT INTO users VALUES (?, 1, 0)", (user_id,))

    def set_active(self, user_id: str, active: bool) -> None:
        with self._connect() as db:
            db.execute("UPDATE users SET active=? WHERE id=?", (int(active), user_id))


def gateway_config(upstream_url: str, data_dir: Path) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {
                "keys": [{"name": "primary", "value": "sk-test-primary"}],
                "network_config": {"base_url": upstream_url, "max_retries": 0},
            },
            "mock": {"keys": [{"value": "unused", "models": ["mock-1"]}]},
        },
        # Only the host's users (or their keys) may spend: no anonymous inference.
        "client": {"enforce_auth_on_inference": True},
        "governance": {
            "store": {"type": "sqlite", "path": str(data_dir / "bifrost.db")},
            # Revocations and new keys are seen at once by every worker process.
            "key_cache_ttl_seconds": 0,
            "logs": {"flush_interval_ms": 50},
        },
    }


def create_app(
    upstream_url: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    config: dict[str, Any] | None = None,
    **options: Any,
) -> Flask:
    """The host app; ``config`` replaces the gateway config, ``options`` go to `Bifrost`."""
    upstream = upstream_url or os.environ["HOSTAPP_UPSTREAM_URL"]
    directory = Path(data_dir or os.environ["HOSTAPP_DATA_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__, instance_path=str(directory))
    app.config.update(SECRET_KEY="host-secret", BIFROST_CONFIG=config or gateway_config(upstream, directory))
    users = UserTable(directory / "users.db")
    login = flask_login.LoginManager(app)
    login.user_loader(users.get)
    bifrost = Bifrost(app, **options)

    @app.get("/")
    def home() -> str:
        return "host"

    @app.post("/login/<user_id>")
    def log_in(user_id: str) -> dict[str, str]:
        user = users.get(user_id)
        if user is None or not flask_login.login_user(user):
            abort(403)
        return {"csrf": bifrost.csrf_token()}

    @app.get("/loop")
    def loop() -> dict[str, int]:
        return {"pid": os.getpid(), "loop": id(bifrost.loop.loop)}

    app.extensions["hostapp.users"] = users
    app.extensions["hostapp.bifrost"] = bifrost
    return app
