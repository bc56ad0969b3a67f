"""The shipped migrations match the models and apply (and unapply) on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("django")

from django.core.management import call_command  # noqa: E402

from .live import Database, manage, site_env  # noqa: E402


@pytest.mark.django_db  # makemigrations also checks the database's migration history
def test_the_models_need_no_new_migration() -> None:
    try:
        call_command("makemigrations", "bifrost", "--check", "--dry-run", verbosity=0)
    except SystemExit as exc:  # makemigrations --check exits 1 when a migration is missing
        pytest.fail(f"the models changed without a migration (exit {exc.code}): run makemigrations bifrost")


# Run in a fresh process, as a deploy step would: forwards, backwards to zero, forwards again.
_ROUND_TRIP = """
from django.core.management import call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

def tables():
    return sorted(t for t in connection.introspection.table_names() if t.startswith("bifrost_"))

call_command("migrate", interactive=False, verbosity=0)
recorded = MigrationRecorder(connection).applied_migrations()
print("applied", tables(), ("bifrost", "0001_initial") in recorded)
call_command("migrate", "bifrost", "zero", interactive=False, verbosity=0)
print("unapplied", tables())
call_command("migrate", interactive=False, verbosity=0)
call_command("migrate", check_unapplied=True, verbosity=0)
print("reapplied", tables())
"""
TABLES = [
    "bifrost_counter",
    "bifrost_customer",
    "bifrost_providergovernance",
    "bifrost_team",
    "bifrost_usagelog",
    "bifrost_virtualkey",
]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_migrations_apply_and_unapply(kind: str, tmp_path: Path) -> None:
    database = Database.postgres() if kind == "postgres" else Database.sqlite(tmp_path)
    try:
        out = manage(site_env(database, upstream="http://127.0.0.1:9"), "shell", "-c", _ROUND_TRIP).stdout
    finally:
        database.drop()
    assert f"applied {TABLES} True" in out
    assert "unapplied []" in out
    assert f"reapplied {TABLES}" in out
