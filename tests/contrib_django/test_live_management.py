"""Bifrost's management API in the Django app, over real servers (uvicorn and gunicorn, two workers each,
SQLite and PostgreSQL): teams, customers and provider limits live in the site's database (the ORM stores),
the limits they set hold across the workers, and the log analytics read the ORM log store."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("django")

from .live import Site  # noqa: E402
from .test_live import People, wait_for  # noqa: E402
from .test_live import people as people  # noqa: E402 (the fixture)

GOV = "/ai/api/governance"


def chat(site: Site, value: str) -> int:
    body = {"model": "mock/mock-1", "messages": [{"role": "user", "content": "hi"}]}
    return site.http.post("/ai/v1/chat/completions", json=body, headers={"x-bf-vk": value}).status_code


def test_teams_customers_and_provider_limits_in_the_sites_database(site: Site, people: People) -> None:
    staff, _ = people.sign_in("staff-", staff=True)

    def call(method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = staff.call(method, GOV + path, body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    acme = call("POST", "/customers", {"name": "Acme", "budget": {"max_limit": 100, "reset_duration": "1M"}})
    team = call(
        "POST",
        "/teams",
        {
            "name": "ML",
            "customer_id": acme["customer"]["id"],
            "rate_limit": {"request_max_limit": 3, "request_reset_duration": "1h"},
        },
    )["team"]
    member = {"team_id": team["id"], "allow_all_providers": True}
    keys = [call("POST", "/virtual-keys", {"name": f"k{i}", **member})["virtual_key"] for i in range(2)]

    # The team's 3 requests are shared by its keys, whichever worker serves them.
    codes = [chat(site, keys[i % 2]["value"]) for i in range(4)]
    assert codes == [200, 200, 200, 429]
    shown = call("GET", f"/teams/{team['id']}")["team"]
    assert shown["rate_limit"]["request_current_usage"] == 3 and shown["virtual_key_count"] == 2
    customer = call("GET", f"/customers/{acme['customer']['id']}")["customer"]
    assert [t["id"] for t in customer["teams"]] == [team["id"]]
    # The site is shared with other tests: look only at what this one made.
    owned = [b for b in call("GET", "/budgets")["budgets"] if b.get("customer_id") == acme["customer"]["id"]]
    assert [b["max_limit"] for b in owned] == [100]

    # Deleting the team detaches its keys (the foreign key is set to NULL); its limit goes with it.
    assert call("DELETE", f"/teams/{team['id']}") == {"message": "Team deleted successfully"}
    assert call("GET", f"/virtual-keys/{keys[0]['id']}")["virtual_key"]["team_id"] is None
    wait_for(lambda: chat(site, keys[0]["value"]) == 200)  # other workers' caches expire within seconds

    provider = call(
        "PUT", "/providers/mock", {"rate_limit": {"request_max_limit": 1, "request_reset_duration": "1h"}}
    )
    assert provider["provider"]["rate_limit"]["request_max_limit"] == 1
    wait_for(lambda: chat(site, keys[1]["value"]) == 429)  # the provider's own limit, now spent
    assert [p["provider"] for p in call("GET", "/providers")["providers"]] == ["mock"]
    call("DELETE", "/providers/mock")
    wait_for(lambda: chat(site, keys[1]["value"]) == 200)

    data = staff.call("GET", "/ai/api/logs/filterdata?dimensions=virtual_keys,models", csrf=False).json()
    assert "mock-1" in data["models"] and {"k0", "k1"} <= {k["name"] for k in data["virtual_keys"]}
    histogram = staff.call("GET", "/ai/api/logs/histogram", csrf=False).json()
    assert sum(b["count"] for b in histogram["buckets"]) >= 5
