"""Governance at full speed (issue 16): governed against ungoverned throughput and latency, same run.

    .venv/bin/python bench/governance.py [--rounds 3] [--seconds 5] [--baseline-ref REF] [--no-django]
                                           [--cases memory,sqlite,redis,memory-nologs,sqlite-noleases,...]

``bifrost-asgi serve`` (one worker) in front of bench/upstream.py, ``POST /v1/responses``. Ungoverned
("off"), then with a virtual key, a request limit, a token limit, a budget and usage logs on, with the
counters in memory, SQLite (the embedded default) and Redis; and the Django app (test project under
uvicorn, one worker, ORM stores on PostgreSQL) with and without a key. With ``--baseline-ref`` the same
gateway cases also run at that commit, for a before/after. Each round measures every case at c=1 (p50
latency) and c=16 (requests/s), each cell beside an ungoverned cell of its own (before it in even rounds,
after it in odd ones), and reports the median over rounds of those paired ratios and differences. The
measured server has CPU 0; upstream and wrk share CPU 1.

Writes bench/results/governance-<time>/results.json and prints Markdown.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import LOOPBACK, free_port, pinned, serving, source_env  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
KEY = "sk-bf-" + "g" * 43
BODY = {
    "model": "openai/gpt-4o-mini",
    "instructions": "You are a concise assistant.",
    "input": "Explain connection pooling in two sentences, then list what to measure before and after.",
    "max_output_tokens": 256,
}
LIMITS = {
    "virtual_keys": [
        {"id": "bench", "name": "bench", "value": KEY, "allow_all_providers": True, "rate_limit_id": "rl"}
    ],
    "rate_limits": [
        {"id": "rl", "request_max_limit": 10**9, "request_reset_duration": "1h",
         "token_max_limit": 10**12, "token_reset_duration": "1h"}
    ],
    "budgets": [{"id": "b", "max_limit": 10**6, "reset_duration": "1M", "virtual_key_id": "bench"}],
}  # fmt: skip
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"


@dataclass
class Case:
    name: str
    url: str
    headers: dict[str, str]
    cells: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: {1: [], 16: []})
    # (ungoverned cell, this case's cell) measured back to back, per concurrency.
    pairs: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = field(
        default_factory=lambda: {1: [], 16: []}
    )


def _config(upstream: str, counters: dict[str, Any] | None, db: Path) -> dict[str, Any]:
    config: dict[str, Any] = {
        "providers": {"openai": {"keys": [{"value": "sk-bench"}], "network_config": {"base_url": upstream}}}
    }
    if counters is not None:
        counters = dict(counters)
        logs = counters.pop("logs", True)  # a bench-only switch: the usage log's share of the cost
        config["governance"] = {
            "store": {"type": "sqlite", "path": str(db)},
            "counters": counters,
            "logs": {"enabled": logs},
            **LIMITS,
        }
    return config


@contextmanager
def _gateway(name: str, config: dict[str, Any], out: Path, src: Path | None) -> Iterator[str]:
    path = out / f"{name}.json"
    path.write_text(json.dumps(config))
    port = free_port()
    argv = [sys.executable, "-m", "bifrost_asgi", "serve", "--config", str(path), "--host", LOOPBACK,
            "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with serving(name, argv, port, out, {0}, source_env(src)) as server:
        yield server.base_url


@contextmanager
def _django(upstream: str, out: Path) -> Iterator[tuple[str, str]]:
    """The test project on PostgreSQL under uvicorn (one worker), with the bench key created in the ORM."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIFROST_", "DJTEST_"))}
    env |= {"DJANGO_SETTINGS_MODULE": "tests.contrib_django.settings", "DJTEST_DB": f"postgres:{name}",
            "DJTEST_UPSTREAM": upstream, "PYTHONPATH": str(ROOT),
            # The test settings flush usage logs every 50 ms (tests read them at once); a deployment
            # flushes at the default (logs.flush_interval_ms), as the gateway cases here do,
            "DJTEST_FLUSH_MS": "500",
            # and keeps key lookups for the default 2 s, not the test settings' 0.5 s.
            "DJTEST_KEY_TTL": "2"}  # fmt: skip
    try:
        subprocess.run([sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                       env=env, check=True)  # fmt: skip
        made = subprocess.run([sys.executable, "-m", "django", "shell", "-c", _DJANGO_KEY], cwd=ROOT,
                              env=env, check=True, capture_output=True, text=True)  # fmt: skip
        key = next(x for x in made.stdout.split("\n") if x.startswith("BENCH_KEY ")).split()[1]
        port = free_port()
        argv = [sys.executable, "-m", "uvicorn", "tests.contrib_django.asgi:application", "--port",
                str(port), "--host", LOOPBACK, "--lifespan", "on", "--log-level", "warning"]  # fmt: skip
        with serving("django", argv, port, out, {0}, env, health="/ai/health") as server:
            yield server.base_url + "/ai", key
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


# The same limits as LIMITS, on a key made in the Django app's own models (its plaintext printed once).
_DJANGO_KEY = """
from bifrost_django.models import VirtualKey
key, value = VirtualKey.objects.create_key(
    name="bench", allow_all_providers=True,
    rate_limit={"request_max_limit": 10**9, "request_reset_duration": "1h",
                "token_max_limit": 10**12, "token_reset_duration": "1h"},
    budgets=[{"max_limit": 10**6, "reset_duration": "1M"}],
)
print("BENCH_KEY", value)
"""


def _wrk(url: str, concurrency: int, seconds: float, headers: dict[str, str], body: Path) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(BENCH / "wrk_post.lua")]  # fmt: skip
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    env = {**os.environ, "BENCH_BODY_FILE": str(body)}
    done = subprocess.run([*argv, url], capture_output=True, text=True, env=env, preexec_fn=pinned({1}),
                          timeout=600, check=False)  # fmt: skip
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON "))
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(raw["errors"].values())
    return {"rps": raw["requests"] / (raw["duration_us"] / 1e6), "p50_us": raw["latency_us"]["p50"],
            "errors": errors}  # fmt: skip


