# ruff: noqa: F401, F811 (fixtures imported from _admin_gateway: pytest passes them by name)
"""Bifrost's usage-log analytics over HTTP: stats, histograms, the values a dashboard filters by, dropped
records, deletion and cost recalculation, over records written to the gateway's own log store."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bifrost_asgi.stores.logs import LogRecord, LogWriter
from tests.governance._admin_gateway import CHAT, admin, gateway_of, make_admin, ok

T0 = 1_741_608_000.0  # 2025-03-10T12:00:00Z, on the hour
HOUR = 3600


def record(i: int, **fields: Any) -> LogRecord:
    base: dict[str, Any] = {"id": f"r{i}", "timestamp": T0 + i, "object": "chat_completion",
                            "provider": "openai", "model": "gpt-4o-mini"}  # fmt: skip
    return LogRecord(**{**base, **fields})


def writer(admin: httpx.AsyncClient) -> LogWriter:
    logs = gateway_of(admin).logs
    assert logs is not None
    return logs


async def write(admin: httpx.AsyncClient, *records: LogRecord) -> None:
    await writer(admin).store.write(records)


def window(hours: float) -> dict[str, str]:
    return {"start_time": "2025-03-10T12:00:00Z", "end_time": f"{T0 + hours * HOUR:.0f}"}


# -- stats -------------------------------------------------------------------------------------------


async def test_stats_follow_the_search_filters_and_compare_to_the_previous_window(
    admin: httpx.AsyncClient,
) -> None:
    await write(
        admin,
        record(0, cost=1.0, latency=100, total_tokens=10),
        record(1, cost=2.0, latency=300, total_tokens=20, status="error", provider="anthropic"),
        record(2, timestamp=T0 - HOUR / 2, cost=4.0, latency=50, total_tokens=5),  # the window before
    )
    stats = await ok(admin.get("/api/logs/stats", params=window(0.5)))
    assert (stats["total_requests"], stats["total_cost"], stats["total_tokens"]) == (2, 3.0, 30)
    assert stats["success_rate"] == 50.0 and stats["average_latency"] == 200.0
    assert stats["has_previous_period"] is False and "previous" not in stats
    only_openai = await ok(admin.get("/api/logs/stats", params={"providers": "openai"}))
    assert only_openai["total_requests"] == 2

    compared = await ok(admin.get("/api/logs/stats", params={**window(0.5), "compare_to_previous": "true"}))
    assert compared["has_previous_period"] is True
    assert (compared["previous"]["total_requests"], compared["previous"]["total_cost"]) == (1, 4.0)
    bad = await admin.get("/api/logs/stats", params={"min_cost": "cheap"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "min_cost"


# -- histograms --------------------------------------------------------------------------------------


async def test_the_request_histogram_fills_every_bucket_of_the_range(admin: httpx.AsyncClient) -> None:
    await write(admin, record(0), record(1, status="error"), record(2, timestamp=T0 + 90 * 60))
    body = await ok(admin.get("/api/logs/histogram", params=window(2)))  # a 2h range: 10-minute buckets
    assert body["bucket_size_seconds"] == 600 and len(body["buckets"]) == 13
    first, tenth = body["buckets"][0], body["buckets"][9]
    assert first == {"timestamp": "2025-03-10T12:00:00.000Z", "count": 2, "success": 1, "error": 1,
                     "cancelled": 0}  # fmt: skip
    assert tenth["timestamp"] == "2025-03-10T13:30:00.000Z" and tenth["count"] == 1
    assert sum(b["count"] for b in body["buckets"]) == 3
    unbounded = await ok(admin.get("/api/logs/histogram"))  # no range: hourly, only buckets with data
    assert unbounded["bucket_size_seconds"] == 3600 and [b["count"] for b in unbounded["buckets"]] == [2, 1]


async def test_token_cost_and_model_histograms(admin: httpx.AsyncClient) -> None:
    await write(
        admin,
        record(0, input_tokens=10, output_tokens=5, total_tokens=15, cached_read_tokens=4, cost=0.5),
        record(1, model="gpt-4o", input_tokens=1, output_tokens=1, total_tokens=2, cost=1.5),
        record(2, model="gpt-4o", status="error", cost=None),
    )
    tokens = (await ok(admin.get("/api/logs/histogram/tokens")))["buckets"][0]
    assert tokens == {"timestamp": "2025-03-10T12:00:00.000Z", "prompt_tokens": 11, "completion_tokens": 6,
                      "total_tokens": 17, "cached_read_tokens": 4}  # fmt: skip
    cost = await ok(admin.get("/api/logs/histogram/cost"))
    assert cost["buckets"][0]["total_cost"] == 2.0 and cost["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert cost["buckets"][0]["by_model"] == {"gpt-4o-mini": 0.5, "gpt-4o": 1.5}
    models = await ok(admin.get("/api/logs/histogram/models"))
    assert models["buckets"][0]["by_model"]["gpt-4o"] == {
        "total": 2,
        "success": 1,
        "error": 1,
        "cancelled": 0,
    }


async def test_latency_and_throughput_histograms(admin: httpx.AsyncClient) -> None:
    await write(admin, *(record(i, latency=(i + 1) * 100, output_tokens=50) for i in range(10)))
    latency = (await ok(admin.get("/api/logs/histogram/latency")))["buckets"][0]
    assert latency["avg_latency"] == 550.0 and latency["total_requests"] == 10
    assert (latency["p90_latency"], latency["p95_latency"], latency["p99_latency"]) == (900.0, 1000.0, 1000.0)
    throughput = (await ok(admin.get("/api/logs/histogram/throughput")))["buckets"][0]
    assert throughput["total_completion_tokens"] == 500 and throughput["tokens_per_second"] == pytest.approx(
        500 / 5.5
    )


async def test_provider_and_dimension_breakdowns(admin: httpx.AsyncClient) -> None:
    await write(
        admin,
        record(0, team_id="t1", cost=1.0, total_tokens=3, latency=10),
        record(1, provider="anthropic", team_id="t2", cost=2.0, total_tokens=4, latency=30),
        record(2, provider="anthropic", cost=4.0, total_tokens=5, latency=50),
    )
    by_provider = await ok(admin.get("/api/logs/histogram/cost/by-provider"))
    assert by_provider["providers"] == ["anthropic", "openai"]
    assert by_provider["buckets"][0]["by_provider"] == {"openai": 1.0, "anthropic": 6.0}
    tokens = await ok(admin.get("/api/logs/histogram/tokens/by-provider"))
    assert tokens["buckets"][0]["by_provider"]["anthropic"]["total_tokens"] == 9
    latency = await ok(admin.get("/api/logs/histogram/latency/by-provider"))
    assert latency["buckets"][0]["by_provider"]["anthropic"]["avg_latency"] == 40.0

    teams = await ok(admin.get("/api/logs/histogram/cost/by-dimension", params={"dimension": "team_id"}))
    assert (teams["dimension"], teams["dimension_values"]) == ("team_id", ["t1", "t2"])
    assert teams["buckets"][0]["by_dimension"] == {"t1": 1.0, "t2": 2.0}
    missing = await admin.get("/api/logs/histogram/latency/by-dimension")
    assert missing.status_code == 400
    assert missing.json()["error"]["message"].startswith("Missing required query parameter: dimension")
    wrong = await admin.get("/api/logs/histogram/tokens/by-dimension", params={"dimension": "region"})
    assert wrong.json()["error"]["message"].startswith("Invalid dimension: region")


# -- filter data -------------------------------------------------------------------------------------


async def test_filter_data_lists_what_the_records_hold(admin: httpx.AsyncClient) -> None:
    team = (await ok(admin.post("/api/governance/teams", json={"name": "Research"})))["team"]
    await write(
        admin,
        record(0, virtual_key_id="vk1", virtual_key_name="ci", team_id=team["id"], selected_key_name="main"),
        record(1, provider="anthropic", model="claude-x", team_id="gone", owner="42"),
    )
    data = await ok(admin.get("/api/logs/filterdata"))
    assert data["models"] == ["claude-x", "gpt-4o-mini"] and data["providers"] == ["anthropic", "openai"]
    assert data["virtual_keys"] == [{"id": "vk1", "name": "ci"}]
    assert data["selected_keys"] == [{"id": "main", "name": "main"}]
    assert data["teams"] == [{"id": team["id"], "name": "Research"}, {"id": "gone", "name": "gone (deleted)"}]
    assert data["users"] == [{"id": "42", "name": "42"}] and data["metadata_keys"] == {}
    assert data["aliases"] == [] and data["routing_rules"] == []
    some = await ok(
        admin.get("/api/logs/filterdata", params={"dimensions": "models,teams,bogus", "q": "CLA"})
    )
    assert some == {"models": ["claude-x"], "teams": []}


# -- dropped, delete, recalculate --------------------------------------------------------------------


async def test_dropped_counts_records_whose_batch_could_not_be_written(
    admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await ok(admin.get("/api/logs/dropped")) == {"dropped_requests": 0}
    logs = writer(admin)

    async def broken(records: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(logs.store, "write", broken)
    for _ in range(3):
        assert (await admin.post("/v1/chat/completions", json=CHAT)).status_code == 200
    await logs.flush()
    assert await ok(admin.get("/api/logs/dropped")) == {"dropped_requests": 3}


async def test_delete_by_ids_or_filters_and_never_everything_by_accident(admin: httpx.AsyncClient) -> None:
    await write(admin, *(record(i, provider="openai" if i < 3 else "anthropic") for i in range(5)))
    refused = await admin.request("DELETE", "/api/logs")
    assert refused.status_code == 400 and refused.json()["error"]["message"] == "No log IDs provided"
    wrong = await admin.request("DELETE", "/api/logs", json={"ids": "r1"})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "ids"

    by_ids = await ok(admin.request("DELETE", "/api/logs", json={"ids": ["r0", "r1", "missing"]}))
    assert by_ids == {"message": "Logs deleted successfully", "deleted": 2}
    by_filter = await ok(admin.request("DELETE", "/api/logs", params={"providers": "anthropic"}))
    assert by_filter["deleted"] == 2
    left = await ok(admin.get("/api/logs"))
    assert [log["id"] for log in left["logs"]] == ["r2"]


async def test_recalculate_cost_reprices_matching_records(admin: httpx.AsyncClient) -> None:
    priced = dict(input_tokens=1_000_000, output_tokens=1_000_000, total_tokens=2_000_000)
    await write(
        admin,
        record(0, cost=None, **priced),
        record(1, cost=999.0, **priced),
        record(2, cost=None, model="no-such-model", **priced),
        record(3, cost=None, provider="anthropic", **priced, timestamp=T0 + 2 * HOUR),
    )
    body = {"filters": {"providers": ["openai"], "missing_cost_only": True}}
    result = await ok(admin.post("/api/logs/recalculate-cost", json=body))
    assert (result["total_matched"], result["updated"], result["skipped"], result["remaining"]) == (
        2,
        1,
        1,
        0,
    )
    assert result["status"] == "completed" and result["processed"] == 2
    costs = {
        log["id"]: log["cost"] for log in (await ok(admin.get("/api/logs", params={"limit": 10})))["logs"]
    }
    assert costs["r0"] == pytest.approx(0.15 + 0.6)  # gpt-4o-mini: $0.15 in and $0.60 out per million
    assert costs["r1"] == 999.0 and costs["r2"] is None and costs["r3"] is None

    everything = await ok(admin.post("/api/logs/recalculate-cost", json={"limit": 1}))
    assert (everything["total_matched"], everything["processed"], everything["remaining"]) == (4, 1, 3)
    assert await ok(admin.get("/api/logs/recalculate-cost/status")) == {"status": "idle"}
    assert (await admin.post("/api/logs/recalculate-cost/cancel")).status_code == 404
    bad = await admin.post("/api/logs/recalculate-cost", json={"limit": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
