"""``bifrost-asgi keys``: create, list, revoke and inspect virtual keys from a shell.

    bifrost-asgi keys create --config config.json --name ci --provider openai --models gpt-4o \\
        --budget 10:1M --requests 100:1m
    bifrost-asgi keys list   --config config.json [--owner alice] [--json]
    bifrost-asgi keys usage  --config config.json ID [--json]
    bifrost-asgi keys revoke --config config.json ID

The commands work on the stores the config's ``governance`` section names (SQLite paths are relative
to the current directory), the same ones the running gateway reads. Only that section's storage
settings are read: managing keys needs no provider or admin secret in the environment. A created key's
value is printed once, alone on stdout (so ``KEY=$(bifrost-asgi keys create ...)`` works), and is never
stored. Bad input or a config without a governance section exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from bifrost_asgi.governance.build import build_governance, build_log_writer
from bifrost_asgi.governance.config import GovernanceConfig
from bifrost_asgi.governance.engine import Governance
from bifrost_asgi.governance.models import Budget, ProviderRule, RateLimit, VirtualKey, unique_windows
from bifrost_asgi.pricing import PricingTable
from bifrost_asgi.stores.log_query import month_usage

__all__ = ["add_keys_parser", "run_keys"]

# The parts of the governance section that say where keys, counters and logs live. Seeds and admin
# credentials are left out on purpose: their `env.VAR` values need not be set to manage keys.
_STORAGE_FIELDS = ("store", "counters", "logs", "default_max_output_tokens", "key_cache_ttl_seconds")
_EXPIRY = re.compile(r"^(\d+)([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_MISSING = "—"


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


# -- argument types (argparse turns ArgumentTypeError into a usage message and exit status 2) --------


def _limit_pair(text: str) -> tuple[str, str]:
    amount, sep, duration = text.partition(":")
    if not sep or not amount or not duration:
        raise argparse.ArgumentTypeError(f"{text!r}: expected AMOUNT:DURATION, e.g. 100:1m")
    return amount, duration


def _budget(text: str) -> Budget:
    amount, duration = _limit_pair(text)
    try:
        return Budget(max_limit=float(amount), reset_duration=duration)
    except (ValueError, ValidationError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {_first_problem(exc)}") from None


def _count_limit(text: str) -> tuple[int, str]:
    amount, duration = _limit_pair(text)
    try:
        RateLimit(request_max_limit=int(amount), request_reset_duration=duration)
    except (ValueError, ValidationError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {_first_problem(exc)}") from None
    return int(amount), duration


def _expires_in(text: str) -> float:
    match = _EXPIRY.match(text)
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a duration like 12h, 30d or 2w")
    return float(int(match.group(1)) * _SECONDS[match.group(2)])


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(exc)


class _ProviderAction(argparse.Action):
    """``--provider P`` starts a provider rule; a following ``--models a,b`` narrows it."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: str | None = None
    ) -> None:
        ns.providers = [*(ns.providers or []), (str(values), None)]


class _ModelsAction(argparse.Action):
    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: str | None = None
    ) -> None:
        rules: list[tuple[str, tuple[str, ...] | None]] = list(ns.providers or [])
        if not rules or rules[-1][1] is not None:
            parser.error("--models must follow its own --provider (e.g. --provider openai --models gpt-4o)")
        models = tuple(m.strip() for m in str(values).split(",") if m.strip())
        if not models:
            parser.error("--models needs at least one model name")
        rules[-1] = (rules[-1][0], models)
        ns.providers = rules


# -- parser ------------------------------------------------------------------------------------------


