"""Turning benchmark cells into medians, ratios against the same run's baselines, and Markdown tables."""

from __future__ import annotations

import math
import os
import platform
import shutil
import statistics
import subprocess
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

# The targets (issue 2, "Fast by design").
ADDED_LATENCY_TARGET_US = 500.0
PACKAGES = ("bifrost-asgi", "uvicorn", "starlette", "httpx", "httpcore", "h11", "aiohttp", "httpx-aiohttp",
            "orjson", "uvloop", "httptools")  # fmt: skip
# A cell during which other processes used more CPU than this is "disturbed" (see run.py's --quiet-limit).
DISTURBED_CPUS = 0.2
KIND_ORDER = (
    "direct", "floor-raw", "floor", "baseline", "gateway-nometrics", "gateway", "gateway-cache-miss",
    "gateway-cache",
)  # fmt: skip


class ScenarioLike(Protocol):
    name: str
    stream: bool


@dataclass(slots=True)
class Row:
    """Medians over rounds for one scenario and target."""

    scenario: str
    target: str
    kind: str
    transport: str | None
    p50_us: float = math.nan  # c=1: latency, or time to first byte for streams
    p99_us: float = math.nan
    full_p50_us: float = math.nan  # c=1 streams: the whole stream
    rps: float = math.nan  # c=16
    cpu_us: float = math.nan  # c=16: the measured server's CPU time per request
    errors: int = 0
    rounds: int = 0  # rounds the medians are taken over
    added_us: float = math.nan  # p50 minus direct's p50
    over_floor_us: float = math.nan  # p50 minus the Starlette floor's p50 with the same transport
    rps_vs_floor: float = math.nan  # rps over the Starlette floor's with the same transport
    rps_vs_raw: float = math.nan  # rps over the raw ASGI floor's with the same transport


@dataclass(slots=True)
class Summary:
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    background: list[float] = field(default_factory=list)  # CPUs busy elsewhere just before each cell

    @classmethod
    def build(cls, cells: Iterable[dict[str, Any]]) -> Summary:
        groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
        summary = cls()
        for cell in cells:
            groups[(cell["scenario"], cell["target"], cell["concurrency"])].append(cell)
            summary.background.append(cell["background_cpus"])
        for (scenario, target, concurrency), group in groups.items():
            first = group[0]
            row = summary.rows.setdefault(
                (scenario, target), Row(scenario, target, first["kind"], first["transport"])
            )
            _fill(row, concurrency, group)
        summary._derive()
        return summary

    def _derive(self) -> None:
        for row in self.rows.values():
            direct = self.rows.get((row.scenario, "direct"))
            if direct is not None:
                row.added_us = row.p50_us - direct.p50_us
            floor = self.rows.get((row.scenario, f"floor/{row.transport}"))
            if floor is not None:
                row.rps_vs_floor = row.rps / floor.rps
                row.over_floor_us = row.p50_us - floor.p50_us
            raw = self.rows.get((row.scenario, f"floor-raw/{row.transport}"))
            if raw is not None:
                row.rps_vs_raw = row.rps / raw.rps

    def get(self, scenario: str, target: str) -> Row | None:
        return self.rows.get((scenario, target))

    def scenario_rows(self, scenario: str) -> list[Row]:
        rows = [r for r in self.rows.values() if r.scenario == scenario]
        return sorted(rows, key=lambda r: (KIND_ORDER.index(r.kind), r.transport or ""))

    def as_dict(self) -> dict[str, Any]:
        rows = {f"{s}|{t}": _clean(vars_of(r)) for (s, t), r in self.rows.items()}
        return {"rows": rows, "background_cpus": self.background}


def vars_of(row: Row) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__slots__}


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


