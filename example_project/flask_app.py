"""The gateway inside a Flask app, for the app's own Flask-Login users.

    flask --app example_project.flask_app run                       # http://127.0.0.1:5000
    gunicorn -w 2 'example_project.flask_app:create_app()'          # the same under gunicorn

Sign in as ``alice`` / ``alice-password`` (or ``bob``, or ``admin`` for the management API). The home
page creates a virtual key, shows this month's usage, and streams a prompt from the browser's own
session: the call is charged to the signed-in user's default key. Answers come from OpenAI when
OPENAI_API_KEY is set, otherwise from the offline mock provider. Keys, limits and usage logs go to
``bifrost.db`` in the app's instance folder.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from typing import Any

from flask import Flask, abort, redirect, render_template_string, request, url_for
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from bifrost_flask import Bifrost

MODEL = "gpt-4o-mini"


@dataclass
class User:
    """What Flask-Login needs: an id, and whether the account is signed in and active."""

    id: str
    password_hash: str
    is_admin: bool = False
    is_active: bool = True
    is_authenticated: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return self.id


# A real app has a user table; the gateway only needs Flask-Login's user_loader to find users in it.
USERS = {
    name: User(name, generate_password_hash(f"{name}-password"), is_admin=name == "admin")
    for name in ("alice", "bob", "admin")
}


def gateway_config() -> dict[str, Any]:
    """Real OpenAI when OPENAI_API_KEY is set; otherwise the offline mock answers the same model name."""
    providers: dict[str, Any]
    if os.environ.get("OPENAI_API_KEY"):
        providers = {"openai": {"keys": [{"name": "default", "value": "env.OPENAI_API_KEY"}]}}
    else:
        providers = {"mock": {"keys": [{"value": "unused", "models": [MODEL]}]}}
    # Only signed-in users (or their keys) may spend: anonymous visitors get 401.
    return {"providers": providers, "client": {"enforce_auth_on_inference": True}}


def create_app(instance_path: str | None = None) -> Flask:
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(
        SECRET_KEY=os.environ.get("FLASK_SECRET_KEY", "dev-only-secret-change-me"),
        BIFROST_CONFIG=gateway_config(),
    )
    login_manager = LoginManager(app)
    login_manager.login_view = "login"
    login_manager.user_loader(USERS.get)
    bifrost = Bifrost(app)  # every gateway route under /ai, for current_user

    @app.route("/login", methods=["GET", "POST"])
    def login() -> str | Response:
        error = ""
        if request.method == "POST":
            # The login form carries the same CSRF token as the page's gateway calls.
            if not hmac.compare_digest(request.form.get("csrf", ""), bifrost.csrf_token()):
                abort(403)
            user = USERS.get(request.form.get("username", ""))
            if user and check_password_hash(user.password_hash, request.form.get("password", "")):
                login_user(user)
                return redirect(url_for("home"))
            error = "Wrong username or password."
        return render_template_string(LOGIN_PAGE, csrf=bifrost.csrf_token(), error=error)

    @app.post("/logout")
    @login_required
    def logout() -> Response:
        logout_user()
        return redirect(url_for("login"))

    @app.get("/")
    @login_required
    def home() -> str:
        return render_template_string(HOME_PAGE, user=current_user, csrf=bifrost.csrf_token(), model=MODEL)

    return app


LOGIN_PAGE = """<!doctype html>
<title>Sign in</title>
<h1>Sign in</h1>
<p>{{ error }}</p>
<form method="post">
  <input type="hidden" name="csrf" value="{{ csrf }}">
  <label>User <input name="username" value="alice"></label>
  <label>Password <input name="password" type="password" value="alice-password"></label>
  <button>Sign in</button>
</form>
"""

HOME_PAGE = """<!doctype html>
<title>AI gateway demo</title>
<h1>Hello, {{ user.id }}</h1>
<form method="post" action="{{ url_for('logout') }}"><button>Sign out</button></form>
{% if user.is_admin %}<p><a href="/ai/api/governance/virtual-keys">Every key (admin)</a></p>{% endif %}

<h2>Try a prompt</h2>
<p>Sent from this page with your session: charged to your default virtual key.</p>
<textarea id="prompt" rows="3" cols="60">Write a haiku about gateways.</textarea><br>
<button id="send">Stream it</button>
<pre id="answer"></pre>

<h2>Your keys</h2>
<button id="create">Create a key</button> <code id="new-key"></code>
<pre id="keys"></pre>

<h2>Your usage this month</h2>
<pre id="usage"></pre>

<script>
const csrf = {{ csrf|tojson }};  // echoed in X-CSRFToken: session writes without it are refused
const post = (path, body) => fetch(path, {method: "POST", body: JSON.stringify(body),
  headers: {"Content-Type": "application/json", "X-CSRFToken": csrf}});

async function refresh() {
  const keys = await (await fetch("/ai/api/me/virtual-keys")).json();
  document.getElementById("keys").textContent =
    keys.virtual_keys.map(k => `${k.name}  ${k.value_hint}  ${k.is_active ? "" : "(revoked)"}`).join("\\n");
  const usage = await (await fetch("/ai/api/me/usage")).json();
  document.getElementById("usage").textContent = JSON.stringify(usage.this_month, null, 2);
}

document.getElementById("create").onclick = async () => {
  const created = await (await post("/ai/api/me/virtual-keys", {name: "my script"})).json();
  // The plaintext is shown exactly once: use it as the api_key of the openai SDK.
  document.getElementById("new-key").textContent = created.virtual_key.value;
  refresh();
};

document.getElementById("send").onclick = async () => {
  const out = document.getElementById("answer");
  out.textContent = "";
  const prompt = document.getElementById("prompt").value;
  const response = await post("/ai/v1/responses", {model: {{ model|tojson }}, input: prompt, stream: true});
  if (!response.ok) { out.textContent = await response.text(); return; }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += value;
    const frames = buffer.split("\\n\\n");
    buffer = frames.pop();
    for (const frame of frames) {
      const data = frame.split("\\n").find(line => line.startsWith("data: "));
      const event = data && JSON.parse(data.slice(6));
      if (event && event.type === "response.output_text.delta") out.textContent += event.delta;
    }
  }
  setTimeout(refresh, 1000);  // usage logs are written in small batches
};
refresh();
</script>
"""

if __name__ == "__main__":  # python -m example_project.flask_app (`flask --app` finds create_app itself)
    create_app().run(debug=True)
