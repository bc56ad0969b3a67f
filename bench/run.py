"""Benchmark the gateway against the upstream it fronts and against a bare passthrough floor.

    .venv/bin/python bench/run.py                 # the full run recorded in BENCHMARKS.md
    .venv/bin/python bench/run.py --quick         # a 2-second smoke run

Starts, on free loopback ports: the upstream-shaped server (bench/upstream.py), the floors
(bench/floor.py: Starlette and raw ASGI, each with httpx's pool and with httpx over aiohttp) and the gateway
(``bifrost-asgi serve``, once per ``http_transport``). Then, for every scenario and target, it measures
concurrency 1 (latency percentiles; time to first byte for streams) and concurrency 16 (requests/s, and
the measured server's CPU time per request), each after a warm-up, for ``--rounds`` interleaved rounds
whose medians are reported. The load generator is wrk (with bench/wrk_post.lua) when installed and
bench/loadgen.py otherwise; stream TTFB always comes from bench/loadgen.py, as wrk cannot see it.

With two or more CPUs the measured server gets CPU 0 to itself; the upstream and the load generator
share CPU 1 (for direct-to-upstream runs the load generator takes CPU 0 instead).

Writes bench/results/<timestamp>/results.json (+ results.md, server logs) and prints the tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import _report
from _procs import (
    LOOPBACK,
    CpuSnapshot,
    CpuUse,
    Server,
    free_port,
    pinned,
    serving,
    source_env,
    wait_for_quiet,
)
from _report import Summary

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
TRANSPORTS = ("httpx", "aiohttp")
USER_TEXT = (
    "Our Django service calls a model provider on every page view and the p99 latency doubled after we "
    "added a second worker. We create an httpx.AsyncClient inside each view function. Explain what "
    "connection pooling would change, whether one client per process is enough, and what to measure "
    "before and after the change so that we know it helped. Keep it short; bullet points are fine."
)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    path: str
    body: dict[str, Any]
    stream: bool
    binary: bool = False  # a stream of bytes (speech audio), not Server-Sent Events


def _chat(stream: bool) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": USER_TEXT},
    ]
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": messages,
        "temperature": 0.7,
        "max_tokens": 256,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def _responses(stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "instructions": "You are a concise assistant.",
        "input": USER_TEXT,
        "max_output_tokens": 256,
    }
    return body | {"stream": True} if stream else body


SCENARIOS = {
    # Embeddings: a ~33 KB answer of floats, passed through with usage and extra_fields spliced in.
    "embeddings": Scenario(
        "embeddings", "/v1/embeddings", {"model": "text-embedding-3-small", "input": USER_TEXT}, stream=False
    ),
    # Speech: 64 KB of audio relayed as the upstream writes it (time to first byte at c=1).
    "speech-stream": Scenario(
        "speech-stream",
        "/v1/audio/speech",
        {"model": "tts-1", "voice": "alloy", "input": USER_TEXT},
        stream=True,
        binary=True,
    ),
    "chat": Scenario("chat", "/v1/chat/completions", _chat(False), stream=False),
    "responses": Scenario("responses", "/v1/responses", _responses(False), stream=False),
    "chat-stream": Scenario("chat-stream", "/v1/chat/completions", _chat(True), stream=True),
    "responses-stream": Scenario("responses-stream", "/v1/responses", _responses(True), stream=True),
}
DEFAULT_SCENARIOS = ("chat", "responses", "chat-stream")


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to measure: ``kind`` is direct, floor, floor-raw or gateway."""

    kind: str
    transport: str | None
    server: Server
    upstream: Server | None = None  # what the server forwards to (None: it is the upstream)

    @property
    def label(self) -> str:
        return self.kind if self.transport is None else f"{self.kind}/{self.transport}"


@dataclass(slots=True)
class Cell:
    """One measurement: a scenario, a target, a concurrency, a round."""

    scenario: str
    target: str
    kind: str
    transport: str | None
    concurrency: int
    round: int
    tool: str
    result: dict[str, Any]
    sut_cpu_us_per_request: float | None = None
    background_cpus: float = 0.0  # other work just before the cell
    interference_cpus: float = 0.0  # other work during the cell
    attempts: int = 1


