"""The observability pieces on their own: workers' snapshots added up (and bad ones skipped), a forked
worker starting from zero, Bifrost's error vocabulary, the charts' arithmetic, what content logging keeps."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bifrost_asgi import GatewayConfig
from bifrost_asgi.cli.main import _export_spans, _share_metrics
from bifrost_asgi.errors import (
    BifrostError,
    connection_failed,
    credentials_exhausted,
    governance_error,
    internal_error,
    invalid_request,
    timed_out,
    upstream,
)
from bifrost_asgi.governance.config import LogsConfig
from bifrost_asgi.observability.charts import chart_data, parse_chart_query
from bifrost_asgi.observability.content import ContentLog
from bifrost_asgi.observability.metrics import OTHER, Metrics, error_kind, observe
from bifrost_asgi.pipeline.request import Request, Served
from bifrost_asgi.providers.base import Op, Reply
from bifrost_asgi.redact import Redactor

BASE = ("openai", "gpt-4o", "chat_completion", "", "", "", "", "0", "", "", "", "")


def _count(text: bytes, name: str) -> float:
    found = [
        s.value for f in text_string_to_metric_families(text.decode()) for s in f.samples if s.name == name
    ]
    return sum(found)


async def test_a_worker_adds_up_the_others_snapshots_and_skips_bad_files(tmp_path: Path) -> None:
    worker = Metrics(directory=str(tmp_path), flush_seconds=0.01)
    cells = worker.upstream(BASE, ())
    cells.upstream[0] += 3
    observe(cells.latency_ok, Metrics.LATENCY, 0.2)
    worker.touched()
    await asyncio.sleep(0.2)  # the timer writes this worker's snapshot
    own = tmp_path / f"bifrost-metrics-{os.getpid()}.json"
    assert own.exists()
    own.rename(tmp_path / "bifrost-metrics-1.json")  # as if another worker had written it
    (tmp_path / "bifrost-metrics-2.json").write_text("{not json")
    (tmp_path / "bifrost-metrics-3.json").write_text(
        '{"bifrost_upstream_requests_total": [["too", "short"], "x"], "no_such_metric": [[1]]}'
    )
    text = await worker.exposition()
    assert _count(text, "bifrost_upstream_requests_total") == 6  # its own 3 and the snapshot's 3
    assert _count(text, "bifrost_upstream_latency_seconds_count") == 2


async def test_nothing_is_written_without_a_directory_or_without_news(tmp_path: Path) -> None:
    alone = Metrics()
    alone.touched()
    await alone.flush()
    shared = Metrics(directory=str(tmp_path))
    await shared.flush()  # nothing counted: nothing to write
    assert list(tmp_path.iterdir()) == []


def test_a_forked_worker_starts_from_zero() -> None:
    metrics = Metrics()
    metrics.upstream(BASE, ()).upstream[0] += 1
    metrics._reset_after_fork()
    assert all(not rows for rows in metrics.series.values()) and not metrics.upstream_cells


def test_label_values_are_bounded_and_cut() -> None:
    metrics = Metrics(max_label_values=1)
    assert metrics.bounded("model", "x" * 500) == "x" * 128
    assert metrics.bounded("model", "x" * 500) == "x" * 128  # the same value, kept (cut)
    assert metrics.bounded("model", "other-model") == OTHER


@pytest.mark.parametrize(
    ("err", "from_upstream", "kind"),
    [
        (upstream(401, "bad key", error_type="invalid_request_error"), True, "provider_auth_failed"),
        (upstream(402, "pay"), True, "provider_billing"),
        (upstream(404, "no model"), True, "caller_model_not_available"),
        (upstream(429, "slow down"), True, "provider_rate_limited"),
        (upstream(529, "overloaded"), True, "provider_overloaded"),
        (upstream(500, "oops"), True, "provider_server_error"),
        (upstream(400, "bad", error_type="invalid_request_error"), True, "caller_invalid_request"),
        (upstream(418, "teapot"), True, "caller_invalid_request"),
        (timed_out(30), True, "provider_timeout"),
        (connection_failed("openai", "refused"), True, "provider_connection_failed"),
        (credentials_exhausted("openai", 2, "401"), False, "provider_credentials_exhausted"),
        (governance_error(402, "budget_exceeded", "over"), False, "policy_budget_exceeded"),
        (governance_error(429, "token_limited", "slow"), False, "policy_rate_limited"),
        (governance_error(403, "virtual_key_blocked", "no"), False, "policy_access_denied"),
        (governance_error(403, "model_blocked", "no"), False, "policy_model_blocked"),
        (invalid_request("bad"), False, "caller_invalid_request"),
        (internal_error(), False, "bifrost_internal"),
        (BifrostError(503, "?", error_type="something_new"), False, "bifrost_internal"),
        (BifrostError(409, "?", error_type="something_new"), False, "_OTHER"),
    ],
)
def test_errors_are_classed_in_bifrosts_vocabulary(err: BifrostError, from_upstream: bool, kind: str) -> None:
    assert error_kind(err, from_upstream=from_upstream) == kind


def test_chart_queries_are_checked_by_name() -> None:
    assert parse_chart_query({}) == ("7d", "model")
    for bad in ({"range": ["1y"]}, {"group_by": ["color"]}):
        with pytest.raises(BifrostError) as caught:
            parse_chart_query(bad)
        assert caught.value.status_code == 400 and caught.value.param == next(iter(bad))


def test_charts_add_up_buckets_keep_the_top_series_and_leave_gaps_unmeasured() -> None:
    now = 1_800_000_000.0 + 1800  # mid-hour: a minute ago is in the last bucket
    rows: list[dict[str, Any]] = [
        {"timestamp": now - 60, "model": f"m{i}", "status": "success", "latency": 100 + i, "total_tokens": 10,
         "cost": 0.5}
        for i in range(10)
    ]  # fmt: skip
    rows += [
        {
            "timestamp": now - 60,
            "model": "m0",
            "status": "error",
            "latency": None,
            "total_tokens": None,
            "cost": None,
        },
        {"timestamp": now - 40 * 86400, "model": "m0", "status": "success"},  # outside the range: ignored
    ]
    data = chart_data(rows, "24h", "model", [], now)
    assert len(data["buckets"]) == 24 and data["bucket_seconds"] == 3600
    assert set(data["requests"]) == {f"m{i}" for i in range(8)} | {"other"}
    assert data["requests"]["m0"][-1] == 2 and data["requests"]["other"][-1] == 2
    assert data["error_rate"][-1] == pytest.approx(1 / 11) and data["error_rate"][0] == 0.0
    assert data["latency_ms"]["p50"][-1] == 104 and data["latency_ms"]["p99"][-1] == 109
    assert data["latency_ms"]["p50"][0] is None  # no request in that hour
    assert data["totals"] == {"requests": 11, "errors": 1, "tokens": 100, "cost": pytest.approx(5.0)}


def _request(key_id: str | None = None) -> Request:
    req = Request(
        Op.RESPONSES, {"input": "hi", "model": "m", "temperature": 1}, b"", False, "m", "responses", 0.0
    )
    if key_id is not None:
        from bifrost_asgi.governance.models import VirtualKey

        req.vk = VirtualKey(id=key_id, name=key_id)
    return req


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        ({"output": [{"type": "message", "content": [{"type": "output_text", "text": "Hello"}]}]}, "Hello"),
        ({"content": [{"type": "text", "text": "Bonjour"}, {"type": "tool_use"}]}, "Bonjour"),
        ({"choices": [{"text": "one"}, {"message": {"content": "two"}}]}, "one\ntwo"),
    ],
)
def test_content_keeps_the_prompt_and_the_answers_text(answer: dict[str, Any], text: str) -> None:
    content = ContentLog(LogsConfig(content_virtual_keys=("vk",)), Redactor(["sk-secret-value"]))
    served = Served("p", "m", 0, None, Op.RESPONSES, reply=Reply(answer))
    assert json.loads(content.capture(_request("vk"), served) or "") == {
        "input": {"input": "hi"},
        "output": text,
    }
    assert content.capture(_request("other"), served) is None and content.capture(_request(), served) is None
    assert ContentLog(LogsConfig(content=True), Redactor([])).capture(_request(), None) == (
        '{"input":{"input":"hi"},"output":null}'
    )


def test_serve_shares_metrics_in_a_fresh_directory_or_empties_the_given_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    _share_metrics(GatewayConfig())
    made = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert made.is_dir() and list(made.iterdir()) == []
    made.rmdir()
    (tmp_path / "bifrost-metrics-7.json").write_text("{}")
    (tmp_path / "someone-elses.db").write_text("")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    _share_metrics(GatewayConfig())
    assert [p.name for p in tmp_path.iterdir()] == ["someone-elses.db"]  # only our own old figures go


def test_serve_exports_spans_only_when_asked_and_says_what_to_install() -> None:
    _export_spans(None)  # nothing asked: nothing set up
    if importlib.util.find_spec("opentelemetry.exporter") is not None:
        pytest.skip("the otlp extra is installed here")
    with pytest.raises(SystemExit, match=r"bifrost-asgi\[otlp\]"):
        _export_spans("http://127.0.0.1:4318/v1/traces")  # the exporter is an optional extra


def test_figures_that_cannot_be_added_cost_only_themselves(caplog: pytest.LogCaptureFixture) -> None:
    added: list[int] = []

    def apply(metrics: Metrics, facts: Any) -> None:
        if facts == "bad":
            raise KeyError("a bug in the adding")
        added.append(facts)

    metrics = Metrics(apply=apply)
    for facts in (1, "bad", 2):
        metrics.defer(facts)
    metrics.settle()
    assert added == [1, 2]
    assert "could not add a request's figures" in caplog.text
