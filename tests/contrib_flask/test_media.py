"""Uploads and speech through the Flask extension: a signed-in user's multipart upload survives a CSRF
check that reads the form (Flask-WTF's), reaches the upstream byte for byte, and speech audio is
handed to the WSGI server as it comes."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import cast

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_login")
csrf_module = pytest.importorskip("flask_wtf.csrf")

from flask import Flask  # noqa: E402

from bifrost_flask import Bifrost  # noqa: E402
from tests.contrib_flask.hostapp import UserTable, flask_login  # noqa: E402
from tests.media_upstream import TRANSCRIPT, MediaUpstream, running  # noqa: E402

AUDIO = b"RIFF" + bytes(range(256)) * 64 + b"\r\n--x--\r\n"


def upload() -> tuple[io.BytesIO, str]:
    return io.BytesIO(AUDIO), "talk.wav"


@pytest.fixture(scope="module")
def media() -> Iterator[tuple[MediaUpstream, str]]:
    with running(MediaUpstream()) as served:
        yield served


@pytest.fixture
def host(media: tuple[MediaUpstream, str], tmp_path: Path) -> Iterator[Flask]:
    """A host with Flask-WTF's CSRFProtect (its app-wide check off until the test signs in)."""
    app = Flask(__name__, instance_path=str(tmp_path))
    config = {
        "providers": {
            "openai": {
                "keys": [{"value": "sk-up"}],
                "network_config": {"base_url": media[1], "max_retries": 0},
            },
            "mock": {},
        },
        "governance": {"store": {"type": "sqlite", "path": str(tmp_path / "bifrost.db")}},
    }
    app.config.update(SECRET_KEY="s", BIFROST_CONFIG=config, WTF_CSRF_CHECK_DEFAULT=False)
    users = UserTable(tmp_path / "users.db")
    flask_login.LoginManager(app).user_loader(users.get)
    csrf_module.CSRFProtect(app)
    bifrost = Bifrost(app)

    @app.post("/login/<name>")
    def login(name: str) -> dict[str, str]:
        flask_login.login_user(users.get(name))
        return {"csrf": bifrost.csrf_token()}

    media[0].state.reset()
    yield app
    app.extensions["bifrost"].runtime.close()


def test_a_session_upload_passes_a_form_reading_csrf_check(
    host: Flask, media: tuple[MediaUpstream, str]
) -> None:
    app = host
    client = app.test_client()
    token = client.post("/login/alice").get_json()["csrf"]
    app.config["WTF_CSRF_CHECK_DEFAULT"] = True
    form = {"model": "openai/whisper-1", "file": upload()}
    refused = client.post("/ai/v1/audio/transcriptions", data=form, content_type="multipart/form-data")
    assert refused.status_code == 403
    served = client.post(
        "/ai/v1/audio/transcriptions",
        data={"model": "openai/whisper-1", "file": upload()},
        content_type="multipart/form-data",
        headers={"X-CSRFToken": token},
    )
    assert served.status_code == 200, served.text
    assert served.get_json()["text"] == TRANSCRIPT
    received = media[0].state.forms[-1]
    assert received.files["file"] == [("talk.wav", AUDIO)] and received.fields["model"] == ["whisper-1"]


def test_speech_is_not_buffered(host: Flask) -> None:
    client = host.test_client()
    token = client.post("/login/bob").get_json()["csrf"]
    body = {"model": "openai/tts-1", "voice": "alloy", "input": "Hello"}
    r = client.post("/ai/v1/audio/speech", json=body, headers={"X-CSRFToken": token}, buffered=False)
    assert r.status_code == 200 and r.headers["Content-Type"] == "audio/mpeg"
    assert r.headers["X-Accel-Buffering"] == "no" and "Content-Length" not in r.headers
    pieces = [bytes(piece) for piece in cast(Iterable[bytes], r.response)]
    assert len(pieces) > 1 and b"".join(pieces) == b"".join(bytes([i]) * 2048 for i in range(5))
