"""Live Django servers for the tests: the test project under uvicorn (ASGI) or gunicorn (WSGI), two
worker processes each, on a fresh SQLite file or a fresh PostgreSQL database, with the gateway's
``openai`` provider pointed at the upstream-shaped test server.

Users are made through the test project's helper URL and sign in through Django's own login form, so
every session, cookie and CSRF token is the real thing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests._procs import die_with_test_run, stop_process_group

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
_SCRUBBED = ("BIFROST_", "OPENAI_", "ANTHROPIC_", "DJTEST_")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


# -- databases -----------------------------------------------------------------------------------------


def postgres_or_skip() -> None:
    """The local PostgreSQL server: a skip on a laptop without it, a failure in CI."""
    try:
        import psycopg

        psycopg.connect(PG_ADMIN).close()
    except Exception as exc:  # ImportError or any connection failure: same verdict
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but not usable ({PG_ADMIN}): {exc!r}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}: {exc!r}")


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql.encode())


@dataclass
class Database:
    """``DJTEST_DB`` for the test project, and how to remove the database afterwards."""

    spec: str
    name: str

    @classmethod
    def sqlite(cls, directory: Path) -> Database:
        path = directory / f"{unique('site-')}.sqlite3"
        return cls(f"sqlite:{path}", str(path))

    @classmethod
    def postgres(cls) -> Database:
        postgres_or_skip()
        name = unique("bifrost_django_")
        _pg_admin(f"CREATE DATABASE {name}")
        return cls(f"postgres:{name}", name)

    def drop(self) -> None:
        if self.spec.startswith("postgres:"):
            _pg_admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(self.name + suffix).unlink(missing_ok=True)


def site_env(database: Database, upstream: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    env.update(DJANGO_SETTINGS_MODULE="tests.contrib_django.settings", DJTEST_DB=database.spec)
    env.update(DJTEST_UPSTREAM=upstream, PYTHONPATH=str(REPO), **extra)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``django-admin <args>`` for the test project, in a fresh process (as a deploy step would run it)."""
    cmd = [sys.executable, "-m", "django", *args]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


# -- servers ---------------------------------------------------------------------------------------------


def _command(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        app, options = "tests.contrib_django.asgi:application", ["--port", str(port), "--workers", "2"]
        # Lifespan on: the gateway starts with the server (GatewayLifespan), or the boot fails loudly.
        options += ["--host", "127.0.0.1", "--lifespan", "on", "--log-level", "warning"]
    else:
        app, options = "tests.contrib_django.wsgi:application", ["-b", f"127.0.0.1:{port}", "-w", "2"]
        # Threads too, so requests in one worker share its gateway loop thread concurrently.
        options += ["--threads", "4", "--timeout", "60", "--log-level", "warning"]
    return [sys.executable, "-m", server, app, *options]


@dataclass
class Site:
    """A running test project."""

    url: str
    server: str
    database: Database
    process: subprocess.Popen[bytes]
    log: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def create_user(self, prefix: str = "user-", *, staff: bool = False) -> tuple[str, str]:
        """A new user: (username, id as the gateway sees it)."""
        name = unique(prefix)
        response = self.http.post(f"/test/users/{name}", params={"staff": "1" if staff else "0"})
        response.raise_for_status()
        return name, str(response.json()["id"])

    def set_active(self, username: str, active: bool) -> None:
        self.http.post(f"/test/users/{username}/active/{int(active)}").raise_for_status()

    def browser(self, username: str) -> Browser:
        return Browser.signed_in(self.url, username)

    def stop(self) -> None:
        self.http.close()
        stop_process_group(self.process)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_site(server: str, database: Database, upstream: str, log_dir: Path, **extra_env: str) -> Site:
    env = site_env(database, upstream, **extra_env)
    manage(env, "migrate", "--noinput", "-v", "0")
    port = free_port()
    log = log_dir / f"{server}-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _command(server, port),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_test_run,
        )
    site = Site(f"http://127.0.0.1:{port}", server, database, process, log)
    try:
        _wait_ready(site)
    except BaseException:
        site.stop()
        raise
    return site


def _wait_ready(site: Site) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if site.http.get("/ai/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or site.process.poll() is not None:
            raise RuntimeError(f"{site.server} did not start:\n{site.logs()}")
        time.sleep(0.2)
    time.sleep(0.5)  # let the second worker finish booting too


# -- a signed-in browser ---------------------------------------------------------------------------------


class Browser:
    """An HTTP client with a Django session: signs in through the login form, sends the CSRF token
    (as the front end's JavaScript would) unless told not to."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)

    @classmethod
    def signed_in(cls, url: str, username: str) -> Browser:
        browser = cls(url)
        browser.http.get("/accounts/login/").raise_for_status()
        form = {"username": username, "password": f"pw-{username}", "csrfmiddlewaretoken": browser.csrf}
        response = browser.http.post("/accounts/login/", data=form)
        assert response.status_code == 302, f"login failed for {username}: {response.status_code}"
        return browser

    @property
    def csrf(self) -> str:
        return str(self.http.cookies["csrftoken"])  # Django rotates it at login: always read it fresh

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        csrf: bool = True,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if csrf:
            sent["X-CSRFToken"] = self.csrf
        content = None if body is None else orjson.dumps(body)
        if content is not None:
            sent["Content-Type"] = "application/json"
        return self.http.request(method, path, content=content, headers=sent)

    def stream(self, path: str, body: Any) -> Iterator[dict[str, Any]]:
        """POST a streaming request and yield each SSE event's JSON ``data``."""
        headers = {"X-CSRFToken": self.csrf, "Content-Type": "application/json"}
        with self.http.stream("POST", path, content=orjson.dumps(body), headers=headers) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "content-encoding" not in response.headers  # never gzipped: events must not wait
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield orjson.loads(line[6:])

    def close(self) -> None:
        self.http.close()
