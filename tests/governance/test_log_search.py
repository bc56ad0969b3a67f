"""`GET /api/logs` search over the SQLite usage log: every filter, pages, sorting, stats, bad input."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bifrost_asgi.errors import BifrostError
from bifrost_asgi.stores.log_query import month_usage
from bifrost_asgi.stores.logs import LogRecord
from bifrost_asgi.stores.sqlite_logs import SQLiteLogStore, search_logs

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC).timestamp()


def record(id: str, **fields: Any) -> LogRecord:
    return LogRecord(
        id=id, timestamp=fields.pop("timestamp", T0), object=fields.pop("object", "responses"), **fields
    )


# Six requests that differ along every filtered column; `a` is the oldest, `f` the newest.
SEED = [
    record("a", timestamp=T0, provider="openai", model="gpt-4o", owner="alice", virtual_key_id="vk1",
           team_id="t1", selected_key_name="primary", latency=100, input_tokens=10, output_tokens=5,
           total_tokens=15, cost=0.01),
    record("b", timestamp=T0 + 60, provider="openai", model="gpt-4o-mini", owner="bob", virtual_key_id="vk2",
           customer_id="c1", selected_key_name="backup", latency=300, input_tokens=100, output_tokens=50,
           total_tokens=150, cost=0.05, stream=True),
    record("c", timestamp=T0 + 120, provider="anthropic", model="claude-3-5-haiku", owner="alice",
           virtual_key_id="vk1", team_id="t1", status="error", status_code=429, error_type="rate_limited",
           latency=50, cost=None),
    record("d", timestamp=T0 + 180, object="chat_completion", provider="anthropic", model="claude-3-5-haiku",
           owner="carol", virtual_key_id="vk3", latency=700, input_tokens=1000, output_tokens=200,
           total_tokens=1200, cost=0.2),
    record("e", timestamp=T0 + 240, object="count_tokens", provider="openai", model="gpt-4o", owner="bob",
           virtual_key_id="vk2", customer_id="c1", latency=20, input_tokens=30, total_tokens=30, cost=0.0),
    record("f", timestamp=T0 + 300, provider="gemini", model="gemini-2.0-flash", owner=None,
           virtual_key_id=None, latency=250, input_tokens=40, output_tokens=40, total_tokens=80, cost=None),
]  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteLogStore]:
    made = SQLiteLogStore(str(tmp_path / "logs.db"))
    await made.write(SEED)
    yield made
    await made.aclose()


async def search(store: SQLiteLogStore, **params: str | list[str]) -> dict[str, Any]:
    query = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    return await store.search(query)


def ids(result: dict[str, Any]) -> list[str]:
    return [log["id"] for log in result["logs"]]


async def test_defaults_newest_first_with_bifrost_pagination(store: SQLiteLogStore) -> None:
    result = await search(store)
    assert ids(result) == ["f", "e", "d", "c", "b", "a"]
    assert result["pagination"] == {
        "limit": 25, "offset": 0, "sort_by": "timestamp", "order": "desc", "total_count": 6
    }  # fmt: skip
    assert result["has_logs"] is True


async def test_entries_carry_rfc3339_time_booleans_and_token_usage(store: SQLiteLogStore) -> None:
    b = next(log for log in (await search(store))["logs"] if log["id"] == "b")
    assert b["timestamp"] == "2025-03-10T12:01:00.000Z"
    assert b["stream"] is True and b["usage_estimated"] is False
    assert b["token_usage"] == {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
    assert b["provider"] == "openai" and b["virtual_key_id"] == "vk2" and b["cost"] == 0.05
    assert "seq" not in b


@pytest.mark.parametrize(
    ("param", "value", "expected"),
    [
        ("providers", "anthropic", ["d", "c"]),
        ("models", "gpt-4o", ["e", "a"]),
        ("status", "error", ["c"]),
        ("objects", "chat_completion", ["d"]),
        ("virtual_key_ids", "vk1", ["c", "a"]),
        ("user_ids", "bob", ["e", "b"]),
        ("team_ids", "t1", ["c", "a"]),
        ("customer_ids", "c1", ["e", "b"]),
        ("selected_key_ids", "backup", ["b"]),
        ("providers", "nobody", []),
    ],
)
async def test_each_list_filter(store: SQLiteLogStore, param: str, value: str, expected: list[str]) -> None:
    assert ids(await search(store, **{param: value})) == expected


async def test_csv_and_repeated_values_are_the_same_filter(store: SQLiteLogStore) -> None:
    csv = await search(store, providers="gemini, anthropic")
    repeated = await search(store, providers=["gemini", "anthropic"])
    mixed = await search(store, providers=["gemini,", "anthropic,gemini"])
    assert ids(csv) == ids(repeated) == ids(mixed) == ["f", "d", "c"]


async def test_filters_combine_with_and(store: SQLiteLogStore) -> None:
    assert ids(await search(store, providers="openai", user_ids="bob", objects="responses")) == ["b"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"start_time": "2025-03-10T12:03:00Z"}, ["f", "e", "d"]),
        ({"end_time": "2025-03-10T12:01:00Z"}, ["b", "a"]),
        ({"start_time": "2025-03-10T13:01:00+01:00", "end_time": "2025-03-10T12:02:00Z"}, ["c", "b"]),
        ({"start_time": "2025-03-10T12:04:00"}, ["f", "e"]),  # no zone: UTC
        ({"start_time": str(int(T0 + 240))}, ["f", "e"]),  # unix seconds
        ({"start_time": f"{T0 + 299.5}"}, ["f"]),
    ],
)
async def test_time_range(store: SQLiteLogStore, params: dict[str, str], expected: list[str]) -> None:
    assert ids(await search(store, **params)) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"min_latency": "250"}, ["f", "d", "b"]),
        ({"max_latency": "50"}, ["e", "c"]),
        ({"min_latency": "99.5", "max_latency": "300"}, ["f", "b", "a"]),
        ({"min_tokens": "150"}, ["d", "b"]),
        ({"max_tokens": "15"}, ["c", "a"]),
        ({"min_cost": "0.05"}, ["d", "b"]),
        ({"max_cost": "0.01"}, ["e", "a"]),  # a NULL cost matches no cost range
    ],
)
async def test_numeric_ranges(store: SQLiteLogStore, params: dict[str, str], expected: list[str]) -> None:
    assert ids(await search(store, **params)) == expected


async def test_missing_cost_only_skips_errors_as_bifrost_does(store: SQLiteLogStore) -> None:
    # e cost 0 and f cost NULL were not priced; c has no cost either but failed, so nothing was owed.
    assert ids(await search(store, missing_cost_only="true")) == ["f", "e"]
    assert ids(await search(store, missing_cost_only="false")) == ["f", "e", "d", "c", "b", "a"]


async def test_content_search_and_unknown_filters_are_ignored(store: SQLiteLogStore) -> None:
    everything = ids(await search(store))
    assert ids(await search(store, content_search="hello")) == everything
    assert ids(await search(store, routing_rule_ids="r1", aliases="x", whatever="1")) == everything


async def test_limit_and_offset_page_through(store: SQLiteLogStore) -> None:
    first = await search(store, limit="2")
    second = await search(store, limit="2", offset="2")
    last = await search(store, limit="2", offset="5")
    assert (ids(first), ids(second), ids(last)) == (["f", "e"], ["d", "c"], ["a"])
    assert first["pagination"]["total_count"] == 6 and len(first["logs"]) == 2
    assert ids(await search(store, offset="6")) == []


async def test_limit_and_offset_are_clamped(tmp_path: Path) -> None:
    many = SQLiteLogStore(str(tmp_path / "many.db"))
    await many.write([record(f"r{i:03}", timestamp=T0 + i) for i in range(130)])
    big = await search(many, limit="1000")
    assert len(big["logs"]) == 100 and big["pagination"]["limit"] == 100
    assert big["pagination"]["total_count"] == 130
    small = await search(many, limit="0", offset="-5")
    assert small["pagination"]["limit"] == 1 and small["pagination"]["offset"] == 0
    assert ids(small) == ["r129"]
    default = await search(many, limit=" ")  # blank means absent
    assert len(default["logs"]) == 25


@pytest.mark.parametrize(
    ("sort_by", "order", "expected"),
    [
        ("timestamp", "asc", ["a", "b", "c", "d", "e", "f"]),
        ("latency", "desc", ["d", "b", "f", "a", "c", "e"]),
        ("latency", "asc", ["e", "c", "a", "f", "b", "d"]),
        ("tokens", "desc", ["d", "b", "f", "e", "a", "c"]),
        ("cost", "desc", ["d", "b", "a", "e", "f", "c"]),  # NULLs last when descending (SQLite)
        ("cost", "ASC", ["c", "f", "e", "a", "b", "d"]),  # ties (NULL, NULL) in the same direction: by seq
    ],
)
async def test_sorting(store: SQLiteLogStore, sort_by: str, order: str, expected: list[str]) -> None:
    result = await search(store, sort_by=sort_by, order=order)
    assert ids(result) == expected
    assert result["pagination"]["sort_by"] == sort_by and result["pagination"]["order"] == order.lower()


async def test_equal_sort_values_page_without_repeats(tmp_path: Path) -> None:
    same = SQLiteLogStore(str(tmp_path / "same.db"))
    await same.write([record(f"s{i}", latency=10) for i in range(7)])
    pages = [ids(await search(same, sort_by="latency", limit="3", offset=str(o))) for o in (0, 3, 6)]
    seen = [i for page in pages for i in page]
    assert sorted(seen) == [f"s{i}" for i in range(7)] and len(set(seen)) == 7


async def test_stats_cover_the_filtered_set_not_the_page(store: SQLiteLogStore) -> None:
    stats = (await search(store, limit="1"))["stats"]
    assert stats["total_requests"] == 6
    assert stats["success_rate"] == pytest.approx(100 * 5 / 6)
    assert stats["user_facing_success_rate"] == stats["success_rate"]
    assert stats["user_facing_total_requests"] == 6
    assert stats["average_latency"] == pytest.approx((100 + 300 + 50 + 700 + 20 + 250) / 6)
    assert stats["total_tokens"] == 15 + 150 + 1200 + 30 + 80
    assert stats["prompt_tokens"] == 10 + 100 + 1000 + 30 + 40
    assert stats["completion_tokens"] == 5 + 50 + 200 + 40
    assert stats["total_cost"] == pytest.approx(0.26)
    anthropic = (await search(store, providers="anthropic"))["stats"]
    assert anthropic["total_requests"] == 2 and anthropic["success_rate"] == 50.0
    assert anthropic["total_cost"] == pytest.approx(0.2) and anthropic["total_tokens"] == 1200


async def test_nothing_matches_but_logs_exist(store: SQLiteLogStore) -> None:
    result = await search(store, models="none")
    assert result["logs"] == [] and result["has_logs"] is True
    assert result["stats"] == {
        "total_requests": 0, "success_rate": 0.0, "user_facing_success_rate": 0.0,
        "user_facing_total_requests": 0, "average_latency": 0.0, "total_tokens": 0, "prompt_tokens": 0,
        "completion_tokens": 0, "total_cost": 0.0,
    }  # fmt: skip


async def test_empty_store_has_no_logs(tmp_path: Path) -> None:
    result = await search(SQLiteLogStore(str(tmp_path / "empty.db")))
    assert result["has_logs"] is False and result["pagination"]["total_count"] == 0


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("limit", "ten"),
        ("limit", "2.5"),
        ("offset", "x"),
        ("min_latency", "fast"),
        ("max_latency", "nan"),
        ("min_tokens", "1.5"),
        ("max_tokens", "99999999999999999999999"),  # beyond SQLite's 64-bit integers
        ("min_cost", "inf"),
        ("max_cost", "$1"),
        ("start_time", "yesterday"),
        ("end_time", "2025-13-01T00:00:00Z"),
        ("sort_by", "name"),
        ("sort_by", "timestamp; DROP TABLE bifrost_logs"),
        ("order", "sideways"),
        ("missing_cost_only", "maybe"),
    ],
)
async def test_bad_values_are_a_400_naming_the_param(store: SQLiteLogStore, param: str, value: str) -> None:
    with pytest.raises(BifrostError) as caught:
        await search(store, **{param: value})
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert param in caught.value.message


async def test_too_many_values_is_a_400(store: SQLiteLogStore) -> None:
    with pytest.raises(BifrostError) as caught:
        await search(store, models=",".join(f"m{i}" for i in range(501)))
    assert caught.value.status_code == 400 and caught.value.param == "models"


INJECTIONS = [
    "openai' OR '1'='1",
    "x') OR 1=1 --",
    "openai); DROP TABLE bifrost_logs; --",
    "%",
    "*",
]


@pytest.mark.parametrize("value", INJECTIONS)
async def test_injection_attempts_are_data(tmp_path: Path, value: str) -> None:
    store = SQLiteLogStore(str(tmp_path / "inj.db"))
    await store.write([*SEED, record("evil", provider=value, owner=value)])
    for param in ("providers", "user_ids"):
        result = await search(store, **{param: [value]})
        assert ids(result) == ["evil"], param  # matched literally, as a value, and nothing else
    assert (await search(store))["pagination"]["total_count"] == 7  # the table is intact


def test_search_logs_runs_on_any_connection_factory(tmp_path: Path) -> None:
    path = str(tmp_path / "direct.db")
    store = SQLiteLogStore(path)
    store.connection()  # creates the schema
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        result = search_logs(lambda: conn, {"limit": ["5"]})
    finally:
        conn.close()
    assert result["logs"] == [] and result["pagination"]["limit"] == 5 and result["has_logs"] is False


async def test_month_usage_counts_one_key_from_the_first_of_the_month(tmp_path: Path) -> None:
    store = SQLiteLogStore(str(tmp_path / "month.db"))
    feb = datetime(2025, 2, 28, 23, 59, tzinfo=UTC).timestamp()
    await store.write([
        record("old", timestamp=feb, virtual_key_id="vk1", total_tokens=999, cost=9.0),
        record("m1", virtual_key_id="vk1", total_tokens=10, cost=0.5),
        record("m2", virtual_key_id="vk1", total_tokens=20, cost=0.25, status="error"),
        record("other", virtual_key_id="vk2", total_tokens=40, cost=1.0),
    ])  # fmt: skip
    totals = await month_usage(store, "vk1", T0)
    assert totals == {"since": "2025-03-01T00:00:00.000Z", "requests": 2, "tokens": 30, "cost": 0.75}


async def test_a_large_batch_of_mixed_records_is_stored_whole_and_in_order(tmp_path: Path) -> None:
    """A batch goes in as multi-row statements of runs of records that set the same columns: every value
    (flags, None, text) comes back as written, and `seq` keeps the order the records were submitted in."""
    store = SQLiteLogStore(str(tmp_path / "logs.db"))
    shapes = [
        {"provider": "openai", "cost": 0.5, "stream": True, "input_tokens": 3},
        {"status": "error", "status_code": 429, "error_type": "rate_limited", "error_message": "slow down"},
        {"cache_hit": "direct", "usage_estimated": True, "owner": "alice"},
    ]
    # Runs of 1 to 150 rows of one shape: every chunk size (100, 10, 1) and every change of shape.
    written = [
        record(f"r{len(shapes) * 150 * run + i}", **shapes[run % len(shapes)])
        for run, size in enumerate((150, 1, 23, 7, 111, 2))
        for i in range(size)
    ]
    await store.write(written)
    conn = sqlite3.connect(store.path)
    names = ", ".join(("id", "provider", "cost", "stream", "input_tokens", "status", "status_code",
                       "error_type", "error_message", "cache_hit", "usage_estimated", "owner"))  # fmt: skip
    stored = conn.execute(f"SELECT {names} FROM bifrost_logs ORDER BY seq").fetchall()
    conn.close()
    assert stored == [
        (
            r.id,
            r.provider,
            r.cost,
            int(r.stream),
            r.input_tokens,
            r.status,
            r.status_code,
            r.error_type,
            r.error_message,
            r.cache_hit,
            int(r.usage_estimated),
            r.owner,
        )  # fmt: skip
        for r in written
    ]
    assert len(stored) == 294
    await store.aclose()


async def test_a_batch_waits_its_turn_when_another_process_is_writing(tmp_path: Path) -> None:
    """A batch is written on the event loop only when the file is free; while another connection (another
    worker) holds the write lock it waits in the writer thread — the loop keeps serving — and is written
    whole once the lock is released."""
    import asyncio
    import threading

    path = str(tmp_path / "logs.db")
    made = SQLiteLogStore(path)
    await made.write(SEED[:1])  # the schema exists; the loop's connection is open
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        await made.write(SEED[1:])
    finally:
        ticker.cancel()
    assert ticks >= 10  # the loop ran while the batch waited for the lock
    assert sorted(ids(await search(made))) == ["a", "b", "c", "d", "e", "f"]
    other.close()
    await made.aclose()


async def test_batches_back_to_back_do_not_grow_the_wal_without_end(tmp_path: Path) -> None:
    """Batches go to the loop's connection, which never checkpoints; once a second the writer thread
    checkpoints and writes that batch, so the WAL starts over (its header's checkpoint sequence number
    counts the restarts) instead of holding every batch ever sent."""
    import time

    path = tmp_path / "logs.db"
    made = SQLiteLogStore(str(path))
    written = 0
    try:
        deadline = time.monotonic() + 2.2
        while time.monotonic() < deadline:
            await made.write([record(f"r{written + i}", content="x" * 500) for i in range(50)])
            written += 50
        header = Path(f"{path}-wal").read_bytes()[:32]
        restarts = int.from_bytes(header[12:16], "big")  # the WAL header's checkpoint sequence number
        assert written > 2000  # batches did go back to back
        assert restarts >= 2  # at the start and a second later, at least
        assert path.stat().st_size > written * 500 / 4  # the checkpoints moved the rows to the file
    finally:
        await made.aclose()
