"""The admin for what the management API manages: provider limits, and the teams' and customers' rate
limits and budgets, validated as the API validates them (one budget per reset window)."""

from __future__ import annotations

import pytest

pytest.importorskip("django")

from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from bifrost_django.models import ProviderGovernance, Team  # noqa: E402

pytestmark = pytest.mark.django_db

LIMIT = '{"request_max_limit": 60, "request_reset_duration": "1m"}'
TWO_A_DAY = '[{"max_limit": 1, "reset_duration": "1d"}, {"max_limit": 2, "reset_duration": "1d"}]'


def test_provider_limits_are_added_and_listed(admin_client: Client) -> None:
    form = {
        "provider": "openai",
        "budgets": '[{"max_limit": 50, "reset_duration": "1M"}]',
        "rate_limit": LIMIT,
    }
    response = admin_client.post(reverse("admin:bifrost_providergovernance_add"), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    stored = ProviderGovernance.objects.get()
    assert stored.budgets[0]["max_limit"] == 50 and stored.rate_limit["request_max_limit"] == 60
    listing = admin_client.get(reverse("admin:bifrost_providergovernance_changelist")).content.decode()
    assert "openai" in listing


@pytest.mark.parametrize(
    ("url", "form", "problem"),
    [
        ("admin:bifrost_providergovernance_add",
         {"provider": "openai", "budgets": TWO_A_DAY, "rate_limit": "null"},
         "duplicate reset_duration in budgets: 1d"),
        ("admin:bifrost_team_add", {"id": "t1", "name": "ML", "budgets": TWO_A_DAY, "rate_limit": "null"},
         "duplicate reset_duration in budgets: 1d"),
        ("admin:bifrost_team_add", {"id": "t1", "name": "ML", "budgets": "[]",
                                    "rate_limit": '{"request_max_limit": 0}'}, "request_max_limit"),
        ("admin:bifrost_customer_add", {"id": "c1", "name": "Acme", "budgets": "[]",
                                        "rate_limit": '{"token_max_limit": "lots"}'}, "token_max_limit"),
    ],
)  # fmt: skip
def test_limits_are_validated_as_the_api_validates_them(
    admin_client: Client, url: str, form: dict[str, str], problem: str
) -> None:
    response = admin_client.post(reverse(url), form)
    assert response.status_code == 200 and problem in response.content.decode()
    assert not ProviderGovernance.objects.exists() and not Team.objects.exists()


def test_a_teams_rate_limit_is_edited_in_the_admin(admin_client: Client) -> None:
    form = {"id": "t1", "name": "ML", "budgets": "[]", "rate_limit": LIMIT}
    assert admin_client.post(reverse("admin:bifrost_team_add"), form).status_code == 302
    assert Team.objects.get().rate_limit == {"request_max_limit": 60, "request_reset_duration": "1m"}
