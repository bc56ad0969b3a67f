"""The Flask README's app, as written, through Flask's test client: sign in, a session call charged to
the user's default key, a key for scripts, and a user deactivated while signed in, whose session calls
and key are then refused with 403 ``virtual_key_blocked`` (UserMixin reports such a user as not
authenticated: without care that was a 401 "virtual key is missing").
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_login")

from tests.snippets import FLASK_APP, python_snippets  # noqa: E402

MOCK = {"model": "mock/mock-1", "input": "hi"}


@pytest.fixture
def readme_app(tmp_path: Path) -> Iterator[ModuleType]:
    """The README's app.py, imported from its own folder (so its instance folder is there too)."""
    path = tmp_path / "readme_flask_app.py"
    path.write_text(python_snippets("contrib/flask/README.md")[FLASK_APP])
    spec = importlib.util.spec_from_file_location("readme_flask_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # Flask finds the app's root folder through the module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        module.app.extensions["bifrost"].runtime.close()
        del sys.modules[spec.name]


def refused(response: Any) -> bool:
    return bool(response.status_code == 403 and response.get_json()["type"] == "virtual_key_blocked")


def test_the_readme_app_serves_users_until_they_are_deactivated(readme_app: Any) -> None:
    browser = readme_app.app.test_client()
    assert browser.post("/ai/v1/responses", json=MOCK).status_code == 401  # nobody signed in
    assert browser.post("/login", data={"username": "alice", "password": "guess"}).status_code == 403
    csrf = browser.post("/login", data={"username": "alice", "password": "alice-pw"}).get_json()["csrf"]
    headers = {"X-CSRFToken": csrf}
    answer = browser.post("/ai/v1/responses", json=MOCK, headers=headers)
    assert answer.status_code == 200, answer.text
    assert "[mock]" in answer.text
    key = browser.post("/ai/api/me/virtual-keys", json={"name": "script"}, headers=headers).get_json()
    script = readme_app.app.test_client()  # no session: the key is enough
    bearer = {"Authorization": f"Bearer {key['virtual_key']['value']}"}
    assert script.post("/ai/v1/responses", json=MOCK, headers=bearer).status_code == 200

    readme_app.USERS["alice"].active = False
    assert refused(browser.post("/ai/v1/responses", json=MOCK, headers=headers))
    deadline = time.monotonic() + 10  # owners are re-checked within seconds
    while not refused(script.post("/ai/v1/responses", json=MOCK, headers=bearer)):
        assert time.monotonic() < deadline, "the deactivated user's key still works"
        time.sleep(0.2)
