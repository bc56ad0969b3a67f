"""Django for this folder only: the test project's settings, Django's test tooling (pytest-django), and
the live sites (uvicorn and gunicorn, on SQLite and PostgreSQL).

Without Django installed the folder is not collected, and the rest of the suite runs as before.
Setting ``DJANGO_SETTINGS_MODULE`` here, at collection, touches nothing outside this folder: the rest
of the suite never imports Django.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("django") is None:
    collect_ignore_glob = ["*"]
else:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.contrib_django.settings")
    import django

    django.setup()

    from tests.governance.conftest import redis_url  # noqa: F401  (the local Redis, shared)

    from .live import Database, Site, start_site

    SITES = ["uvicorn-sqlite", "uvicorn-postgres", "gunicorn-sqlite", "gunicorn-postgres"]

    @pytest.fixture(scope="session", params=SITES)
    def site(
        request: pytest.FixtureRequest, upstream_url: str, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[Site]:
        """A live test project; the same tests run against each server and database."""
        server, _, db = str(request.param).partition("-")
        directory = tmp_path_factory.mktemp(f"site-{request.param}")
        database = Database.postgres() if db == "postgres" else Database.sqlite(directory)
        try:
            live = start_site(server, database, upstream_url, directory)
            try:
                yield live
            finally:
                live.stop()
        finally:
            database.drop()

    @pytest.fixture(scope="session", autouse=True)
    def _database_only_when_asked(django_db_blocker: Any) -> Iterator[None]:
        """In-process tests reach the (test) database only through pytest-django's db fixtures."""
        with django_db_blocker.block():
            yield

    @pytest.fixture(scope="session")
    def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
        return tmp_path_factory.mktemp("django-scratch")
