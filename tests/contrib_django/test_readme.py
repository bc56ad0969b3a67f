"""The Django README followed by a new user: ``django-admin startproject``, the README's settings, urls
and asgi.py snippets added as written, ``check`` and ``migrate``, then the site under uvicorn (two
workers, the fresh project's own SQLite settings), a signed-in user's calls and a script with a key.

Everything runs in child processes with a clean environment: the fresh project's settings, never the
test project's.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.snippets import (
    CLIENT,
    DJANGO_ASGI,
    DJANGO_SETTINGS,
    DJANGO_URLS,
    Server,
    clean_env,
    python_snippets,
    run_python,
    substitute,
    uvicorn,
)

README = "contrib/django/README.md"
PASSWORD = "readme-pw-1"  # noqa: S105 - a test user's


def manage(project: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh project with the README's snippets in it, checked and migrated."""
    root = tmp_path_factory.mktemp("readme-django")
    env = clean_env()
    subprocess.run([sys.executable, "-m", "django", "startproject", "mysite", str(root)], env=env, check=True)
    snippets = python_snippets(README)
    site = root / "mysite"
    with (site / "settings.py").open("a") as settings:
        settings.write("\n" + snippets[DJANGO_SETTINGS])
    with (site / "urls.py").open("a") as urls:
        urls.write("\n" + snippets[DJANGO_URLS])
    (site / "asgi.py").write_text(snippets[DJANGO_ASGI])
    return root


def site_env() -> dict[str, str]:
    # The README's settings read OPENAI_API_KEY at startup; the calls below use the offline mock.
    return clean_env(OPENAI_API_KEY="sk-not-used", DJANGO_SUPERUSER_PASSWORD=PASSWORD)


def test_a_fresh_project_following_the_readme_passes_every_check(project: Path) -> None:
    output = manage(project, site_env(), "check", "--fail-level", "WARNING")
    assert "System check identified no issues" in output  # no bifrost.W002 on the default SQLite


@pytest.fixture(scope="module")
def site(project: Path) -> Iterator[Server]:
    env = site_env()
    manage(project, env, "migrate", "--noinput", "-v", "0")
    manage(project, env, "createsuperuser", "--noinput", "--username", "ada", "--email", "ada@example.com")
    server = uvicorn("mysite.asgi:application", project, env, "--workers", "2")
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def signed_in(site: Server) -> Iterator[httpx.Client]:
    """A browser signed in through the admin's login form, sending the CSRF token as pages do."""
    with httpx.Client(base_url=site.url, timeout=60) as browser:
        browser.get("/admin/login/")
        form = {"username": "ada", "password": PASSWORD, "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
        assert browser.post("/admin/login/", data=form).status_code == 302
        browser.headers["X-CSRFToken"] = browser.cookies["csrftoken"]
        yield browser


def test_the_readme_site_serves_users_and_scripts(project: Path, site: Server) -> None:
    with signed_in(site) as browser:
        answer = browser.post("/ai/v1/responses", json={"model": "mock/mock-1", "input": "hi"})
        assert answer.status_code == 200, site.output()
        assert answer.json()["output"][0]["content"][0]["text"].startswith("[mock]")
        created = browser.post("/ai/api/me/virtual-keys", json={"name": "script"})
        value = created.json()["virtual_key"]["value"]
    code = substitute(python_snippets(README)[CLIENT], "http://localhost:8000", site.url)
    (project / "client.py").write_text(substitute(code, '"sk-bf-..."', repr(value)))
    assert run_python(project / "client.py", site_env()).startswith("[mock]")


# Admissions against one counter from the ORM store's own thread pool (8 connections), as a busy site
# makes them: with SQLite's default deferred transactions many failed with "database is locked".
HAMMER = """
import asyncio, time
from bifrost_asgi.governance.windows import parse_duration
from bifrost_asgi.stores.counters import Claim, Limit
from bifrost_django.stores import ORMCounterStore

async def main():
    store, limit = ORMCounterStore(), Limit("readme:requests", "requests", 1e9, parse_duration("1h"))
    calls = [store.admit([Claim(limit, 1)], time.time()) for _ in range(200)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    print(sum(isinstance(r, BaseException) for r in results), "failed")

asyncio.run(main())
"""


def test_concurrent_admissions_on_the_default_sqlite_settings_all_succeed(
    project: Path, site: Server
) -> None:
    assert manage(project, site_env(), "shell", "-c", HAMMER).splitlines()[-1] == "0 failed"


def test_concurrent_calls_from_a_signed_in_user_all_succeed(site: Server) -> None:
    with signed_in(site) as browser:
        body = {"model": "mock/mock-1", "input": "hi"}

        def call(_: int) -> int:
            return browser.post("/ai/v1/responses", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, range(48)))
    assert statuses == [200] * 48, site.output()
