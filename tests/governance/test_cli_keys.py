"""`bifrost-asgi keys create|list|usage|revoke` against a temporary config and SQLite file."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from bifrost_asgi.cli.keys import add_keys_parser, load_governance_config, run_keys
from bifrost_asgi.errors import BifrostError
from bifrost_asgi.governance.build import build_governance, build_log_writer
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.governance.models import Team
from bifrost_asgi.pricing import PricingTable
from bifrost_asgi.stores.logs import LogRecord

# Provider and admin secrets come from variables that are not set: managing keys must not need them.
CONFIG = {
    "providers": {"openai": {"keys": [{"value": "env.OPENAI_API_KEY_UNSET"}]}},
    "governance": {
        "store": {"path": "gov.db"},
        "auth_config": {
            "is_enabled": True,
            "admin_username": "admin",
            "admin_password": "env.ADMIN_PW_UNSET",
        },
    },
}


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # the store path is relative: it resolves against the CWD
    (tmp_path / "config.json").write_bytes(orjson.dumps(CONFIG))
    return "config.json"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bifrost-asgi")
    add_keys_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["keys", *argv])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_keys(parse(list(argv)))
    out, err = capsys.readouterr()
    return code, out, err


def with_gov(config: str, work: Any) -> Any:
    """Run ``work(gov)`` on an engine over the same stores the CLI used, as the gateway would."""

    async def main() -> Any:
        gov = build_governance(load_governance_config(config), PricingTable.default(), enforce_auth=False)
        try:
            return await work(gov)
        finally:
            await gov.aclose()

    return asyncio.run(main())


def store_bytes(tmp_path: Path) -> list[bytes]:
    files = [p for p in tmp_path.iterdir() if p.name.startswith("gov.db")]  # the db and its WAL
    assert files
    return [p.read_bytes() for p in files]


def test_create_list_usage_revoke(config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "create", "--config", config, "--name", "ci", "--owner", "alice",
                         "--provider", "openai", "--requests", "100:1m")  # fmt: skip
    assert code == 0
    value = out.strip()
    assert value.startswith("sk-bf-") and "\n" not in value  # alone on stdout, for $(...)
    assert "shown once" in err and "not stored" in err
    key = with_gov(config, lambda gov: gov.authenticate(value))
    assert key.name == "ci" and key.owner == "alice" and key.provider_configs[0].provider == "openai"
    assert all(value.encode() not in data for data in store_bytes(tmp_path))
    assert any(key.id.encode() in data for data in store_bytes(tmp_path))

    code, out, _ = run(capsys, "list", "--config", config)
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["ID", "NAME", "OWNER", "STATUS", "KEY", "CREATED"]
    assert row.split()[:5] == [key.id, "ci", "alice", "active", f"sk-bf-{key.key_prefix}…"]
    assert value not in out and key.key_hash not in out

    code, out, _ = run(capsys, "usage", "--config", config, key.id)
    assert code == 0
    assert "requests:1m" in out and "This month" in out and "0 requests" in out

    code, out, _ = run(capsys, "revoke", "--config", config, key.id)
    assert code == 0 and "Revoked" in out
    with pytest.raises(BifrostError) as caught:
        with_gov(config, lambda gov: gov.authenticate(value))
    assert caught.value.top_type == "virtual_key_blocked"
    assert "revoked" in run(capsys, "list", "--config", config)[1]


def test_create_with_every_option(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    with_gov(config, lambda gov: gov.keys.put_team(Team(id="t1")))
    before = time.time()
    code, out, _ = run(
        capsys, "create", "--config", config, "--name", "full", "--description", "all of it",
        "--expires-in", "30d", "--provider", "openai", "--models", "gpt-4o, gpt-4o-mini",
        "--provider", "anthropic", "--budget", "10:1M", "--budget", "0.5:1d", "--calendar-aligned",
        "--requests", "100:1m", "--tokens", "100000:1h", "--team", "t1", "--json",
    )  # fmt: skip
    assert code == 0
    shown = orjson.loads(out)
    record = shown["virtual_key"]
    assert shown["value"].startswith("sk-bf-") and "key_hash" not in record
    assert record["description"] == "all of it" and record["team_id"] == "t1"
    assert before + 30 * 86400 <= record["expires_at"] <= time.time() + 30 * 86400
    rules = {r["provider"]: r["allowed_models"] for r in record["provider_configs"]}
    assert rules == {"openai": ["gpt-4o", "gpt-4o-mini"], "anthropic": ["*"]}
    assert [{k: v for k, v in b.items() if k != "id"} for b in record["budgets"]] == [
        {"max_limit": 10.0, "reset_duration": "1M", "calendar_aligned": True},
        {"max_limit": 0.5, "reset_duration": "1d", "calendar_aligned": True},
    ]
    assert all(b["id"] for b in record["budgets"]) and record["rate_limit"].pop("id")
    assert record["rate_limit"] == {
        "request_max_limit": 100, "request_reset_duration": "1m",
        "token_max_limit": 100000, "token_reset_duration": "1h",
    }  # fmt: skip
    assert record["allow_all_providers"] is False


def test_a_key_without_providers_says_so(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "allows no provider" in run(capsys, "create", "--config", config, "--name", "bare")[2]
    code, out, err = run(capsys, "create", "--config", config, "--name", "all", "--all-providers", "--json")
    assert code == 0 and "allows no provider" not in err
    assert orjson.loads(out)["virtual_key"]["allow_all_providers"] is True


def test_list_by_owner_as_json(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    values = [run(capsys, "create", "--config", config, "--name", n, "--owner", n)[1].strip() for n in "ab"]
    code, out, _ = run(capsys, "list", "--config", config, "--owner", "b", "--json")
    assert code == 0
    listed = orjson.loads(out)
    assert [k["owner"] for k in listed] == ["b"]
    assert all(v not in out for v in values) and "key_hash" not in out


def test_usage_shows_used_reserved_remaining_and_the_month(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(capsys, "create", "--config", config, "--name", "u", "--provider", "openai",
              "--requests", "5:1h", "--budget", "2:1M", "--json")[1]  # fmt: skip
    value = orjson.loads(out)["value"]

    async def spend(gov: Governance) -> str:
        key = await gov.authenticate(value)
        assert key is not None
        ticket = await gov.admit(key, "openai", "gpt-4o", {"max_output_tokens": 10}, 40)
        await gov.settle(ticket, ok=True, tokens=30, cost=0.25)
        writer = build_log_writer(load_governance_config(config))
        assert writer is not None
        now = time.time()
        await writer.store.write([
            LogRecord(id="r1", timestamp=now, object="responses", virtual_key_id=key.id, total_tokens=30,
                      cost=0.25),
            LogRecord(id="r2", timestamp=now, object="responses", virtual_key_id="someone-else", cost=5.0),
        ])  # fmt: skip
        return key.id

    key_id = with_gov(config, spend)
    code, out, _ = run(capsys, "usage", "--config", config, key_id, "--json")
    assert code == 0
    body = orjson.loads(out)
    by_kind = {row["kind"]: row for row in body["limits"]}
    requests = by_kind["requests"]
    assert (requests["used"], requests["reserved"], requests["remaining"]) == (1, 0, 4)
    assert by_kind["budget"]["used"] == pytest.approx(0.25)
    assert by_kind["budget"]["remaining"] == pytest.approx(1.75)
    assert body["this_month"]["requests"] == 1 and body["this_month"]["tokens"] == 30
    assert body["this_month"]["cost"] == pytest.approx(0.25)

    text = run(capsys, "usage", "--config", config, key_id)[1]
    assert "$0.2500" in text and "$1.7500" in text and "1 requests, 30 tokens" in text


def test_revoking_twice_keeps_the_first_time(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    key_id = orjson.loads(run(capsys, "create", "--config", config, "--name", "r", "--json")[1])[
        "virtual_key"
    ]["id"]
    assert run(capsys, "revoke", "--config", config, key_id)[0] == 0
    first = with_gov(config, lambda gov: gov.keys.get(key_id)).revoked_at
    code, out, _ = run(capsys, "revoke", "--config", config, key_id)
    assert code == 0 and "already revoked" in out
    assert with_gov(config, lambda gov: gov.keys.get(key_id)).revoked_at == first


@pytest.mark.parametrize("command", ["revoke", "usage"])
def test_unknown_ids_exit_1(config: str, capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, _, err = run(capsys, command, "--config", config, "no-such-key")
    assert code == 1 and "no virtual key with id 'no-such-key'" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--budget", "10"], "AMOUNT:DURATION"),
        (["--budget", "ten:1M"], "ten:1M"),
        (["--budget=-1:1M"], "max_limit"),
        (["--budget", "10:2x"], "invalid reset duration"),
        (["--requests", "0:1m"], "request_max_limit"),
        (["--tokens", "many:1h"], "many:1h"),
        (["--expires-in", "30x"], "12h, 30d or 2w"),
        (["--expires-in", "0d"], "12h, 30d or 2w"),
        (["--models", "gpt-4o"], "--models must follow"),
        (["--provider", "openai", "--models", "a", "--models", "b"], "--models must follow"),
        (["--provider", "openai", "--models", " , "], "at least one model"),
    ],
)
def test_bad_arguments_exit_2(
    config: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(["create", "--config", config, "--name", "x", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--team", "t1", "--customer", "c1"], "--team and --customer are exclusive"),
        (["--team", "nope"], "--team: no team 'nope'"),
        (["--customer", "nope"], "--customer: no customer 'nope'"),
        (["--provider", "openai", "--provider", "openai"], "each --provider may appear once"),
    ],
)
def test_bad_create_input_exits_2_and_creates_nothing(
    config: str, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "create", "--config", config, "--name", "x", *argv)
    assert (code, out) == (2, "")
    assert message in err
    assert with_gov(config, lambda gov: gov.keys.list_keys()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"{nope", "is not valid JSON"),
        (b"[]", "has no `governance` section"),
        (orjson.dumps({"providers": {}}), "has no `governance` section"),
        (orjson.dumps({"governance": {"store": {"type": "memory"}}}), "keys live only inside"),
        (orjson.dumps({"governance": {"store": {"type": "postgres"}}}), "governance.store.type"),
    ],
)
def test_bad_configs_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, message: str
) -> None:
    path = tmp_path / "config.json"
    if content is not None:
        path.write_bytes(content)
    code, out, err = run(capsys, "list", "--config", str(path))
    assert (code, out) == (2, "")
    assert err.startswith("bifrost-asgi keys: ") and message in err


def _entry_point() -> list[str]:
    """`python -m bifrost_asgi` once `keys` is wired into the main CLI; until then the same two calls."""
    probe = subprocess.run([sys.executable, "-m", "bifrost_asgi", "keys", "--help"], capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "bifrost_asgi"]
    driver = (
        "import argparse, sys\n"
        "from bifrost_asgi.cli.keys import add_keys_parser, run_keys\n"
        "parser = argparse.ArgumentParser(prog='bifrost-asgi')\n"
        "add_keys_parser(parser.add_subparsers(dest='command', required=True))\n"
        "sys.exit(run_keys(parser.parse_args()))\n"
    )
    return [sys.executable, "-c", driver]


def test_in_a_real_process(config: str, tmp_path: Path) -> None:
    cli = _entry_point()

    def call(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, "keys", *argv], capture_output=True, text=True, cwd=tmp_path, timeout=60)

    created = call("create", "--config", config, "--name", "proc", "--provider", "openai")
    assert created.returncode == 0, created.stderr
    value = created.stdout.strip()
    key = with_gov(config, lambda gov: gov.authenticate(value))
    assert key is not None and key.name == "proc"
    listed = call("list", "--config", config, "--json")
    assert [k["id"] for k in orjson.loads(listed.stdout)] == [key.id] and value not in listed.stdout
    assert call("revoke", "--config", config, key.id).returncode == 0
    assert call("list", "--config", "missing.json").returncode == 2
    assert all(value.encode() not in data for data in store_bytes(tmp_path))
