"""``python -m example_project [--host H] [--port N]``: the example Django site under uvicorn (ASGI).

Applies the migrations (SQLite, ``example_project/db.sqlite3``), makes sure a ``demo`` user exists with
a fresh password, gives it a fresh virtual key for the command line, prints both, and serves the site.
"""

from __future__ import annotations

import argparse
import os
import secrets

import uvicorn

DEMO_USER = "demo"
CLI_KEY = "command line"


def _prepare() -> tuple[str, str]:
    """Migrate, then (re)set the demo user's password and command-line key: (password, key)."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    from django.contrib.auth.models import User

    from bifrost_django.conf import conf
    from bifrost_django.models import VirtualKey

    user, _ = User.objects.get_or_create(username=DEMO_USER)
    password = secrets.token_urlsafe(9)  # a new one each start: nothing to leak from an old terminal
    user.set_password(password)
    user.is_staff = user.is_superuser = True  # the admin shows keys and usage logs too
    user.save()
    for old in VirtualKey.objects.filter(owner=user, name=CLI_KEY, revoked_at__isnull=True):
        old.revoke()
    # The same limits as the keys users create for themselves (BIFROST["DEFAULT_KEY"]).
    _, value = VirtualKey.objects.create_key(name=CLI_KEY, owner=user, **conf.DEFAULT_KEY)
    return password, value


def main() -> None:
    parser = argparse.ArgumentParser(prog="example_project")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    password, key = _prepare()
    provider = (
        "OpenAI" if os.environ.get("OPENAI_API_KEY") else "the offline mock provider (no OPENAI_API_KEY)"
    )
    base = f"http://{args.host}:{args.port}"
    print(f"\nExample site at {base}/ with the gateway at {base}/ai, answering with {provider}.")
    print(f"Sign in as {DEMO_USER} / {password} to create keys, see usage and stream a prompt.\n")
    print("From the command line, with the demo user's key:\n")
    print(
        f"  curl -s {base}/ai/v1/chat/completions -H 'content-type: application/json' "
        f"-H 'Authorization: Bearer {key}' "
        """-d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}'\n"""
    )
    print(f"  or with the openai SDK: OpenAI(base_url='{base}/ai/v1', api_key='{key}')\n")
    # Lifespan on: the gateway starts with the server and flushes its usage logs when it stops.
    uvicorn.run("example_project.asgi:application", host=args.host, port=args.port, lifespan="on")


if __name__ == "__main__":
    main()
