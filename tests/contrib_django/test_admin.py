"""The admin: a key's plaintext is shown once, on the page answering its creation, and stored nowhere;
revocation is permanent; usage logs filter by user, key, provider, model, status and date, with totals
per user."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

import pytest

pytest.importorskip("django")

from django.contrib.auth.models import Permission, User  # noqa: E402
from django.contrib.sessions.models import Session  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from bifrost_asgi.governance.keys import hash_key, key_lookup_prefix  # noqa: E402
from bifrost_django.models import UsageLog, VirtualKey  # noqa: E402

pytestmark = pytest.mark.django_db

KEY_VALUE = re.compile(r"sk-bf-[A-Za-z0-9_-]{43}")


def add_key(client: Client, owner: User, **fields: Any) -> Any:
    form = {"name": "ci", "owner": str(owner.pk), "description": "", "is_active": "on",
            "allow_all_providers": "on", "provider_configs": "[]", "budgets": "[]",
            "rate_limit": "null", **fields}  # fmt: skip
    return client.post(reverse("admin:bifrost_virtualkey_add"), form)


def stored_text(key: VirtualKey) -> str:
    return " ".join(str(getattr(key, f.attname)) for f in VirtualKey._meta.concrete_fields)


def test_a_new_keys_plaintext_is_shown_once_and_never_stored(
    admin_client: Client, django_user_model: Any
) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw")
    response = add_key(admin_client, alice)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    [value] = KEY_VALUE.findall(response.content.decode())
    key = VirtualKey.objects.get()
    assert (key.owner, key.name, key.prefix) == (alice, "ci", key_lookup_prefix(value))
    assert key.hashed_key == hash_key(value)
    assert value not in stored_text(key)

    # Never again: not on the list, not on the key's page, not left in a stored message or the session.
    for url in (
        reverse("admin:bifrost_virtualkey_changelist"),
        reverse("admin:bifrost_virtualkey_change", args=[key.pk]),
    ):
        page = admin_client.get(url).content.decode()
        assert key.prefix in page
        assert value not in page and key.hashed_key not in page
    assert all(value not in str(s.get_decoded()) for s in Session.objects.all())
    assert value not in str(admin_client.cookies)


def test_the_hash_and_prefix_cannot_be_set_from_the_admin(
    admin_client: Client, django_user_model: Any
) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw")
    response = add_key(admin_client, alice, hashed_key=hash_key("sk-bf-chosen"), prefix="chosen")
    assert response.status_code == 200
    key = VirtualKey.objects.get()
    assert key.hashed_key != hash_key("sk-bf-chosen") and key.prefix != "chosen"


def test_invalid_limits_are_refused_by_the_cores_models(admin_client: Client, django_user_model: Any) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw")
    response = add_key(admin_client, alice, budgets='[{"max_limit": -5}]')
    assert response.status_code == 200  # the form again, with the error
    assert "max_limit" in response.content.decode()
    assert not VirtualKey.objects.exists()


def test_revocation_is_an_action_and_permanent(admin_client: Client, django_user_model: Any) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw")
    key, _ = VirtualKey.objects.create_key(name="ci", owner=alice)
    changelist = reverse("admin:bifrost_virtualkey_changelist")
    admin_client.post(changelist, {"action": "revoke_keys", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None and not key.is_active

    page = admin_client.get(reverse("admin:bifrost_virtualkey_change", args=[key.pk])).content.decode()
    assert 'name="is_active"' not in page  # shown, not editable
    key.is_active, key.revoked_at = True, None
    key.save()  # not even the shell can bring it back
    key.refresh_from_db()
    assert key.revoked_at is not None and not key.is_active


def log(owner: User | None, key: VirtualKey | None, **fields: Any) -> UsageLog:
    defaults: dict[str, Any] = {"request_id": "r", "timestamp": datetime(2026, 3, 10, 12, tzinfo=UTC),
                                "object": "responses", "provider": "openai", "model": "gpt-4o-mini",
                                "total_tokens": 10, "cost": 0.5}  # fmt: skip
    return UsageLog.objects.create(owner=owner, virtual_key=key, **{**defaults, **fields})


def totals(client: Client, **filters: str) -> dict[str, tuple[int, int, float | None]]:
    response = client.get(reverse("admin:bifrost_usagelog_changelist"), filters)
    assert response.status_code == 200
    return {
        row["user"]: (row["requests"], row["tokens"], row["cost"])
        for row in response.context["totals_per_user"]
    }


def test_usage_logs_filter_and_total_per_user(admin_client: Client, django_user_model: Any) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw")
    bob = django_user_model.objects.create_user("bob", password="pw")
    alice_key, _ = VirtualKey.objects.create_key(name="alice-key", owner=alice)
    bob_key, _ = VirtualKey.objects.create_key(name="bob-key", owner=bob)
    log(alice, alice_key)
    log(alice, alice_key, model="gpt-4o", total_tokens=30, cost=1.0)
    log(alice, alice_key, status="error", status_code=502, total_tokens=0, cost=None)
    log(bob, bob_key, provider="mock", model="mock-1", cost=0.0, timestamp=datetime(2026, 4, 1, tzinfo=UTC))

    assert totals(admin_client) == {"alice": (3, 40, 1.5), "bob": (1, 10, 0.0)}
    assert totals(admin_client, owner__id__exact=str(bob.pk)) == {"bob": (1, 10, 0.0)}
    assert totals(admin_client, virtual_key__id__exact=alice_key.pk) == {"alice": (3, 40, 1.5)}
    assert totals(admin_client, provider__exact="mock") == {"bob": (1, 10, 0.0)}
    assert totals(admin_client, model__exact="gpt-4o") == {"alice": (1, 30, 1.0)}
    assert totals(admin_client, status__exact="error") == {"alice": (1, 0, None)}
    assert totals(admin_client, timestamp__year="2026", timestamp__month="3") == {"alice": (3, 40, 1.5)}
    page = admin_client.get(reverse("admin:bifrost_usagelog_changelist")).content.decode()
    assert "Totals per user" in page


def test_usage_logs_are_read_only(admin_client: Client, django_user_model: Any) -> None:
    entry = log(None, None)
    assert admin_client.get(reverse("admin:bifrost_usagelog_add")).status_code == 403
    change = admin_client.get(reverse("admin:bifrost_usagelog_change", args=[entry.pk])).content.decode()
    assert 'name="total_tokens"' not in change


def form_values(page: str) -> dict[str, str]:
    """The add form as a browser would submit it untouched: each textarea's text, each input's value."""
    values = {name: html.unescape(text.strip()) for name, text in TEXTAREA.findall(page)}
    values.update((name, html.unescape(value)) for name, value in INPUT.findall(page))
    return values


TEXTAREA = re.compile(r'<textarea name="(\w+)"[^>]*>(.*?)</textarea>', re.S)
INPUT = re.compile(r'<input type="(?:text|number)" name="(\w+)" value="([^"]*)"')


def test_a_key_added_in_the_admin_starts_with_the_default_keys_limits(
    admin_client: Client, django_user_model: Any, settings: Any
) -> None:
    limits = {"budgets": [{"max_limit": 7, "reset_duration": "1d"}],
              "rate_limit": {"request_max_limit": 30, "request_reset_duration": "1m"}}  # fmt: skip
    settings.BIFROST = {**settings.BIFROST, "DEFAULT_KEY": {"allow_all_providers": True, **limits}}
    alice = django_user_model.objects.create_user("alice", password="pw")
    page = admin_client.get(reverse("admin:bifrost_virtualkey_add")).content.decode()
    form = form_values(page)
    assert 'name="allow_all_providers" checked' in page.replace(' id="id_allow_all_providers"', "")
    response = admin_client.post(
        reverse("admin:bifrost_virtualkey_add"),
        {
            **form,
            "name": "from-admin",
            "owner": str(alice.pk),
            "allow_all_providers": "on",
            "is_active": "on",
        },
    )
    assert response.status_code == 200
    key = VirtualKey.objects.get()
    assert (key.budgets, key.rate_limit, key.allow_all_providers) == (
        limits["budgets"],
        limits["rate_limit"],
        True,
    )


def test_the_owner_is_picked_by_an_autocomplete_over_users(
    admin_client: Client, django_user_model: Any
) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw")
    django_user_model.objects.create_user("bob", password="pw")
    page = admin_client.get(reverse("admin:bifrost_virtualkey_add")).content.decode()
    [owner] = re.findall(r'<select name="owner"[^>]*>', page)
    assert "admin-autocomplete" in owner and 'data-field-name="owner"' in owner
    found = admin_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "bifrost", "model_name": "virtualkey", "field_name": "owner", "term": "ali"},
    ).json()
    assert found["results"] == [{"id": str(alice.pk), "text": "alice"}]


def test_only_staff_allowed_to_change_keys_can_revoke_them(client: Client, django_user_model: Any) -> None:
    alice = django_user_model.objects.create_user("alice", password="pw")
    key, _ = VirtualKey.objects.create_key(name="ci", owner=alice)
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_virtualkey"))
    client.force_login(viewer)
    changelist = reverse("admin:bifrost_virtualkey_changelist")
    assert client.get(changelist).status_code == 200  # sees every user's keys
    client.post(changelist, {"action": "revoke_keys", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is None and key.is_active
