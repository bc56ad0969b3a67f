"""The README's Python snippets, run as written: the mounted gateway with the README's own config.json,
the openai and litellm clients against it, and the complete Starlette and FastAPI apps whose users own
the keys, each under a real uvicorn server. (The Django and Flask READMEs' snippets are run by
``tests/contrib_django/test_readme.py`` and ``tests/contrib_flask/test_readme.py``.)
"""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.conftest import serve
from tests.media_upstream import AUDIO, EMBED_USAGE, TRANSCRIPT, MediaUpstream
from tests.snippets import (
    CLAIMED,
    CLIENT,
    FASTAPI_APP,
    LITELLM_CLIENT,
    MEDIA_CLIENT,
    MOUNT_APP,
    USERS_APP,
    clean_env,
    config_json,
    python_snippets,
    run_python,
    substitute,
    uvicorn,
)
from tests.upstream import ANSWER, Upstream

README = "README.md"


@pytest.mark.parametrize("readme", sorted(CLAIMED))
def test_every_python_snippet_of_the_readmes_is_run_by_a_test(readme: str) -> None:
    assert set(python_snippets(readme)) == CLAIMED[readme]


def test_the_mounted_gateway_serves_the_openai_and_litellm_clients(
    tmp_path: Path, upstream_url: str, upstream: Upstream
) -> None:
    snippets = python_snippets(README)
    config = config_json(README)
    for provider in ("openai", "groq"):  # the hosted providers the client snippet calls
        config["providers"][provider].setdefault("network_config", {})["base_url"] = upstream_url
    (tmp_path / "config.json").write_bytes(orjson.dumps(config))
    (tmp_path / "app.py").write_text(snippets[MOUNT_APP])
    env = clean_env(OPENAI_API_KEY="sk-test", GROQ_API_KEY="gsk-test")
    server = uvicorn("app:app", tmp_path, env)
    try:
        for name, script, printed in ((CLIENT, "client.py", 2), (LITELLM_CLIENT, "litellm_client.py", 1)):
            code = substitute(snippets[name], "http://localhost:8000", server.url)
            (tmp_path / script).write_text(code)
            assert run_python(tmp_path / script, env).splitlines() == [ANSWER] * printed
    finally:
        server.stop()
    sent = [(r.path, r.body["model"]) for r in upstream.state.requests]
    # litellm removed its "openai/" and the gateway its provider prefix: the upstream got the bare model.
    assert sent == [
        ("/v1/responses", "gpt-4o-mini"),
        ("/v1/chat/completions", "llama-3.1-8b-instant"),
        ("/v1/chat/completions", "gpt-4o-mini"),
    ]


def test_the_media_client_runs_against_the_mounted_gateway(tmp_path: Path) -> None:
    media = MediaUpstream()
    live = serve(media)
    snippets = python_snippets(README)
    config = config_json(README)
    config["providers"]["openai"].setdefault("network_config", {})["base_url"] = live.url
    (tmp_path / "config.json").write_bytes(orjson.dumps(config))
    (tmp_path / "app.py").write_text(snippets[MOUNT_APP])
    env = clean_env(OPENAI_API_KEY="sk-test", GROQ_API_KEY="gsk-test")
    server = uvicorn("app:app", tmp_path, env)
    try:
        (tmp_path / "media.py").write_text(
            substitute(snippets[MEDIA_CLIENT], "http://localhost:8000", server.url)
        )
        printed = run_python(tmp_path / "media.py", env).splitlines()
    finally:
        server.stop()
        live.stop()
    assert printed == [f"2 {EMBED_USAGE['prompt_tokens']}", TRANSCRIPT]
    assert (tmp_path / "hello.mp3").read_bytes() == AUDIO
    # The file the speech call wrote is what reached the transcription upstream.
    assert media.state.forms[-1].files["file"] == [("hello.mp3", AUDIO)]


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
def test_the_users_own_the_keys_app_runs_as_written(tmp_path: Path, framework: str) -> None:
    snippets = python_snippets(README)
    code = snippets[USERS_APP] + ("\n" + snippets[FASTAPI_APP] if framework == "fastapi" else "")
    (tmp_path / "app.py").write_text(code)
    server = uvicorn("app:app", tmp_path, clean_env())
    try:
        with httpx.Client(base_url=server.url, timeout=30) as browser:
            chat = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "hi"}]}
            assert browser.post("/ai/v1/chat/completions", json=chat).status_code == 401  # nobody signed in
            wrong = browser.post("/login", json={"username": "alice", "password": "guess"})
            assert wrong.status_code == 403
            assert (
                browser.post("/login", json={"username": "alice", "password": "alice-pw"}).status_code == 200
            )
            assert browser.get("/").text == "signed in as alice"
            headers = {"X-CSRFToken": browser.cookies["bifrost_csrf"]}
            answer = browser.post("/ai/v1/chat/completions", json=chat, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json()["choices"][0]["message"]["content"].startswith("[mock]")
            [default] = browser.get("/ai/api/me/virtual-keys").json()["virtual_keys"]
            assert (default["name"], default["owner"]) == ("default", "42")  # the user's `identity`
            created = browser.post("/ai/api/me/virtual-keys", json={"name": "laptop"}, headers=headers)
            value = created.json()["virtual_key"]["value"]
            assert browser.get("/ai/api/governance/virtual-keys").status_code == 401  # not staff
        client = openai.OpenAI(base_url=server.url + "/ai/v1", api_key=value, max_retries=0)
        assert client.responses.create(model="mock/mock-1", input="hi").output_text.startswith("[mock]")
    finally:
        server.stop()
