"""The Python snippets of the READMEs, as a reader copies them, for the tests that run them.

Every ```python block opens with a comment naming the file it belongs in (``# app.py``, ``# settings.py
(added to ...)``); that first line is the snippet's name here. `CLAIMED` lists, per README, the snippets
some test runs: `tests/test_snippets.py` checks that every snippet is claimed, so a new one cannot be
added without a test that runs it.

The runners change only what a reader must supply themselves, each with `substitute`, which fails when
the text to replace is gone: the server's address for ``http://localhost:8000``, a real key for
``"sk-bf-..."``, provider keys in the environment and providers' ``base_url`` pointed at the
upstream-shaped test server.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests._procs import die_with_test_run, stop_process_group

REPO = Path(__file__).resolve().parents[1]

# -- the snippets, by name -----------------------------------------------------------------------------

MOUNT_APP = "# app.py: the gateway mounted in a Starlette app"
CLIENT = "# client.py"
LITELLM_CLIENT = "# litellm_client.py"
MEDIA_CLIENT = "# media.py"
USERS_APP = "# app.py: your users own the keys (Starlette)"
FASTAPI_APP = "# app.py: the same with FastAPI"
DJANGO_SETTINGS = "# settings.py (added to the end of the file django-admin startproject made)"
DJANGO_URLS = "# urls.py (added to the end of the project's urls.py)"
DJANGO_ASGI = "# asgi.py (the whole file)"
FLASK_APP = "# app.py"

CLAIMED = {
    "README.md": {MOUNT_APP, CLIENT, LITELLM_CLIENT, MEDIA_CLIENT, USERS_APP, FASTAPI_APP},
    "contrib/django/README.md": {DJANGO_SETTINGS, DJANGO_URLS, DJANGO_ASGI, CLIENT},
    "contrib/flask/README.md": {FLASK_APP},
}

_BLOCK = re.compile(r"^(?P<indent> *)```(?P<lang>\w+)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)


def _blocks(readme: str, lang: str) -> list[str]:
    text = (REPO / readme).read_text()
    return [textwrap.dedent(m["body"]) for m in _BLOCK.finditer(text) if m["lang"] == lang]


def python_snippets(readme: str) -> dict[str, str]:
    """``{first line: code}`` for every ```python block of ``readme`` (a path from the repository root)."""
    found: dict[str, str] = {}
    for code in _blocks(readme, "python"):
        name = code.splitlines()[0]
        assert name.startswith("# "), f"{readme}: a Python snippet must open with '# <file>': {name!r}"
        assert name not in found, f"{readme}: two Python snippets open with {name!r}"
        found[name] = code
    return found


def config_json(readme: str) -> dict[str, Any]:
    """The README's ``config.json`` example: its ```json block with a ``providers`` section."""
    [config] = [orjson.loads(b) for b in _blocks(readme, "json") if b.lstrip().startswith('{\n  "providers"')]
    assert isinstance(config, dict)
    return config


def substitute(code: str, old: str, new: str) -> str:
    assert old in code, f"the snippet no longer contains {old!r}: update its test"
    return code.replace(old, new)


# -- running them ----------------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the developer's keys, proxies or the test project's Django settings."""
    dropped = (
        "BIFROST_",
        "OPENAI_",
        "ANTHROPIC_",
        "GROQ_",
        "DJANGO_",
        "DJTEST_",
        "HTTP_PROXY",
        "HTTPS_PROXY",
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(dropped)}
    # litellm reads its model price map from the network at import unless told to use its own copy.
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", PYTHONUNBUFFERED="1", **extra)
    return env


def run_python(script: Path, env: dict[str, str]) -> str:
    """Run ``script`` as a reader would (``python script.py`` in its folder); its standard output."""
    done = subprocess.run(
        [sys.executable, script.name], cwd=script.parent, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A command serving HTTP on a free loopback port, as a child process, stopped with `stop`."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], *, ready_path: str = "/") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"server-{self.port}.log"
        command = [arg.replace("{port}", str(self.port)) for arg in argv]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_test_run,
            )  # fmt: skip
        try:
            self._wait(ready_path)
        except BaseException:
            self.stop()
            raise

    def _wait(self, path: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.url + path, timeout=2)
                return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{' '.join(self.process.args)} did not start:\n{self.output()}")  # type: ignore[arg-type]
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        stop_process_group(self.process)


def uvicorn(app: str, cwd: Path, env: dict[str, str], *options: str) -> Server:
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "{port}"]
    return Server([*argv, "--lifespan", "on", "--log-level", "warning", *options], cwd, env)