def _median(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def _undisturbed(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rounds that other work on the machine did not disturb; if none, the least disturbed one."""
    clean = [c for c in group if c.get("interference_cpus", 0.0) <= DISTURBED_CPUS]
    return clean or [min(group, key=lambda c: c.get("interference_cpus", 0.0))]


def _fill(row: Row, concurrency: int, group: list[dict[str, Any]]) -> None:
    group = _undisturbed(group)
    results = [c["result"] for c in group]
    row.errors += sum(r["errors"] for r in results)
    row.rounds = max(row.rounds, len(group))
    if concurrency == 1:
        timing = "ttfb_us" if row.scenario.endswith("stream") else "latency_us"
        row.p50_us = _median([r[timing]["p50"] for r in results])
        row.p99_us = _median([r[timing]["p99"] for r in results])
        if timing == "ttfb_us":
            row.full_p50_us = _median([r["latency_us"]["p50"] for r in results])
    else:
        row.rps = _median([r["rps"] for r in results])
        row.cpu_us = _median([c["sut_cpu_us_per_request"] for c in group])


# -- Markdown ---------------------------------------------------------------------------------------


def _us(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.0f} µs"


def _signed_us(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+,.0f} µs"


def _ratio(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}×"


def _num(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.0f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


STREAM_HEADER = ("target", "TTFB p50 c=1", "TTFB p99 c=1", "added vs direct", "vs floor",
                 "whole stream p50 c=1", "RPS c=16", "RPS / floor", "RPS / raw floor",
                 "CPU per req c=16")  # fmt: skip
JSON_HEADER = ("target", "p50 c=1", "p99 c=1", "added vs direct", "vs floor", "RPS c=16", "RPS / floor",
               "RPS / raw floor", "CPU per req c=16")  # fmt: skip


def _row_cells(r: Row, stream: bool) -> list[str]:
    latency = [_us(r.p50_us), _us(r.p99_us), _signed_us(r.added_us), _signed_us(r.over_floor_us)]
    if stream:
        latency.append(_us(r.full_p50_us))
    return [r.target, *latency, _num(r.rps), _ratio(r.rps_vs_floor), _ratio(r.rps_vs_raw), _us(r.cpu_us)]


def scenario_table(summary: Summary, scenario: ScenarioLike) -> list[str]:
    header = STREAM_HEADER if scenario.stream else JSON_HEADER
    body = [_row_cells(r, scenario.stream) for r in summary.scenario_rows(scenario.name)]
    title = f"### {scenario.name} ({'streaming' if scenario.stream else 'non-streaming'})"
    return [title, "", *_table(header, body), ""]


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _target_row(summary: Summary, scenario: ScenarioLike, row: Row, transport: str) -> list[str]:
    what = "TTFB" if scenario.stream else "p50"
    return [
        scenario.name,
        transport,
        f"{_signed_us(row.added_us)} ({what})",
        _verdict(row.added_us <= ADDED_LATENCY_TARGET_US),
        _ratio(row.rps_vs_floor),
        _verdict(row.rps_vs_floor >= 1.0),
        _floor_added(summary, scenario.name, transport),
    ]


def targets_table(summary: Summary, scenarios: Sequence[ScenarioLike]) -> list[str]:
    body = []
    for scenario in scenarios:
        for transport in ("httpx", "aiohttp"):
            row = summary.get(scenario.name, f"gateway/{transport}")
            if row is not None:
                body.append(_target_row(summary, scenario, row, transport))
    header = ["scenario", "gateway transport", "added latency c=1 (≤ +500 µs)", "",
              "RPS c=16 vs floor (≥ 1.00×)", "", "for scale: the floors' own added latency"]  # fmt: skip
    return ["### Targets", "", *_table(header, body), ""]


def _floor_added(summary: Summary, scenario: str, transport: str) -> str:
    floor = summary.get(scenario, f"floor/{transport}")
    raw = summary.get(scenario, f"floor-raw/{transport}")
    parts = [f"{name} {_signed_us(row.added_us)}" for name, row in (("floor", floor), ("raw", raw)) if row]
    return ", ".join(parts) or "–"


def _transport_row(kind: str, scenario: str, h: Row, a: Row) -> list[str]:
    return [kind, scenario, _us(h.p50_us), _us(a.p50_us), _num(h.rps), _num(a.rps), _ratio(a.rps / h.rps),
            _us(h.cpu_us), _us(a.cpu_us), _ratio(h.cpu_us / a.cpu_us)]  # fmt: skip


def transport_table(summary: Summary, scenarios: Sequence[ScenarioLike]) -> list[str]:
    body = []
    for kind in ("gateway", "floor", "floor-raw"):
        for scenario in scenarios:
            h = summary.get(scenario.name, f"{kind}/httpx")
            a = summary.get(scenario.name, f"{kind}/aiohttp")
            if h is not None and a is not None:
                body.append(_transport_row(kind, scenario.name, h, a))
    header = ["server", "scenario", "p50 c=1 httpx", "p50 c=1 aiohttp", "RPS c=16 httpx", "RPS c=16 aiohttp",
              "RPS aiohttp / httpx", "CPU/req httpx", "CPU/req aiohttp", "CPU httpx / aiohttp"]  # fmt: skip
    return ["### httpx vs httpx-over-aiohttp", "", *_table(header, body), ""]


def _pairs(summary: Summary, scenarios: Sequence[ScenarioLike], first: str, second: str) -> list[list[str]]:
    """Per scenario and transport, kind ``first`` against kind ``second``: latency, RPS and CPU."""
    body = []
    for scenario in scenarios:
        for transport in ("aiohttp", "httpx"):
            a = summary.get(scenario.name, f"{first}/{transport}")
            b = summary.get(scenario.name, f"{second}/{transport}")
            if a is None or b is None:
                continue
            latency = [_us(a.p50_us), _us(b.p50_us), _signed_us(b.p50_us - a.p50_us)]
            rps = [_num(a.rps), _num(b.rps), _ratio(b.rps / a.rps)]
            body.append([scenario.name, transport, *latency, *rps, _us(a.cpu_us), _us(b.cpu_us)])
    return body


def baseline_table(summary: Summary, scenarios: Sequence[ScenarioLike]) -> list[str]:
    """Gateway (this tree) against baseline (the same gateway at --baseline-ref), per transport."""
    body = _pairs(summary, scenarios, "baseline", "gateway")
    if not body:
        return []
    header = ["scenario", "transport", "p50 c=1 before", "p50 c=1 after", "after − before", "RPS c=16 before",
              "RPS c=16 after", "RPS after / before", "CPU/req before", "CPU/req after"]  # fmt: skip
    return ["### Before and after (baseline ref vs this tree, same run)", "", *_table(header, body), ""]


def metrics_table(summary: Summary, scenarios: Sequence[ScenarioLike]) -> list[str]:
    """The gateway with Prometheus metrics on (its default) against off, per transport (--metrics)."""
    body = _pairs(summary, scenarios, "gateway-nometrics", "gateway")
    if not body:
        return []
    header = ["scenario", "transport", "p50 c=1 off", "p50 c=1 on", "on − off", "RPS c=16 off", "RPS c=16 on",
              "RPS on / off (target ≥ 0.95)", "CPU/req off", "CPU/req on"]  # fmt: skip
    return ["### Prometheus metrics on vs off (same tree, same run)", "", *_table(header, body), ""]


def cache_table(summary: Summary, scenarios: Sequence[ScenarioLike]) -> list[str]:
    """The uncached gateway against a cache miss and a direct hit (kinds gateway-cache-miss and
    gateway-cache). Targets (issue 14): a hit serves ≥ 3× the RPS at c=16; a miss adds ≤ 0.1 ms at c=1."""
    lines: list[str] = []
    header = ["scenario", "transport", "p50 c=1 uncached", "p50 c=1 cached", "cached − uncached",
              "RPS c=16 uncached", "RPS c=16 cached", "cached / uncached", "CPU/req uncached",
              "CPU/req cached"]  # fmt: skip
    for kind, title in (("gateway-cache-miss", "every request a miss"), ("gateway-cache", "direct hits")):
        body = _pairs(summary, scenarios, "gateway", kind)
        if body:
            lines += [f"### Response cache: {title} vs uncached (same run)", "", *_table(header, body), ""]
    return lines


def markdown(summary: Summary, scenarios: Sequence[ScenarioLike]) -> str:
    lines: list[str] = []
    for scenario in scenarios:
        lines += scenario_table(summary, scenario)
    lines += targets_table(summary, scenarios)
    lines += transport_table(summary, scenarios)
    lines += baseline_table(summary, scenarios)
    lines += metrics_table(summary, scenarios)
    lines += cache_table(summary, scenarios)
    errors = sum(r.errors for r in summary.rows.values())
    lines.append(f"Errors (non-2xx, socket errors, timeouts) over the whole run: {errors}.")
    if summary.background:
        bg = summary.background
        lines.append(
            f"Other work on the machine just before each cell: median {statistics.median(bg):.2f}, "
            f"max {max(bg):.2f} CPUs busy."
        )
    return "\n".join(lines) + "\n"


# -- the machine ------------------------------------------------------------------------------------


def _command(argv: Sequence[str]) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).strip()


def _lscpu_field(text: str, name: str) -> str:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    lscpu = _command(["lscpu"])
    free = _command(["free", "-h"]).splitlines()
    mem = free[1].split()[1] if len(free) > 1 else ""
    return {
        "cpu_model": _lscpu_field(lscpu, "Model name"),
        "cpus": os.cpu_count(),
        "hypervisor": _lscpu_field(lscpu, "Hypervisor vendor"),
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in PACKAGES},
        "wrk": _command(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else "not installed",
    }