def add_keys_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys create|list|revoke|usage`` to the ``bifrost-asgi`` parser; run with `run_keys`."""
    keys = subparsers.add_parser(
        "keys",
        help="manage virtual keys",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = keys.add_subparsers(dest="keys_command", required=True)
    _add_create(sub)
    listing = _with_config(sub.add_parser("list", help="list virtual keys (never their values)"))
    listing.add_argument("--owner", help="only this owner's keys")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = _with_config(sub.add_parser("revoke", help="revoke a key, permanently"))
    revoke.add_argument("id", help="the key's id")
    usage = _with_config(sub.add_parser("usage", help="a key's limits and this month's usage"))
    usage.add_argument("id", help="the key's id")
    usage.add_argument("--json", action="store_true", help="print JSON")


def _with_config(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--config", required=True, help="the gateway's config.json")
    return parser


def _add_create(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    create = _with_config(sub.add_parser("create", help="create a key and print its value once"))
    create.add_argument("--name", required=True)
    create.add_argument("--owner", help="an opaque user id (what host apps put in `owner`)")
    create.add_argument("--description", default="")
    create.add_argument("--expires-in", type=_expires_in, metavar="DURATION", help="e.g. 12h, 30d, 2w")
    create.add_argument(
        "--provider",
        action=_ProviderAction,
        dest="providers",
        default=None,
        metavar="PROVIDER",
        help="allow this provider (repeatable)",
    )
    create.add_argument(
        "--models",
        action=_ModelsAction,
        dest="providers",
        metavar="MODELS",
        help="comma-separated models for the preceding --provider (default: all)",
    )
    create.add_argument("--all-providers", action="store_true", help="allow every configured provider")
    create.add_argument(
        "--budget",
        type=_budget,
        action="append",
        default=[],
        metavar="DOLLARS:DURATION",
        help="e.g. 10:1M (repeatable)",
    )
    create.add_argument("--calendar-aligned", action="store_true", help="budgets reset on UTC boundaries")
    create.add_argument("--requests", type=_count_limit, metavar="COUNT:DURATION", help="e.g. 100:1m")
    create.add_argument("--tokens", type=_count_limit, metavar="COUNT:DURATION", help="e.g. 100000:1h")
    create.add_argument("--team", help="a team id (exclusive with --customer)")
    create.add_argument("--customer", help="a customer id (exclusive with --team)")
    create.add_argument("--json", action="store_true", help="print the value and the record as JSON")


# -- running -----------------------------------------------------------------------------------------


def run_keys(args: argparse.Namespace) -> int:
    """Run a parsed ``keys`` command; returns the exit status."""
    try:
        cfg = load_governance_config(args.config)
        return asyncio.run(_COMMANDS[args.keys_command](args, cfg))
    except UsageError as exc:
        print(f"bifrost-asgi keys: {exc}", file=sys.stderr)
        return 2


def load_governance_config(path: str) -> GovernanceConfig:
    """The storage settings of ``path``'s governance section."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    section = data.get("governance") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise UsageError(f"{path} has no `governance` section: there is no key store to manage")
    try:
        cfg = GovernanceConfig.model_validate({k: section[k] for k in _STORAGE_FIELDS if k in section})
    except ValidationError as exc:
        raise UsageError(f"{path}: governance.{_first_problem(exc)}") from None
    if cfg.store.type == "memory":
        raise UsageError(
            f"{path}: governance.store.type is 'memory', so keys live only inside the "
            "running gateway; use its /api/governance/virtual-keys API"
        )
    return cfg


Command = Callable[[argparse.Namespace, GovernanceConfig], Coroutine[Any, Any, int]]


async def _with_governance(cfg: GovernanceConfig, work: Callable[[Governance], Awaitable[int]]) -> int:
    gov = build_governance(cfg, PricingTable.default(), enforce_auth=False)
    try:
        return await work(gov)
    finally:
        await gov.aclose()


async def _create(args: argparse.Namespace, cfg: GovernanceConfig) -> int:
    fields = _create_fields(args)

    async def work(gov: Governance) -> int:
        if args.team and await gov.keys.team(args.team) is None:
            raise UsageError(f"--team: no team {args.team!r} in the key store (teams are seeded from config)")
        if args.customer and await gov.keys.customer(args.customer) is None:
            raise UsageError(f"--customer: no customer {args.customer!r} in the key store")
        if args.expires_in is not None:
            fields["expires_at"] = gov.clock.now() + args.expires_in
        key, value = await gov.create_key(args.name, **fields)
        _print_created(key, value, as_json=args.json)
        return 0

    return await _with_governance(cfg, work)


def _create_fields(args: argparse.Namespace) -> dict[str, Any]:
    if args.team and args.customer:
        raise UsageError("--team and --customer are exclusive")
    rules = tuple(
        ProviderRule(provider=name, allowed_models=models or ("*",)) for name, models in args.providers or []
    )
    if len({r.provider for r in rules}) != len(rules):
        raise UsageError("each --provider may appear once")
    # Ids as the management API gives them, so the key's budgets and limit can be told apart there.
    budgets = tuple(
        b.model_copy(update={"calendar_aligned": args.calendar_aligned, "id": uuid.uuid4().hex})
        for b in args.budget
    )
    try:
        unique_windows(budgets)
    except ValueError as exc:
        raise UsageError(f"--budget: {exc}") from None
    rate_limit = None
    if args.requests or args.tokens:
        requests, tokens = args.requests or (None, None), args.tokens or (None, None)
        rate_limit = RateLimit(
            id=uuid.uuid4().hex,
            request_max_limit=requests[0],
            request_reset_duration=requests[1],
            token_max_limit=tokens[0],
            token_reset_duration=tokens[1],
        )
    return {
        "description": args.description,
        "owner": args.owner,
        "provider_configs": rules,
        "allow_all_providers": args.all_providers,
        "budgets": budgets,
        "rate_limit": rate_limit,
        "team_id": args.team,
        "customer_id": args.customer,
    }