def _extract(ref: str, dest: Path) -> str:
    commit = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    archive = subprocess.run(["git", "archive", "--format=tar", commit, "bifrost_asgi"], cwd=ROOT,
                             capture_output=True, check=True).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = BENCH / "results" / f"governance-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    body = out / "body.json"
    body.write_text(json.dumps(BODY))
    redis = {"type": "redis", "url": args.redis, "prefix": f"bench-{time.time_ns()}:"}
    stores: list[tuple[str, dict[str, Any] | None]] = [
        ("off", None), ("memory", {"type": "memory"}), ("sqlite", {"type": "sqlite"}), ("redis", redis),
        ("memory-nologs", {"type": "memory", "logs": False}),
    ]  # fmt: skip
    cases: list[Case] = []
    with ExitStack() as stack:
        port = free_port()
        upstream_argv = [sys.executable, str(BENCH / "upstream.py"), "--port", str(port)]
        upstream = stack.enter_context(serving("upstream", upstream_argv, port, out, {1})).base_url
        sources: list[tuple[str, Path | None]] = [("", None)]
        if args.baseline_ref:
            src = out / "baseline-src"
            _extract(args.baseline_ref, src)
            sources.append(("baseline ", src))
        # Leases off (every request asks the store), for the same-run effect of leases: this tree only,
        # since an older one's config may not know the setting.
        shared = [(n, c) for n, c in stores if n in ("sqlite", "redis") and c is not None]
        without_leases = [(f"{n}-noleases", {**c, "leases": False}) for n, c in shared]
        wanted = set(args.cases.split(",")) if args.cases else None
        for label, src in sources:
            for name, counters in stores + (without_leases if src is None else []):
                if wanted is not None and name not in wanted and name != "off":
                    continue
                config = _config(upstream, counters, out / f"{label.strip() or 'now'}-{name}.db")
                url = stack.enter_context(_gateway(f"{label}{name}".replace(" ", "-"), config, out, src))
                headers = {"x-bf-vk": KEY} if counters is not None else {}
                cases.append(Case(f"{label}{name}", url + "/v1/responses", headers))
        if args.django:
            site, key = stack.enter_context(_django(upstream, out))
            cases.append(Case("django off", site + "/v1/responses", {}))
            cases.append(Case("django postgres", site + "/v1/responses", {"x-bf-vk": key}))
        for case in cases:  # warm up every server (pools, encodings, caches) before measuring
            _wrk(case.url, 4, 1, case.headers, body)
        by_name = {c.name: c for c in cases}
        for round_ in range(args.rounds):
            for case in cases:
                base = by_name[_base_name(case.name)]
                if case is base:
                    continue
                # Each case beside its own ungoverned measurement, taken just before or after it (the
                # order alternating by round): the machine's speed drifts by ±10% over minutes here, and
                # a ratio of two cells a minute apart measured the drift as much as the gateway.
                order = (base, case) if round_ % 2 == 0 else (case, base)
                for concurrency in (1, 16):
                    for measured in order:
                        measured.cells[concurrency].append(
                            _wrk(measured.url, concurrency, args.seconds, measured.headers, body)
                        )
                    case.pairs[concurrency].append((base.cells[concurrency][-1], case.cells[concurrency][-1]))
    results = {
        c.name: {
            "c1_p50_us": statistics.median(x["p50_us"] for x in c.cells[1]),
            "c16_rps": statistics.median(x["rps"] for x in c.cells[16]),
            "rounds_c16_rps": [x["rps"] for x in c.cells[16]],
            "errors": sum(x["errors"] for x in c.cells[1] + c.cells[16]),
            # Against the ungoverned cell measured beside each of its own: the figures to compare.
            "paired_c16_ratios": [x["rps"] / off["rps"] for off, x in c.pairs[16]],
            "paired_c1_deltas_us": [x["p50_us"] - off["p50_us"] for off, x in c.pairs[1]],
        }
        for c in cases
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {out / 'results.json'}")
    return results


def _base_name(name: str) -> str:
    if name.startswith("django"):
        return "django off"
    return "baseline off" if name.startswith("baseline") else "off"


def markdown(results: dict[str, Any]) -> str:
    lines = ["| case | c=1 p50 − ungoverned beside it (median; rounds) | c=16 RPS / ungoverned beside it "
             "(median; rounds) | c=16 RPS (median) | errors |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, r in results.items():
        base = results[_base_name(name)]
        if name == _base_name(name):
            lines.append(f"| {name} | – | 1.00× | {r['c16_rps']:,.0f} | {r['errors']} |")
            continue
        ratios = r.get("paired_c16_ratios") or [r["c16_rps"] / base["c16_rps"]]
        deltas = r.get("paired_c1_deltas_us") or [r["c1_p50_us"] - base["c1_p50_us"]]
        lines.append(
            f"| {name} | {statistics.median(deltas):+,.0f} µs; {', '.join(f'{d:+,.0f}' for d in deltas)} | "
            f"**{statistics.median(ratios):.2f}×**; {', '.join(f'{x:.2f}' for x in ratios)} | "
            f"{r['c16_rps']:,.0f} | {r['errors']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--baseline-ref", help="also run the gateway cases at this commit (before/after)")
    parser.add_argument("--no-django", dest="django", action="store_false")
    parser.add_argument("--cases", help="only these gateway cases besides off (memory,sqlite,redis,...)")
    parser.add_argument("--report", help="print the tables of an earlier results.json")
    args = parser.parse_args()
    results = json.loads(Path(args.report).read_text()) if args.report else run(args)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