@dataclass(slots=True)
class Plan:
    """Run-wide settings derived from the command line."""

    duration: float
    warmup: float
    rounds: int
    scenarios: list[Scenario]
    use_wrk: bool
    pin: bool
    quiet_limit: float
    quiet_wait: float
    retries: int
    concurrencies: tuple[int, ...]
    out: Path
    gateway_src: Path | None = None  # a snapshot of bifrost_asgi to serve instead of the installed one
    gateway_version: str = ""
    baseline_src: Path | None = None  # with --baseline-ref: the same gateway at another commit, side by side
    baseline_version: str = ""
    bodies: dict[str, Path] = field(default_factory=dict)

    def sut_cpus(self) -> set[int] | None:
        return {0} if self.pin else None

    def shared_cpus(self) -> set[int] | None:
        return {1} if self.pin else None

    def load_cpus(self, target: Target) -> set[int] | None:
        if not self.pin:
            return None
        return {0} if target.kind == "direct" else {1}


# -- servers ----------------------------------------------------------------------------------------


# The kinds served by bifrost-asgi itself (the working tree, or --gateway-ref / --baseline-ref).
GATEWAY_KINDS = ("gateway", "baseline", "gateway-nometrics", "gateway-cache", "gateway-cache-miss")
# Kind "gateway-cache-miss": every request names another cache key with this header, so each one looks
# its entry up, misses, calls the upstream and keeps the answer.
VARY_HEADER = "x-bf-cache-key"


def _gateway_config(plan: Plan, upstream: Server, transport: str, kind: str) -> Path:
    config: dict[str, Any] = {
        "providers": {
            "openai": {"keys": [{"value": "sk-bench"}], "network_config": {"base_url": upstream.base_url}}
        },
        "http_transport": transport,
        # Prometheus metrics are on by default; kind "gateway-nometrics" measures the same tree without.
        "telemetry": {"metrics": kind != "gateway-nometrics"},
    }
    if kind.startswith("gateway-cache"):
        # Kind "gateway-cache": the same body every time, so every request after the first is a direct
        # hit (no header needed: the default key applies).
        cache = {"ttl": "1h", "default_cache_key": "bench"}
        config["plugins"] = [{"name": "semantic_cache", "enabled": True, "config": cache}]
    path = plan.out / f"{kind}-{transport}.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def _gateway_argv(config: Path, port: int) -> list[str]:
    """``bifrost-asgi serve`` (as ``python -m bifrost_asgi``, so that ``PYTHONPATH`` can pick the code)."""
    host = ["--host", LOOPBACK, "--port", str(port)]
    return [PYTHON, "-m", "bifrost_asgi", "serve", "--config", str(config), *host, "--log-level", "warning"]


def _floor_argv(upstream: Server, kind: str, transport: str, port: int) -> list[str]:
    opts = ["--kind", "raw" if kind == "floor-raw" else "starlette", "--transport", transport]
    return [PYTHON, str(BENCH / "floor.py"), "--upstream", upstream.base_url, "--port", str(port), *opts]


def start_servers(
    stack: ExitStack, plan: Plan, kinds: Sequence[str], transports: Sequence[str] = TRANSPORTS
) -> list[Target]:
    """The upstream first, then one floor/gateway process per kind and transport; all stopped by ``stack``."""
    port = free_port()
    argv = [PYTHON, str(BENCH / "upstream.py"), "--port", str(port)]
    upstream = stack.enter_context(serving("upstream", argv, port, plan.out, plan.shared_cpus()))
    targets = [Target("direct", None, upstream)]
    for kind in kinds:
        for transport in transports:
            port = free_port()
            env = None
            if kind in GATEWAY_KINDS:
                config = _gateway_config(plan, upstream, transport, kind)
                argv = _gateway_argv(config, port)
                env = source_env(plan.baseline_src if kind == "baseline" else plan.gateway_src)
            else:
                argv = _floor_argv(upstream, kind, transport, port)
            name = f"{kind}-{transport}"
            server = stack.enter_context(serving(name, argv, port, plan.out, plan.sut_cpus(), env))
            targets.append(Target(kind, transport, server, upstream))
    return targets