def _print_created(key: VirtualKey, value: str, *, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps({"value": value, "virtual_key": key.public()}).decode())
    else:
        print(value)
    print(f"Created virtual key {key.name!r} (id {key.id}).", file=sys.stderr)
    print("This value is shown once and is not stored anywhere: copy it now.", file=sys.stderr)
    if not key.provider_configs and not key.allow_all_providers:
        print("Note: this key allows no provider yet (use --provider or --all-providers).", file=sys.stderr)


async def _list(args: argparse.Namespace, cfg: GovernanceConfig) -> int:
    async def work(gov: Governance) -> int:
        keys = await gov.keys.list_keys(args.owner)
        if args.json:
            _print_json([k.public() for k in keys])
            return 0
        rows = [
            (
                k.id,
                k.name,
                k.owner or _MISSING,
                _status(k, gov.clock.now()),
                k.public()["value_hint"] or _MISSING,
                _time(k.created_at),
            )
            for k in keys
        ]
        _print_table(("ID", "NAME", "OWNER", "STATUS", "KEY", "CREATED"), rows)
        return 0

    return await _with_governance(cfg, work)


async def _with_key(
    cfg: GovernanceConfig, key_id: str, work: Callable[[Governance, VirtualKey], Awaitable[int]]
) -> int:
    """Run ``work`` on the virtual key ``key_id``; exit 1 with a message when there is none."""

    async def find(gov: Governance) -> int:
        key = await gov.keys.get(key_id)
        if key is None:
            print(f"bifrost-asgi keys: no virtual key with id {key_id!r}", file=sys.stderr)
            return 1
        return await work(gov, key)

    return await _with_governance(cfg, find)


async def _revoke(args: argparse.Namespace, cfg: GovernanceConfig) -> int:
    async def work(gov: Governance, key: VirtualKey) -> int:
        if key.revoked_at is not None:  # keep the first revocation time
            print(f"Virtual key {key.id} was already revoked at {_time(key.revoked_at)}.")
            return 0
        await gov.revoke_key(key.id)
        print(f"Revoked virtual key {key.id} ({key.name!r}). Revocation is permanent.")
        return 0

    return await _with_key(cfg, args.id, work)


async def _usage(args: argparse.Namespace, cfg: GovernanceConfig) -> int:
    async def work(gov: Governance, key: VirtualKey) -> int:
        limits = await gov.usage(key)
        totals = await _month_totals(cfg, key.id, gov.clock.now())
        if args.json:
            _print_json({"virtual_key_id": key.id, "limits": limits, "this_month": totals})
        else:
            _print_usage(key, gov.clock.now(), limits, totals)
        return 0

    return await _with_key(cfg, args.id, work)


async def _month_totals(cfg: GovernanceConfig, key_id: str, now: float) -> dict[str, Any] | None:
    writer = build_log_writer(cfg)
    if writer is None:
        return None
    try:
        return await month_usage(writer.store, key_id, now)
    finally:
        await writer.aclose()


_COMMANDS: dict[str, Command] = {"create": _create, "list": _list, "revoke": _revoke, "usage": _usage}


# -- output ------------------------------------------------------------------------------------------


def _print_json(data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _print_usage(
    key: VirtualKey, now: float, limits: list[dict[str, Any]], totals: dict[str, Any] | None
) -> None:
    expiry = f", expires {_time(key.expires_at)}" if key.expires_at is not None else ""
    print(f"Virtual key {key.id} ({key.name!r}): {_status(key, now)}{expiry}")
    if limits:
        rows = [
            (
                _scope(row["limit"], key.id),
                _amount(row["kind"], row["max"]),
                _amount(row["kind"], row["used"]),
                _amount(row["kind"], row["reserved"]),
                _amount(row["kind"], row["remaining"]),
                row["reset_duration"],
                _time(row["window_end"]) if row["window_end"] else _MISSING,
            )
            for row in limits
        ]
        _print_table(("LIMIT", "MAX", "USED", "RESERVED", "REMAINING", "RESET", "WINDOW ENDS"), rows)
    else:
        print("No budgets or rate limits.")
    if totals is None:
        print("Usage log disabled (governance.logs): no monthly totals.")
    else:
        print(
            f"This month (since {totals['since']}): {totals['requests']} requests, "
            f"{totals['tokens']} tokens, ${totals['cost']:.4f}"
        )


def _scope(limit_key: str, key_id: str) -> str:
    # Counter keys look like vk:<id>:pc:openai:requests:1m; the key's own id adds nothing here.
    own = f"vk:{key_id}:"
    return limit_key[len(own) :] if limit_key.startswith(own) else limit_key


def _amount(kind: str, value: float) -> str:
    return f"${value:.4f}" if kind == "budget" else f"{value:g}"


def _status(key: VirtualKey, now: float) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if not key.is_active:
        return "inactive"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
