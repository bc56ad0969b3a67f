"""Benchmarks for token counting (issue 3) and governance overhead (issue 5), in one run.

    .venv/bin/python bench/extras.py [--seconds 5] [--redis redis://127.0.0.1:6379/0]

Token counting: requests per second to ``/v1/responses/input_tokens`` for a ~2 KB and a ~170 KB input
(wrk, c=16, tokens returned), side by side with raw in-process tiktoken on the same text — the
baseline measured in the same run, on one core. The gateway is measured twice: pinned to CPU 0 with wrk
on CPU 1 (per core: the fair comparison with the one-core baseline), and unpinned (the whole machine).
Governance: chat completions against the mock provider with no governance, then with a virtual key and
a rate limit + budget on the memory, SQLite and Redis counter stores (c=16), reported as ratios against
the ungoverned gateway.

Prints Markdown tables and writes bench/results/extras-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import Server, free_port, pinned, serving  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LUA = ROOT / "bench" / "wrk_post.lua"
KEY = "sk-bf-" + "b" * 43
PARAGRAPH = (
    "The gateway counts every token the model will see: instructions, each input item, tool schemas. "
    "Größe, 東京, and emoji 🚀 count too, with tiktoken's own encodings shipped inside the package. "
)


def text_of(size: int) -> str:
    return (PARAGRAPH * (size // len(PARAGRAPH) + 1))[:size]


def wrk(
    url: str,
    body: bytes,
    concurrency: int,
    seconds: float,
    headers: dict[str, str] | None = None,
    cpus: set[int] | None = None,
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        f.write(body)
    env = {**os.environ, "BENCH_BODY_FILE": f.name}
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "-s", str(LUA), url]
    for name, value in (headers or {}).items():
        argv[1:1] = ["-H", f"{name}: {value}"]
    try:
        out = subprocess.run(
            argv, env=env, capture_output=True, text=True, check=True, preexec_fn=pinned(cpus)
        ).stdout
    finally:
        os.unlink(f.name)
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH_JSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def raw_tiktoken_rate(text: str, seconds: float, with_strings: bool, cpu: int | None) -> float:
    """Encodes per second of the same text, in this process on one core (``cpu``): the baseline."""
    from bifrost_asgi.tokens.encodings import get_encoding, token_strings

    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        enc = get_encoding("o200k_base")
        enc.encode_ordinary(text)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            tokens = enc.encode_ordinary(text)
            if with_strings:
                token_strings(enc, tokens)
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        os.sched_setaffinity(0, before)


@contextmanager
def gateway(config: dict[str, Any], log_dir: Path, cpus: set[int] | None = None) -> Iterator[Server]:
    path = log_dir / f"config-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(config))
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bifrost_asgi",
        "serve",
        "--config",
        str(path),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with serving("gateway", argv, port, log_dir, cpus=cpus, env=env) as server:
        yield server


def count_tokens(log_dir: Path, seconds: float) -> list[dict[str, Any]]:
    config = {
        "providers": {
            "openai": {"keys": [{"value": "sk-unused"}], "network_config": {"base_url": "http://127.0.0.1:9"}}
        }
    }
    two_cpus = len(os.sched_getaffinity(0)) >= 2
    layouts: list[tuple[str, set[int] | None, set[int] | None]] = [("whole machine", None, None)]
    if two_cpus:
        layouts.insert(0, ("one core", {0}, {1}))  # gateway on CPU 0, wrk on CPU 1
    rows = []
    for layout, gw_cpus, wrk_cpus in layouts:
        with gateway(config, log_dir, gw_cpus) as gw:
            for label, size in (("~2 KB", 2_000), ("~170 KB", 170_000)):
                text = text_of(size)
                body = json.dumps({"model": "openai/gpt-4o", "input": text}).encode()
                url = gw.base_url + "/v1/responses/input_tokens"
                wrk(url, body, 4, 1, cpus=wrk_cpus)  # warm-up: encodings loaded, connections open
                served = wrk(url, body, 16, seconds, cpus=wrk_cpus)
                cpu = 0 if two_cpus else None
                raw = raw_tiktoken_rate(text, seconds, with_strings=True, cpu=cpu)
                raw_count = raw_tiktoken_rate(text, seconds, with_strings=False, cpu=cpu)
                rows.append(
                    {
                        "input": label,
                        "layout": layout,
                        "bytes": len(body),
                        "gateway_rps": served["rps"],
                        "p50_ms": served["latency_us"]["p50"] / 1000,
                        "raw_tiktoken_with_strings_rps": raw,
                        "raw_tiktoken_encode_only_rps": raw_count,
                        "errors": served["errors"],
                    }
                )
    return rows


def governed_config(counters: dict[str, Any] | None, db: Path) -> dict[str, Any]:
    config: dict[str, Any] = {"providers": {"mock": {"keys": [{"value": "u", "models": ["mock-1"]}]}}}
    if counters is not None:
        config["governance"] = {
            "store": {"type": "sqlite", "path": str(db)},
            "counters": counters,
            "logs": {"enabled": True},
            "virtual_keys": [
                {
                    "id": "bench",
                    "name": "bench",
                    "value": KEY,
                    "allow_all_providers": True,
                    "rate_limit_id": "rl",
                }
            ],
            "rate_limits": [
                {
                    "id": "rl",
                    "request_max_limit": 10**9,
                    "request_reset_duration": "1h",
                    "token_max_limit": 10**12,
                    "token_reset_duration": "1h",
                }
            ],
            "budgets": [{"id": "b", "max_limit": 10**6, "reset_duration": "1M", "virtual_key_id": "bench"}],
        }
    return config


def governance(log_dir: Path, seconds: float, redis_url: str | None) -> list[dict[str, Any]]:
    body = json.dumps({"model": "mock/mock-1", "messages": [{"role": "user", "content": "hi"}]}).encode()
    cases: list[tuple[str, dict[str, Any] | None]] = [
        ("off", None),
        ("memory", {"type": "memory"}),
        ("sqlite", {"type": "sqlite"}),
    ]
    if redis_url:
        cases.append(("redis", {"type": "redis", "url": redis_url, "prefix": f"bench-{time.time_ns()}:"}))
    rows = []
    for name, counters in cases:
        with gateway(governed_config(counters, log_dir / f"{name}.db"), log_dir) as gw:
            url = gw.base_url + "/v1/chat/completions"
            headers = {"x-bf-vk": KEY} if counters is not None else None
            wrk(url, body, 4, 1, headers)
            c1 = wrk(url, body, 1, seconds, headers)
            c16 = wrk(url, body, 16, seconds, headers)
            rows.append(
                {
                    "governance": name,
                    "c1_p50_ms": c1["latency_us"]["p50"] / 1000,
                    "c16_rps": c16["rps"],
                    "errors": c16["errors"],
                }
            )
    return rows


def markdown(tokens: list[dict[str, Any]], gov: list[dict[str, Any]]) -> str:
    lines = [
        "### Token counting (`/v1/responses/input_tokens`, c=16, tokens and token_strings returned)",
        "",
        "| input | gateway on | gateway RPS | p50 ms | raw tiktoken encode+strings /s (1 core) | ratio "
        "| raw encode-only /s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in tokens:
        ratio = r["gateway_rps"] / r["raw_tiktoken_with_strings_rps"]
        lines.append(
            f"| {r['input']} | {r['layout']} | {r['gateway_rps']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['raw_tiktoken_with_strings_rps']:.0f} | {ratio:.2f}× "
            f"| {r['raw_tiktoken_encode_only_rps']:.0f} |"
        )
    base = next(r for r in gov if r["governance"] == "off")
    lines += [
        "",
        "### Governance overhead (chat completions, mock provider)",
        "",
        "| governance | c=1 p50 ms | c=16 RPS | RPS vs off |",
        "|---|---|---|---|",
    ]
    for r in gov:
        ratio = r["c16_rps"] / base["c16_rps"]
        lines.append(f"| {r['governance']} | {r['c1_p50_ms']:.2f} | {r['c16_rps']:.0f} | {ratio:.2f}× |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' to skip the Redis row")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is required: apt-get install wrk", file=sys.stderr)
        return 2
    out_dir = ROOT / "bench" / "results" / f"extras-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    tokens = count_tokens(out_dir, args.seconds)
    gov = governance(out_dir, args.seconds, args.redis or None)
    (out_dir / "results.json").write_text(json.dumps({"count_tokens": tokens, "governance": gov}, indent=2))
    print(markdown(tokens, gov))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