# -- load generators --------------------------------------------------------------------------------


def _run_json(argv: list[str], cpus: set[int] | None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a load generator to completion and parse its JSON result line."""
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, preexec_fn=pinned(cpus), timeout=600, check=False
    )
    for line in done.stdout.splitlines():
        line = line.removeprefix("BENCH_JSON ")
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")


def wrk(
    url: str, body: Path, concurrency: int, seconds: float, cpus: set[int] | None, vary: str | None = None
) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    argv += ["-s", str(BENCH / "wrk_post.lua"), url]
    env = {**os.environ, "BENCH_BODY_FILE": str(body)}
    if vary is not None:
        env["BENCH_VARY_HEADER"] = vary
        env["BENCH_VARY_RUN"] = uuid.uuid4().hex  # no value may repeat an earlier run's (a cache hit)
    raw = _run_json(argv, cpus, env=env)
    errors = sum(raw["errors"].values())
    seconds_run = raw["duration_us"] / 1e6
    return {"requests": raw["requests"], "errors": errors, "duration_s": seconds_run,
            "rps": raw["requests"] / seconds_run, "latency_us": raw["latency_us"], "raw": raw}  # fmt: skip


def loadgen(
    plan: Plan, url: str, body: Path, concurrency: int, cpus: set[int] | None, vary: str | None = None
) -> dict[str, Any]:
    argv = [PYTHON, str(BENCH / "loadgen.py"), "--url", url, "--body-file", str(body)]
    argv += ["--vary-header", vary] if vary is not None else []
    argv += [
        "--concurrency",
        str(concurrency),
        "--duration",
        str(plan.duration),
        "--warmup",
        str(plan.warmup),
    ]
    return _run_json(argv, cpus)


Measured = tuple[str, dict[str, Any], CpuUse]


def _load(plan: Plan, target: Target, scenario: Scenario, concurrency: int) -> Measured:
    """Warm up, then one measured run, accounting CPU time around it."""
    url = target.server.base_url + scenario.path
    body = plan.bodies[scenario.name]
    cpus = plan.load_cpus(target)
    use_wrk = plan.use_wrk and not (scenario.stream and concurrency == 1)  # wrk cannot see stream TTFB
    vary = VARY_HEADER if target.kind == "gateway-cache-miss" else None
    if use_wrk:
        wrk(url, body, concurrency, plan.warmup, cpus, vary)
    pids = [s.proc.pid for s in (target.server, target.upstream) if s is not None]
    before = CpuSnapshot.take(pids)
    if use_wrk:
        result = wrk(url, body, concurrency, plan.duration, cpus, vary)
    else:
        result = loadgen(plan, url, body, concurrency, cpus, vary)
    return ("wrk" if use_wrk else "loadgen"), result, CpuUse.between(before, CpuSnapshot.take(pids))


def measure(plan: Plan, target: Target, scenario: Scenario, concurrency: int, rnd: int) -> Cell:
    """One cell, measured again (up to ``plan.retries`` times) when other work disturbed it."""
    attempts = 1
    background = wait_for_quiet(plan.quiet_limit, plan.quiet_wait)
    tool, result, use = _load(plan, target, scenario, concurrency)
    while use.interference > plan.quiet_limit and attempts <= plan.retries:
        print(f"  (disturbed: {use.interference:.2f} CPUs of other work; measuring again)", flush=True)
        attempts += 1
        background = wait_for_quiet(plan.quiet_limit, plan.quiet_wait)
        tool, result, use = _load(plan, target, scenario, concurrency)
    per_request = use.procs[0] / result["requests"] * 1e6 if result["requests"] else None
    cell = Cell(scenario.name, target.label, target.kind, target.transport, concurrency, rnd, tool, result,
                per_request, background, use.interference, attempts)  # fmt: skip
    _progress(cell)
    return cell


def _progress(cell: Cell) -> None:
    r = cell.result
    lat = r.get("ttfb_us") if cell.scenario.endswith("stream") and cell.concurrency == 1 else r["latency_us"]
    print(
        f"  round {cell.round} {cell.scenario:<17} {cell.target:<18} c={cell.concurrency:<2} "
        f"rps={r['rps']:8.0f} p50={lat['p50']:7.0f}us p99={lat['p99']:7.0f}us "
        f"cpu/req={cell.sut_cpu_us_per_request or 0:5.0f}us errors={r['errors']} "
        f"other={cell.background_cpus:.2f}/{cell.interference_cpus:.2f} CPUs",
        flush=True,
    )


# -- checks -----------------------------------------------------------------------------------------


def check(target: Target, scenario: Scenario, body: Path) -> None:
    """One request before measuring: a 200, and from the gateway a body with extra_fields and a cost."""
    import urllib.request

    req = urllib.request.Request(
        target.server.base_url + scenario.path,
        data=body.read_bytes(),
        headers={"content-type": "application/json", "authorization": "Bearer sk-bench"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        content = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{target.label} {scenario.path}: HTTP {resp.status}")
    if scenario.binary:
        if len(content) < 1024:
            raise RuntimeError(f"{target.label} {scenario.name}: {len(content)} bytes of audio")
        return
    if target.kind.startswith("gateway") and (b'"extra_fields"' not in content or b'"cost"' not in content):
        raise RuntimeError(f"{target.label} {scenario.name}: no extra_fields/cost in {content[:300]!r}")
    if scenario.stream and not content.startswith(b"data: ") and not content.startswith(b"event: "):
        raise RuntimeError(f"{target.label} {scenario.name}: not an SSE stream: {content[:200]!r}")


# -- the run ----------------------------------------------------------------------------------------


CellKey = tuple[str, str, int, int]


def _recorded(plan: Plan) -> dict[CellKey, dict[str, Any]]:
    """Cells already measured in ``plan.out`` (by an interrupted run being resumed)."""
    path = plan.out / "cells.jsonl"
    if not path.exists():
        return {}
    cells = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(c["scenario"], c["target"], c["concurrency"], c["round"]): c for c in cells}


def cells_for(plan: Plan, targets: list[Target]) -> Iterator[dict[str, Any]]:
    """Rounds outermost, so that slow drifts in machine load spread over every target alike."""
    recorded = _recorded(plan)
    for rnd in range(plan.rounds):
        for scenario in plan.scenarios:
            for target in targets:
                for concurrency in (1, 16):
                    key = (scenario.name, target.label, concurrency, rnd)
                    if key in recorded:
                        yield recorded[key]
                        continue
                    if concurrency not in plan.concurrencies:
                        continue
                    cell = asdict(measure(plan, target, scenario, concurrency, rnd))
                    with (plan.out / "cells.jsonl").open("a") as log:  # kept if the run is interrupted
                        log.write(json.dumps(cell) + "\n")
                    yield cell


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Benchmark bifrost-asgi against direct and floor.")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up before each cell")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS), help=f"of {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--kinds",
        default="floor,floor-raw,gateway",
        help="which proxies besides direct (also: gateway-cache, direct cache hits; gateway-cache-miss, "
        "caching on and every request another cache key)",
    )
    parser.add_argument(
        "--transports", default=",".join(TRANSPORTS), help="http_transport values (aiohttp: the default)"
    )
    parser.add_argument("--concurrency", default="1,16", help="which of 1 (latency, TTFB) and 16 (RPS)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--quiet-limit", type=float, default=0.2, help="max CPUs busy elsewhere before a cell"
    )
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="max seconds to wait for that")
    parser.add_argument("--retries", type=int, default=2, help="re-measure a disturbed cell this often")
    parser.add_argument("--quick", action="store_true", help="2 s cells, 1 round: a smoke run")
    parser.add_argument(
        "--resume", metavar="RESULTS_DIR", help="continue an interrupted run in its directory"
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="also serve the gateway with Prometheus metrics off (kind 'gateway-nometrics'): the cost of "
        "metrics, in one run",
    )
    parser.add_argument("--report", metavar="RESULTS_JSON", help="only print the tables of an earlier run")
    parser.add_argument(
        "--gateway-ref", help="serve bifrost_asgi as committed at this git ref (default: the working tree)"
    )
    parser.add_argument(
        "--baseline-ref",
        help="also serve bifrost_asgi at this ref as kind 'baseline' (add it to --kinds): before/after "
        "in one run",
    )
    return parser


def make_plan(args: argparse.Namespace) -> Plan:
    have_wrk = shutil.which("wrk") is not None
    if args.loadgen == "wrk" and not have_wrk:
        raise SystemExit("wrk is not installed (apt-get install -y wrk), or use --loadgen python")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.resume) if args.resume else BENCH / "results" / stamp
    (out / "bodies").mkdir(parents=True, exist_ok=True)
    plan = Plan(
        duration=2.0 if args.quick else args.duration,
        warmup=0.5 if args.quick else args.warmup,
        rounds=1 if args.quick else args.rounds,
        scenarios=[SCENARIOS[name] for name in args.scenarios.split(",")],
        use_wrk=have_wrk and args.loadgen != "python",
        pin=not args.no_pin and len(os.sched_getaffinity(0)) >= 2,
        quiet_limit=args.quiet_limit,
        quiet_wait=args.quiet_wait,
        retries=args.retries,
        concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
        out=out,
    )
    if args.gateway_ref:
        plan.gateway_src = out / "gateway-src"
        plan.gateway_version = _extract_ref(args.gateway_ref, plan.gateway_src)
    else:
        plan.gateway_version = _working_tree_version()
    if args.baseline_ref:
        plan.baseline_src = out / "baseline-src"
        plan.baseline_version = _extract_ref(args.baseline_ref, plan.baseline_src)
    for scenario in plan.scenarios:
        path = out / "bodies" / f"{scenario.name}.json"
        path.write_bytes(json.dumps(scenario.body, separators=(",", ":")).encode())
        plan.bodies[scenario.name] = path
    return plan


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, check=True).stdout


def _extract_ref(ref: str, dest: Path) -> str:
    """Unpack ``bifrost_asgi/`` as of ``ref`` into ``dest``; return the commit."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}").decode().strip()
    archive = _git("archive", "--format=tar", commit, "bifrost_asgi")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def _working_tree_version() -> str:
    commit = _git("rev-parse", "HEAD").decode().strip()
    dirty = _git("status", "--porcelain", "--", "bifrost_asgi").strip()
    return commit + ("+uncommitted changes" if dirty else "")


