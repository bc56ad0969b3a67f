"""The Flask example host app: sign in, create a key, stream a prompt from the session, see usage."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_login")

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

# The example imports Flask-Login as a user would; Flask-Login ships no type information.
example: Any = importlib.import_module("example_project.flask_app")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app: Flask = example.create_app(instance_path=str(tmp_path))
    yield app
    app.extensions["bifrost"].runtime.close()


def sign_in(client: FlaskClient, user: str, password: str) -> str:
    page = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    r = client.post("/login", data={"csrf": csrf[1], "username": user, "password": password})
    assert r.status_code == 302, r.text
    home = client.get("/")
    assert home.status_code == 200
    token = re.search(r"const csrf = (\"[^\"]+\");", home.text)
    assert token is not None
    value: str = json.loads(token[1])
    return value


def test_a_signed_in_user_streams_a_prompt_creates_a_key_and_sees_usage(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/").status_code == 302  # to the login page
    csrf = sign_in(client, "alice", "alice-password")
    body = {"model": "gpt-4o-mini", "input": "hi", "stream": True}
    r = client.post("/ai/v1/responses", json=body, headers={"X-CSRFToken": csrf})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    deltas = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert "[mock]" in "".join(e.get("delta", "") for e in deltas)  # the offline mock answered
    created = client.post(
        "/ai/api/me/virtual-keys", json={"name": "my script"}, headers={"X-CSRFToken": csrf}
    )
    assert created.get_json()["virtual_key"]["value"].startswith("sk-bf-")
    names = {k["name"] for k in client.get("/ai/api/me/virtual-keys").get_json()["virtual_keys"]}
    assert names == {"default", "my script"}
    assert client.get("/ai/api/me/usage").get_json()["user_id"] == "alice"
    assert "Every key (admin)" not in client.get("/").text
    assert client.get("/ai/api/governance/virtual-keys").status_code == 401


def test_the_login_form_refuses_a_forged_post_and_a_wrong_password(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")
    forged = {"csrf": "x" * 43, "username": "alice", "password": "alice-password"}
    assert client.post("/login", data=forged).status_code == 403
    page = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    wrong = client.post("/login", data={"csrf": csrf[1], "username": "alice", "password": "nope"})
    assert "Wrong username or password." in wrong.text


def test_the_admin_sees_every_key(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "admin", "admin-password")
    assert "Every key (admin)" in client.get("/").text
    assert client.get("/ai/api/governance/virtual-keys").status_code == 200
