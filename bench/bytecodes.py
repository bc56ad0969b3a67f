"""Python bytecodes per gateway request, by function: where the interpreted work of a case goes, against
the case "off" (no governance). Counted, not timed: the same figures run after run, whatever else the
machine is doing, and each function named (callgrind, in bench/instructions.py, counts CPU instructions
but cannot tell one Python function from another).

    .venv/bin/python bench/bytecodes.py [--cases off,memory,sqlite] [--requests 400] [--top 40]

Each case is ``bifrost-asgi serve`` (bench/instructions.py's configurations) in front of
bench/upstream.py, with bench/_trace/sitecustomize.py loaded: after a warm-up, exactly ``--requests``
requests are sent while every bytecode the event loop's thread executes is counted by function. What it
does not see: work in C (SQLite, orjson, the HTTP parsers), other threads (the log writer's checkpoints).
Under the tracer a request takes ~50x as long, so the settings bench/instructions.py stretches for
callgrind (lease time, key cache, log batches) are stretched the same way here.

Writes bench/results/bytecodes-<time>/ and prints, per case, the functions that differ most from "off".
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import LOOPBACK, free_port, serving  # noqa: E402
from instructions import _config, _send, known_cases, request_headers  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def measure(case: str, upstream: str, out: Path, args: argparse.Namespace) -> dict[str, float]:
    """Bytecodes per request of ``case``, by ``file:line name`` of the function."""
    config = out / f"{case}.json"
    config.write_text(json.dumps(_config(case, upstream, out, current=True)))
    counts = out / f"{case}.counts.json"
    env = {**os.environ, "PYTHONPATH": str(BENCH / "_trace"), "BENCH_BYTECODES_OUT": str(counts)}
    port = free_port()
    argv = [sys.executable, "-m", "bifrost_asgi", "serve", "--config", str(config), "--host", LOOPBACK,
            "--port", str(port), "--log-level", "warning"]  # fmt: skip
    headers = request_headers(case)
    url = f"http://{LOOPBACK}:{port}/v1/responses"
    with serving(case, argv, port, out, None, env, startup_timeout=60) as server:
        asyncio.run(_send(url, headers, args.warmup, args.concurrency))
        time.sleep(1.0)
        server.proc.send_signal(signal.SIGUSR2)
        time.sleep(0.5)
        failed = asyncio.run(_send(url, headers, args.requests, args.concurrency))
        time.sleep(1.5)  # what the last requests left behind (a log batch, a settlement) finishes
        server.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not counts.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    if failed:
        raise SystemExit(f"{case}: {failed} requests failed")
    by_function: collections.Counter[str] = collections.Counter()
    for (filename, line, name), count in json.loads(counts.read_text()):
        short = filename.split("site-packages/")[-1].removeprefix(f"{ROOT}/")
        by_function[f"{short}:{line} {name}"] += count
    return {name: count / args.requests for name, count in by_function.items()}


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    cases = known_cases(args.cases.split(","))
    if "off" not in cases:
        cases.insert(0, "off")
    out = BENCH / "results" / f"bytecodes-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    with ExitStack() as stack:
        port = free_port()
        upstream_argv = [sys.executable, str(BENCH / "upstream.py"), "--port", str(port)]
        upstream = stack.enter_context(serving("upstream", upstream_argv, port, out)).base_url
        results = {case: measure(case, upstream, out, args) for case in cases}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {out / 'results.json'}")
    return results


def markdown(results: dict[str, dict[str, float]], top: int) -> str:
    off = results["off"]
    lines = ["| case | bytecodes / request | more than off |", "|---|---|---|"]
    lines += [f"| {c} | {sum(r.values()):,.0f} | {sum(r.values()) - sum(off.values()):+,.0f} |"
              for c, r in results.items()]  # fmt: skip
    for case, counts in results.items():
        if case == "off":
            continue
        diffs = sorted(((counts.get(f, 0.0) - off.get(f, 0.0), f) for f in counts.keys() | off.keys()),
                       key=lambda d: -abs(d[0]))  # fmt: skip
        lines += ["", f"**{case}**, the {top} functions that differ most from off (bytecodes / request):", "",
                  "| function | off | this case | difference |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| `{f}` | {off.get(f, 0.0):,.1f} | {counts.get(f, 0.0):,.1f} | {d:+,.1f} |"
                  for d, f in diffs[:top]]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="off,memory,sqlite")
    parser.add_argument("--requests", type=int, default=400, help="a multiple of 200 (one log batch)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--report", help="print the tables of an earlier results.json")
    args = parser.parse_args()
    results: dict[str, Any] = json.loads(Path(args.report).read_text()) if args.report else run(args)
    print(markdown(results, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
