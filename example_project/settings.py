"""The example Django site: SQLite, Django's own users and login, and the gateway at /ai/.

Answers come from OpenAI when OPENAI_API_KEY is set, otherwise from the offline ``mock`` provider under
the same model names. For development only: DEBUG is on and the secret key is not a secret.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-bifrost-example-not-for-production")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "example_project.urls"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "bifrost_django",
    "example_project",  # its templates
]
MIDDLEWARE = [
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
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
        # Budget and rate-limit counters are admitted in transactions that take SQLite's write lock up
        # front (check bifrost.W002), and WAL lets pages read while the gateway writes.
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL;",
        },
    }
}

PROVIDERS: dict[str, Any]
if os.environ.get("OPENAI_API_KEY"):
    PROVIDERS = {"openai": {"keys": [{"name": "default", "value": "env.OPENAI_API_KEY"}]}, "mock": {}}
else:
    PROVIDERS = {"mock": {"keys": [{"value": "unused", "models": ["gpt-4o-mini", "gpt-4o"]}]}}

BIFROST = {
    "PROVIDERS": PROVIDERS,
    # Only signed-in users (their session) and their keys may call the gateway.
    "CLIENT": {"enforce_auth_on_inference": True},
    # What each user's default key (and each key they create) may spend.
    "DEFAULT_KEY": {
        "allow_all_providers": True,
        "budgets": [{"max_limit": 1.0, "reset_duration": "1d"}],
        "rate_limit": {"request_max_limit": 30, "request_reset_duration": "1m"},
    },
}