def _on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the ExitStack, which stops every server


def run(args: argparse.Namespace) -> Path:
    """Measure everything; return the results file."""
    plan = make_plan(args)
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = dt.datetime.now(dt.UTC)
    loadgen_name = "wrk" if plan.use_wrk else "bench/loadgen.py"
    print(f"results in {plan.out}; load generator: {loadgen_name}", flush=True)
    print(f"gateway: bifrost_asgi at {plan.gateway_version}", flush=True)
    if plan.baseline_version:
        print(f"baseline: bifrost_asgi at {plan.baseline_version}", flush=True)
    with ExitStack() as stack:
        kinds = args.kinds.split(",") + (["gateway-nometrics"] if args.metrics else [])
        targets = start_servers(stack, plan, kinds, args.transports.split(","))
        for target in targets:
            for scenario in plan.scenarios:
                check(target, scenario, plan.bodies[scenario.name])
        cells = list(cells_for(plan, targets))
    document = {
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "resumed": bool(args.resume),
        "machine": _report.machine(),
        "settings": {
            k: str(v) if isinstance(v, Path) else v for k, v in asdict(plan).items() if k != "bodies"
        },
        "scenarios": {s.name: asdict(s) for s in plan.scenarios},
        "summary": Summary.build(cells).as_dict(),
        "cells": cells,
    }
    path = plan.out / "results.json"
    path.write_text(json.dumps(document, indent=2, default=str))
    return path


def report(path: Path) -> str:
    """The Markdown tables for a results file (also written next to it as results.md)."""
    document = json.loads(path.read_text())
    scenarios = [SCENARIOS[name] for name in document["scenarios"]]
    markdown = _report.markdown(Summary.build(document["cells"]), scenarios)
    path.with_suffix(".md").write_text(markdown)
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = Path(args.report) if args.report else run(args)
    print("\n" + report(path))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
