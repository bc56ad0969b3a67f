"""The Django test project: the app as a host site installs it.

Used in-process by pytest-django and by the live uvicorn/gunicorn servers, which read these variables:

- ``DJTEST_DB``: ``sqlite:<path>`` (default: a file next to the test run) or ``postgres:<database>``
  (the local server, 127.0.0.1:5432, user postgres);
- ``DJTEST_UPSTREAM``: the base URL of the upstream-shaped test server, for the ``openai`` provider;
- ``DJTEST_COUNTERS``: ``orm`` (default) or ``redis:<url>``;
- ``DJTEST_FLUSH_MS``: how long usage logs wait before they are written (default 50 ms);
- ``DJTEST_KEY_TTL``: ``key_cache_ttl_seconds`` (default 0.5: tests see a changed key quickly);
- ``DJTEST_ENFORCE_AUTH``: ``1`` requires a virtual key (or a session) on every inference call.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

SECRET_KEY = "test-only-not-secret"  # noqa: S105 - a test project
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.contrib_django.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests only
LOGIN_URL = "/accounts/login/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "bifrost_django",
]
STATIC_URL = "static/"
MIDDLEWARE = [
    "django.middleware.gzip.GZipMiddleware",  # as many sites have: it must leave event streams alone
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database(spec: str) -> dict[str, Any]:
    kind, _, name = spec.partition(":")
    if kind == "postgres":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "CONN_MAX_AGE": 60,
        # Writers queue for the lock instead of failing, and counter transactions take it up front.
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL;",
        },
        "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"bifrost-django-test-{os.getpid()}.sqlite3")},
    }


DATABASES = {
    "default": _database(
        os.environ.get("DJTEST_DB", f"sqlite:{tempfile.gettempdir()}/bifrost-django.sqlite3")
    )
}

_counters = os.environ.get("DJTEST_COUNTERS", "orm")
_enforce = os.environ.get("DJTEST_ENFORCE_AUTH") == "1"
BIFROST: dict[str, Any] = {
    "PROVIDERS": {
        "openai": {
            "keys": [{"name": "primary", "value": "sk-test-primary"}],
            "network_config": {"base_url": os.environ.get("DJTEST_UPSTREAM", "http://127.0.0.1:9")},
        },
        "mock": {"keys": [{"value": "unused", "models": ["mock-1"]}]},
    },
    # Flushed often, so tests see a request's usage log row quickly.
    "GOVERNANCE": {
        "logs": {"flush_interval_ms": int(os.environ.get("DJTEST_FLUSH_MS", "50"))},
        "key_cache_ttl_seconds": float(os.environ.get("DJTEST_KEY_TTL", "0.5")),
    },
    # Every user key gets a budget and rate limits, so each call moves counters the tests can read.
    "DEFAULT_KEY": {
        "allow_all_providers": True,
        "budgets": [{"max_limit": 50, "reset_duration": "1M"}],
        "rate_limit": {
            "request_max_limit": 1000,
            "request_reset_duration": "1h",
            "token_max_limit": 10_000_000,
            "token_reset_duration": "1d",
        },
    },
    "COUNTERS": "redis" if _counters.startswith("redis:") else "orm",
    "CLIENT": {"enforce_auth_on_inference": _enforce},
}
if _counters.startswith("redis:"):
    BIFROST["REDIS_URL"] = _counters.removeprefix("redis:")
    # One prefix per site (its database), shared by the site's worker processes.
    BIFROST["REDIS_PREFIX"] = f"bifrost-django-test:{DATABASES['default']['NAME']}:"
