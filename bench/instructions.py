"""CPU instructions per gateway request, counted by valgrind's callgrind: a measure that does not move
with whatever else the machine is doing (the same count run after run, to ~0.1%), for costs too small
to see through the noise of requests per second on a shared machine (metrics, governance steps).

    .venv/bin/python bench/instructions.py [--cases off,off-nometrics,memory,sqlite] [--requests 400]
                                           [--baseline-ref REF] [--jobs 2]

Each case is ``bifrost-asgi serve`` under callgrind in front of bench/upstream.py, ``POST /v1/responses``
(the body of bench/governance.py). After a warm-up the counters are zeroed, exactly ``--requests``
requests are sent ``--concurrency`` at a time, and the counters are dumped: instructions per request,
every thread of the server included (the log writer's too). Ratios are against the case "off" (no
governance, metrics on, the default) of the same tree.

Under callgrind a request takes ~50x as long, so anything timed would fire ~50x as often per request:
the key cache lives longer here (``key_cache_ttl_seconds``) and usage logs are written in full batches of
200 (``--requests`` a multiple of it), as they are under load. What this does not see: time waiting on
locks, the GIL or the kernel, cache misses. Requests per second (bench/run.py, bench/governance.py)
remain the measure of throughput; this one says where instructions went.

Needs valgrind (Debian: ``apt-get install valgrind``). Writes bench/results/instructions-<time>/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import LOOPBACK, free_port, serving, source_env, stop  # noqa: E402
from governance import BODY, KEY, LIMITS, _extract  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

# name -> (governance counters or None, extra top-level config)
CASES: dict[str, tuple[dict[str, Any] | None, dict[str, Any]]] = {
    "off": (None, {}),
    "off-nometrics": (None, {"telemetry": {"metrics": False}}),
    "memory": ({"type": "memory"}, {}),
    "memory-nologs": ({"type": "memory"}, {"logs": False}),
    "sqlite": ({"type": "sqlite"}, {}),
    "redis": ({"type": "redis", "url": "redis://127.0.0.1:6379/0"}, {}),
    # Every request asks the shared store (no leases: stores/leases.py); this tree only.
    "sqlite-noleases": ({"type": "sqlite", "leases": False}, {}),
    "redis-noleases": ({"type": "redis", "url": "redis://127.0.0.1:6379/0", "leases": False}, {}),
}
# Under callgrind a request takes ~50x as long: a lease lives as many requests as it does at full speed
# when its time is stretched as much (0.25 s, the default, x 50). Set for this tree only: the baseline's
# config may not know leases.
LEASE_SECONDS_UNDER_CALLGRIND = 12.5


def _config(case: str, upstream: str, out: Path, *, current: bool) -> dict[str, Any]:
    counters, extra = CASES[case]
    if counters is not None and current and counters["type"] != "memory":
        counters = {"lease_seconds": LEASE_SECONDS_UNDER_CALLGRIND, **counters}
    config: dict[str, Any] = {
        "providers": {"openai": {"keys": [{"value": "sk-bench"}], "network_config": {"base_url": upstream}}}
    }
    if counters is not None:
        if counters["type"] == "redis":
            counters = {**counters, "prefix": f"bench-instr-{time.time_ns()}:"}
        config["governance"] = {
            "store": {"type": "sqlite", "path": str(out / f"{case}-{time.time_ns()}.db")},
            "counters": counters,
            "logs": {"enabled": extra.get("logs", True), "batch_size": 200, "flush_interval_ms": 3_600_000},
            "key_cache_ttl_seconds": 3600,
            **LIMITS,
        }
    if "telemetry" in extra:
        config["telemetry"] = extra["telemetry"]
    return config


def known_cases(names: list[str]) -> list[str]:
    """``names``, once each is known to be one of `CASES` (a clear exit otherwise)."""
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        raise SystemExit(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    return names


def request_headers(case: str) -> dict[str, str]:
    """What each request of ``case`` sends: the bench key where the case is governed."""
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    if CASES[case][0] is not None:
        headers["x-bf-vk"] = KEY
    return headers


async def _send(url: str, headers: dict[str, str], count: int, concurrency: int) -> int:
    """Send exactly ``count`` requests, ``concurrency`` at a time; how many failed."""
    body = json.dumps(BODY).encode()
    left = list(range(count))
    failed = 0
    async with httpx.AsyncClient(timeout=120) as client:

        async def worker() -> None:
            nonlocal failed
            while left:
                left.pop()
                answer = await client.post(url, content=body, headers=headers)
                failed += answer.status_code != 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


def _total(dump: Path) -> int:
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {dump}")


def measure(
    case: str, src: Path | None, upstream: str, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    label = f"{'baseline-' if src else ''}{case}"
    config = out / f"{label}.json"
    config.write_text(json.dumps(_config(case, upstream, out, current=src is None)))
    port = free_port()
    dump = out / f"{label}.callgrind"
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}", sys.executable, "-m",
            "bifrost_asgi", "serve", "--config", str(config), "--host", LOOPBACK, "--port", str(port),
            "--log-level", "warning"]  # fmt: skip
    env = source_env(src)
    url = f"http://{LOOPBACK}:{port}/v1/responses"
    headers = request_headers(case)
    with serving(label, argv, port, out, None, env, startup_timeout=600) as server:
        asyncio.run(_send(url, headers, args.warmup, args.concurrency))
        time.sleep(1.0)
        subprocess.run(["callgrind_control", "-z", str(server.proc.pid)], check=True, capture_output=True)
        failed = asyncio.run(_send(url, headers, args.requests, args.concurrency))
        time.sleep(1.5)  # what the last requests left behind (a log batch, a settlement) finishes
        before = set(out.glob(f"{label}.callgrind*"))
        subprocess.run(["callgrind_control", "-d", str(server.proc.pid)], check=True, capture_output=True)
        time.sleep(1.0)
        dumped = sorted(set(out.glob(f"{label}.callgrind*")) - before)
        total = _total(dumped[-1])
        stop(server.proc)
    return {"case": label, "instructions_per_request": total / args.requests, "failed": failed}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    cases = known_cases(args.cases.split(","))
    out = BENCH / "results" / f"instructions-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    sources: list[Path | None] = [None]
    if args.baseline_ref:
        src = out / "baseline-src"
        _extract(args.baseline_ref, src)
        sources.append(src)
    with ExitStack() as stack:
        port = free_port()
        upstream_argv = [sys.executable, str(BENCH / "upstream.py"), "--port", str(port)]
        upstream = stack.enter_context(serving("upstream", upstream_argv, port, out)).base_url
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(measure, c, s, upstream, out, args) for s in sources for c in cases]
            results = [f.result() for f in futures]
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {out / 'results.json'}")
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    by_name = {r["case"]: r for r in results}
    lines = ["| case | instructions / request | vs off (same tree) | failed |", "|---|---|---|---|"]
    for r in results:
        base = by_name.get("baseline-off" if r["case"].startswith("baseline-") else "off")
        ratio = f"{base['instructions_per_request'] / r['instructions_per_request']:.3f}×" if base else "—"
        lines.append(f"| {r['case']} | {r['instructions_per_request']:,.0f} | {ratio} | {r['failed']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="off,off-nometrics,memory,sqlite")
    parser.add_argument("--requests", type=int, default=400, help="a multiple of 200 (one log batch)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2, help="cases measured at once")
    parser.add_argument("--baseline-ref", help="also measure the cases at this commit")
    parser.add_argument("--report", help="print the table of an earlier results.json")
    args = parser.parse_args()
    results = json.loads(Path(args.report).read_text()) if args.report else run(args)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
