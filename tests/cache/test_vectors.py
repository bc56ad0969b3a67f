"""The semantic cache's vector stores: one contract, run over memory, SQLite (sqlite-vec) and Qdrant
(qdrant-client's local mode: the calls a Qdrant server gets), plus what only some of them have."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import sys
from collections.abc import AsyncIterator, Callable
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import AsyncQdrantClient, models

from bifrost_asgi.cache.vectors import (
    MemoryVectorStore,
    VectorStore,
    build_vector_store,
    sibling_path,
)
from bifrost_asgi.cache.vectors_qdrant import QdrantVectorStore
from bifrost_asgi.cache.vectors_sqlite import SQLiteVectorStore
from bifrost_asgi.config import ConfigError
from bifrost_asgi.errors import BifrostError
from tests._procs import report_to

DIM = 4
T0 = 1_000_000.0
LATER = T0 + 3600  # every entry's expiry in the contract tests, unless the test is about expiry

# Unit-ish vectors with known cosine similarities to NORTH: 1, ~0.995, ~0.707, 0, -1.
NORTH = [1.0, 0.0, 0.0, 0.0]
NEAR_NORTH = [1.0, 0.1, 0.0, 0.0]
NORTH_EAST = [1.0, 1.0, 0.0, 0.0]
EAST = [0.0, 1.0, 0.0, 0.0]
SOUTH = [-1.0, 0.0, 0.0, 0.0]

Factory = Callable[[Path], VectorStore]

FACTORIES: dict[str, Factory] = {
    "memory": lambda tmp: build_vector_store({"type": "memory"}, dimension=DIM, default_sqlite_path=None),
    "sqlite": lambda tmp: build_vector_store(None, dimension=DIM, default_sqlite_path=str(tmp / "gw.db")),
    "qdrant": lambda tmp: build_vector_store(
        {"enabled": True, "type": "qdrant", "config": {"location": ":memory:"}},
        dimension=DIM,
        default_sqlite_path=None,
    ),
}


@pytest.fixture(params=sorted(FACTORIES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    made = FACTORIES[request.param](tmp_path)
    yield made
    await made.aclose()


async def test_a_similar_vector_is_found_above_the_threshold_and_not_below(store: VectorStore) -> None:
    await store.add("ns", "e1", NORTH, b"answer", LATER)

    hit = await store.nearest("ns", NEAR_NORTH, threshold=0.99, now=T0)
    assert hit is not None
    assert (hit.entry_id, hit.payload) == ("e1", b"answer")
    assert hit.similarity == pytest.approx(0.995037, abs=1e-4)
    assert await store.nearest("ns", NORTH_EAST, threshold=0.8, now=T0) is None
    assert await store.nearest("ns", NORTH_EAST, threshold=0.7, now=T0) is not None


async def test_the_most_similar_of_several_is_returned(store: VectorStore) -> None:
    for entry_id, vector in [("east", EAST), ("north", NORTH), ("north-east", NORTH_EAST), ("s", SOUTH)]:
        await store.add("ns", entry_id, vector, entry_id.encode(), LATER)

    hit = await store.nearest("ns", NEAR_NORTH, threshold=-1.0, now=T0)
    assert hit is not None and hit.entry_id == "north"
    hit = await store.nearest("ns", [0.2, 1.0, 0.0, 0.0], threshold=-1.0, now=T0)
    assert hit is not None and (hit.entry_id, hit.payload) == ("east", b"east")
    hit = await store.nearest("ns", [-1.0, -0.1, 0.0, 0.0], threshold=-1.0, now=T0)
    assert hit is not None and hit.entry_id == "s"


async def test_a_search_never_returns_another_namespaces_entry(store: VectorStore) -> None:
    # Namespaces that share prefixes, and the same entry id in each: the leak Bifrost once shipped.
    await store.add("vk-1/user-a", "same-id", NORTH, b"alice's answer", LATER)
    await store.add("vk-1/user-ab", "same-id", EAST, b"abe's answer", LATER)
    await store.add("vk-1", "same-id", SOUTH, b"the key's answer", LATER)

    for other in ("vk-1/user-b", "vk-1/user-", "vk-2/user-a", "", "VK-1/USER-A"):
        assert await store.nearest(other, NORTH, threshold=-1.0, now=T0) is None, other
    alice = await store.nearest("vk-1/user-a", EAST, threshold=-1.0, now=T0)
    assert alice is not None and alice.payload == b"alice's answer"
    key = await store.nearest("vk-1", NORTH, threshold=-1.0, now=T0)
    assert key is not None and key.payload == b"the key's answer"


async def test_ids_are_per_namespace_for_replace_delete_and_clear(store: VectorStore) -> None:
    await store.add("a", "id", NORTH, b"a", LATER)
    await store.add("b", "id", NORTH, b"b", LATER)
    await store.add("a", "id", NORTH, b"a2", LATER)  # replaces a/id only
    await store.delete("b", "id")

    hit = await store.nearest("a", NORTH, threshold=0.9, now=T0)
    assert hit is not None and hit.payload == b"a2"
    assert await store.nearest("b", NORTH, threshold=-1.0, now=T0) is None
    assert await store.clear() == 1


async def test_an_entry_is_found_until_it_expires_and_never_after(store: VectorStore) -> None:
    await store.add("ns", "short", NORTH, b"short", T0 + 10)
    await store.add("ns", "long", NORTH_EAST, b"long", T0 + 100)

    hit = await store.nearest("ns", NORTH, threshold=0.5, now=T0 + 9.5)
    assert hit is not None and hit.entry_id == "short"
    hit = await store.nearest("ns", NORTH, threshold=0.5, now=T0 + 10)  # expires_at is the first miss
    assert hit is not None and hit.entry_id == "long"
    assert await store.nearest("ns", NORTH, threshold=0.5, now=T0 + 100) is None
    assert await store.nearest("ns", NORTH, threshold=0.5, now=T0 + 5) is not None  # the clock is passed in


async def test_expired_entries_are_purged_as_new_ones_arrive(store: VectorStore) -> None:
    for i in range(100):
        await store.add(f"ns{i % 3}", f"old{i}", NORTH, b"old", T0 + 10)
    await store.nearest("ns0", NORTH, threshold=0.5, now=T0 + 500)  # the store learns the time
    await store.add("ns0", "new", NORTH, b"new", T0 + 1000)  # each add removes a bounded number
    await store.add("ns1", "new", NORTH, b"new", T0 + 1000)

    assert await store.clear() == 2  # only the new entries were left to remove


async def test_a_replaced_entry_lives_by_its_new_expiry(store: VectorStore) -> None:
    await store.add("ns", "e", NORTH, b"first", T0 + 10)
    await store.add("ns", "e", NORTH, b"second", T0 + 100)
    await store.nearest("ns", EAST, threshold=0.5, now=T0 + 50)  # past the first expiry
    await store.add("ns", "other", EAST, b"other", T0 + 100)  # purges what expired by then

    hit = await store.nearest("ns", NORTH, threshold=0.9, now=T0 + 50)
    assert hit is not None and hit.payload == b"second"


async def test_adding_the_same_id_replaces_the_vector_and_payload(store: VectorStore) -> None:
    await store.add("ns", "e", NORTH, b"first", LATER)
    await store.add("ns", "e", EAST, b"second", T0 + 50)

    assert await store.nearest("ns", NORTH, threshold=0.5, now=T0) is None
    hit = await store.nearest("ns", EAST, threshold=0.5, now=T0)
    assert hit is not None and hit.payload == b"second"
    assert await store.nearest("ns", EAST, threshold=0.5, now=T0 + 50) is None  # the new expiry holds
    assert await store.clear("ns") == 1


async def test_delete_removes_one_entry_and_ignores_unknown_ones(store: VectorStore) -> None:
    await store.add("ns", "keep", NORTH_EAST, b"keep", LATER)
    await store.add("ns", "drop", NORTH, b"drop", LATER)
    await store.delete("ns", "drop")
    await store.delete("ns", "never-added")
    await store.delete("elsewhere", "keep")

    hit = await store.nearest("ns", NORTH, threshold=0.5, now=T0)
    assert hit is not None and hit.entry_id == "keep"


async def test_clear_counts_what_it_removed_per_namespace_or_all(store: VectorStore) -> None:
    for i in range(3):
        await store.add("a", f"e{i}", NORTH, b"", LATER)
    for i in range(2):
        await store.add("b", f"e{i}", NORTH, b"", LATER)

    assert await store.clear("missing") == 0
    assert await store.clear("a") == 3
    assert await store.nearest("a", NORTH, threshold=-1.0, now=T0) is None
    assert await store.nearest("b", NORTH, threshold=-1.0, now=T0) is not None
    assert await store.clear() == 2
    assert await store.clear() == 0


async def test_a_vector_of_the_wrong_dimension_is_a_clear_error(store: VectorStore) -> None:
    with pytest.raises(BifrostError) as add_error:
        await store.add("ns", "e", [1.0, 0.0, 0.0], b"x", LATER)
    with pytest.raises(BifrostError) as search_error:
        await store.nearest("ns", [1.0] * 1536, threshold=0.5, now=T0)

    assert add_error.value.status_code == 500
    assert "3 dimensions" in add_error.value.message and "set up for 4" in add_error.value.message
    assert "1536 dimensions" in search_error.value.message
    assert await store.clear() == 0  # nothing was stored


@pytest.mark.parametrize("vector", [[0.0] * DIM, [float("nan"), 1.0, 0.0, 0.0], [float("inf"), 0, 0, 0]])
async def test_a_vector_with_no_direction_is_refused(store: VectorStore, vector: list[float]) -> None:
    with pytest.raises(BifrostError) as error:
        await store.add("ns", "e", vector, b"x", LATER)
    assert error.value.status_code == 502
    assert "all zeros or not finite" in error.value.message


async def test_a_vector_of_non_numbers_is_refused(store: VectorStore) -> None:
    with pytest.raises(BifrostError, match="not a number"):
        await store.nearest("ns", ["a", "b", "c", "d"], threshold=0.5, now=T0)  # type: ignore[list-item]


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xff\xfe\x00\x80 not utf-8 \xc3\x28", bytes(range(256)) * 64, '{"é": "日本"}'.encode()],
    ids=["empty", "not-utf8", "all-bytes", "utf8-json"],
)
async def test_payload_bytes_round_trip_exactly(store: VectorStore, payload: bytes) -> None:
    await store.add("ns", "e", NORTH, payload, LATER)
    hit = await store.nearest("ns", NORTH, threshold=0.99, now=T0)
    assert hit is not None and hit.payload == payload and isinstance(hit.payload, bytes)


async def test_concurrent_adds_and_searches_all_land(store: VectorStore) -> None:
    vectors = [[1.0, i / 10, 0.0, 0.0] for i in range(10)]
    await asyncio.gather(
        *(store.add("ns", f"e{i}", v, str(i).encode(), LATER) for i, v in enumerate(vectors))
    )
    hits = await asyncio.gather(*(store.nearest("ns", v, threshold=0.9999, now=T0) for v in vectors))

    assert [h.entry_id if h else None for h in hits] == [f"e{i}" for i in range(10)]


# -- the embedded SQLite store, shared by processes -----------------------------------------------------


def _child(path: str, results: Queue[Any]) -> None:
    """Another worker process: finds what the parent wrote, then writes its own entry."""

    async def run() -> tuple[str | None, bytes | None]:
        store = SQLiteVectorStore(path, dimension=DIM)
        try:
            hit = await store.nearest("vk-1", NEAR_NORTH, threshold=0.9, now=T0)
            await store.add("vk-1", "from-child", EAST, b"\xffchild", LATER)
            return (hit.entry_id, hit.payload) if hit else (None, None)
        finally:
            await store.aclose()

    report_to(results, run)


async def test_two_processes_share_the_sqlite_file(tmp_path: Path) -> None:
    path = sibling_path(str(tmp_path / "bifrost.db"))
    parent = SQLiteVectorStore(path, dimension=DIM)
    try:
        await parent.add("vk-1", "from-parent", NORTH, b"\xffparent", LATER)
        ctx = multiprocessing.get_context("spawn")
        results: Queue[Any] = ctx.Queue()
        child = ctx.Process(target=_child, args=(path, results))
        child.start()
        found = await asyncio.to_thread(results.get, timeout=120)
        await asyncio.to_thread(child.join, 30)

        assert found == ("from-parent", b"\xffparent")
        hit = await parent.nearest("vk-1", EAST, threshold=0.9, now=T0)  # the parent's open connection
        assert hit is not None and (hit.entry_id, hit.payload) == ("from-child", b"\xffchild")
    finally:
        await parent.aclose()


async def test_the_default_store_lives_beside_the_gateways_database(tmp_path: Path) -> None:
    store = build_vector_store(None, dimension=DIM, default_sqlite_path=str(tmp_path / "bifrost.db"))
    assert isinstance(store, SQLiteVectorStore)
    await store.add("ns", "e", NORTH, b"x", LATER)
    await store.aclose()

    assert (tmp_path / "bifrost-vectors.db").exists()
    assert not (tmp_path / "bifrost.db").exists()  # a second SQLite library never opens the gateway's file
    assert sibling_path("/var/lib/bifrost/state") == "/var/lib/bifrost/state-vectors.db"


async def test_sqlite_rows_of_another_dimension_never_match(tmp_path: Path) -> None:
    path = str(tmp_path / "v.db")
    old = build_vector_store(
        {"type": "sqlite", "config": {"path": path}}, dimension=DIM, default_sqlite_path=None
    )
    await old.add("ns", "old", NORTH, b"old", LATER)
    await old.aclose()
    new = SQLiteVectorStore(path, dimension=8)
    try:
        assert await new.nearest("ns", NORTH + [0.0] * 4, threshold=-1.0, now=T0) is None
        await new.add("ns", "new", NORTH + [0.0] * 4, b"new", LATER)
        hit = await new.nearest("ns", NORTH + [0.0] * 4, threshold=0.9, now=T0)
        assert hit is not None and hit.payload == b"new"
    finally:
        await new.aclose()


async def test_an_unusable_sqlite_file_is_a_503(tmp_path: Path) -> None:
    store = SQLiteVectorStore(str(tmp_path / "missing-dir" / "v.db"), dimension=DIM)
    with pytest.raises(BifrostError) as error:
        await store.add("ns", "e", NORTH, b"x", LATER)
    assert error.value.status_code == 503
    assert error.value.error_type == "vector_store_unavailable"
    await store.aclose()


# -- Qdrant ---------------------------------------------------------------------------------------------


async def test_a_qdrant_collection_of_another_dimension_is_refused(tmp_path: Path) -> None:
    config = {"type": "qdrant", "config": {"path": str(tmp_path / "qdrant"), "collection": "answers"}}
    first = build_vector_store(config, dimension=DIM, default_sqlite_path=None)
    await first.add("ns", "e", NORTH, b"kept on disk", LATER)
    await first.aclose()
    again = build_vector_store(config, dimension=DIM, default_sqlite_path=None)
    hit = await again.nearest("ns", NORTH, threshold=0.9, now=T0)
    await again.aclose()
    other = build_vector_store(config, dimension=8, default_sqlite_path=None)

    assert hit is not None and hit.payload == b"kept on disk"
    with pytest.raises(BifrostError) as error:
        await other.nearest("ns", NORTH + [0.0] * 4, threshold=0.9, now=T0)
    assert error.value.status_code == 500
    assert "'answers'" in error.value.message and "size 4" in error.value.message
    await other.aclose()


async def test_a_point_not_written_by_the_cache_is_an_error_not_a_crash() -> None:
    client = AsyncQdrantClient(location=":memory:")
    store = QdrantVectorStore(client, dimension=DIM, collection="shared", server=False)
    await store.add("ns", "e", EAST, b"ours", LATER)
    foreign = {"namespace": "ns", "expires_at": LATER, "entry_id": "x", "payload": "%%% not base64"}
    await client.upsert("shared", points=[models.PointStruct(id=7, vector=NORTH, payload=foreign)])
    await client.upsert(
        "shared",
        points=[models.PointStruct(id=8, vector=SOUTH, payload={"namespace": "ns", "expires_at": LATER})],
    )
    try:
        for vector, detail in ((NORTH, "not base64"), (SOUTH, "without its 'entry_id'")):
            with pytest.raises(BifrostError) as error:
                await store.nearest("ns", vector, threshold=0.9, now=T0)
            assert error.value.status_code == 503 and detail in error.value.message
    finally:
        await store.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_qdrant_server_is_a_503_without_the_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QDRANT_TEST_KEY", "qk-secret-value-123")
    config = {
        "enabled": True,
        "type": "qdrant",
        "config": {
            "host": "127.0.0.1",
            "port": _closed_port(),
            "api_key": "env.QDRANT_TEST_KEY",
            "use_tls": True,
            "timeout_seconds": 1,
        },
    }
    store = build_vector_store(config, dimension=DIM, default_sqlite_path=None)
    try:
        with pytest.raises(BifrostError) as error:
            await store.nearest("ns", NORTH, threshold=0.9, now=T0)
    finally:
        await store.aclose()

    assert error.value.status_code == 503
    assert error.value.message.startswith("vector store unavailable: Qdrant")
    assert "qk-secret-value-123" not in error.value.message + repr(store.__dict__)


# -- configuration ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["weaviate", "redis", "pinecone"])
def test_bifrosts_other_vector_stores_are_refused_by_name(kind: str) -> None:
    with pytest.raises(ConfigError) as error:
        build_vector_store(
            {"enabled": True, "type": kind, "config": {}}, dimension=DIM, default_sqlite_path=None
        )
    assert str(error.value) == (
        f"vector_store.type: '{kind}' is not supported by bifrost-asgi (supported: memory, qdrant, sqlite)"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "qdrnat"}, "vector_store.type: must be one of memory, qdrant, sqlite, not 'qdrnat'"),
        ({"enabled": True}, "vector_store.type: must be one of memory, qdrant, sqlite, not None"),
        ({"type": "sqlite", "config": {}}, "vector_store.config.path: Field required"),
        ({"type": "sqlite", "config": "x.db"}, "vector_store.config: must be an object"),
        (
            {"type": "qdrant", "config": {"hots": "q"}},
            "vector_store.config.hots: Extra inputs are not permitted",
        ),
        ({"type": "qdrant", "config": {"port": "grpc"}}, "vector_store.config.port: Input should be a valid"),
        ({"type": "qdrant", "config": {"api_key": "env.NOT_SET_ANYWHERE"}}, "NOT_SET_ANYWHERE is not set"),
        ({"type": "memory", "config": {"max_entries": "many"}}, "vector_store.config.max_entries:"),
        (["qdrant"], "vector_store: must be an object"),
    ],
)
def test_a_bad_vector_store_entry_is_a_config_error_naming_the_field(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        build_vector_store(entry, dimension=DIM, default_sqlite_path=None)
    assert message in str(error.value)


@pytest.mark.parametrize("dimension", [0, -3, True, 1.5])
def test_the_dimension_must_be_a_positive_integer(dimension: Any) -> None:
    with pytest.raises(ConfigError, match="semantic_cache.dimension"):
        build_vector_store(None, dimension=dimension, default_sqlite_path=None)


def test_without_an_entry_or_a_file_the_store_is_in_memory(tmp_path: Path) -> None:
    assert isinstance(build_vector_store(None, dimension=DIM, default_sqlite_path=None), MemoryVectorStore)
    disabled = {"enabled": False, "type": "qdrant", "config": {"host": "q"}}
    default = build_vector_store(disabled, dimension=DIM, default_sqlite_path=str(tmp_path / "g.db"))
    assert isinstance(default, SQLiteVectorStore)


async def test_the_memory_store_keeps_at_most_max_entries_dropping_the_soonest_to_expire() -> None:
    store = build_vector_store(
        {"type": "memory", "config": {"max_entries": 3}}, dimension=DIM, default_sqlite_path=None
    )
    for i, expiry in enumerate([T0 + 50, T0 + 10, T0 + 40, T0 + 30]):
        await store.add("ns", f"e{i}", [1.0, i / 10, 0.0, 0.0], b"", expiry)
    for i in range(200):  # replacing one entry over and over leaves the store's size alone
        await store.add("ns", "e0", NORTH, b"", T0 + 60 + i)

    hits = [await store.nearest("ns", [1.0, i / 10, 0.0, 0.0], threshold=0.99999, now=T0) for i in range(4)]
    assert [h.entry_id if h else None for h in hits] == ["e0", None, "e2", "e3"]
    assert await store.clear() == 3


def test_the_contract_suite_covers_every_supported_type() -> None:
    from bifrost_asgi.cache.vectors import SUPPORTED_TYPES

    assert set(FACTORIES) == set(SUPPORTED_TYPES)


async def test_on_a_server_the_namespace_and_expiry_are_indexed(monkeypatch: pytest.MonkeyPatch) -> None:
    client = AsyncQdrantClient(location=":memory:")
    indexed: list[tuple[str, Any]] = []

    async def create_payload_index(collection: str, field_name: str, field_schema: Any) -> None:
        indexed.append((field_name, field_schema))  # local mode has no payload indexes: record the ask

    monkeypatch.setattr(client, "create_payload_index", create_payload_index)
    store = QdrantVectorStore(client, dimension=DIM, collection="indexed", server=True)
    await store.add("ns", "e", NORTH, b"x", LATER)
    await store.add("ns", "f", NORTH, b"x", LATER)  # created once
    await store.aclose()

    assert [name for name, _ in indexed] == ["namespace", "expires_at"]
    assert indexed[0][1].is_tenant is True
    assert indexed[1][1] == models.PayloadSchemaType.FLOAT


async def test_a_collection_another_worker_just_created_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    client = AsyncQdrantClient(location=":memory:")
    first = QdrantVectorStore(client, dimension=DIM, collection="raced", server=False)
    second = QdrantVectorStore(client, dimension=DIM, collection="raced", server=False)
    await first.add("ns", "e", NORTH, b"first's", LATER)
    real, asked = client.collection_exists, []

    async def exists(name: str) -> bool:  # `second` looks before `first` created it, then after
        asked.append(name)
        return len(asked) > 1 and await real(name)

    monkeypatch.setattr(client, "collection_exists", exists)
    hit = await second.nearest("ns", NORTH, threshold=0.9, now=T0)
    await client.close()
    assert hit is not None and hit.payload == b"first's"
    assert len(asked) == 2


@pytest.mark.parametrize(
    ("entry", "missing", "module"),
    [
        (None, "sqlite_vec", "bifrost_asgi.cache.vectors_sqlite"),
        ({"type": "sqlite", "config": {"path": "v.db"}}, "sqlean", "bifrost_asgi.cache.vectors_sqlite"),
        ({"type": "qdrant"}, "qdrant_client", "bifrost_asgi.cache.vectors_qdrant"),
    ],
)
def test_without_the_cache_extra_building_the_store_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, entry: Any, missing: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # `import` of it raises ImportError
    monkeypatch.delitem(sys.modules, module)  # imported afresh, as on a machine without the extra
    with pytest.raises(ConfigError, match=r"pip install 'bifrost-asgi\[cache\]'"):
        build_vector_store(entry, dimension=DIM, default_sqlite_path=str(tmp_path / "g.db"))
