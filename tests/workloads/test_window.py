"""The steady window: real GuideLLM against a streaming server whose first wave is a burst.

GuideLLM 0.8.1 sometimes opens a count-bounded level's window at the first wave's dispatch (its
warm-up ends on whichever request it hears about while warm-up + 1 have finished); the gate's
CI once judged a goodput probe that measured 95 of its 96 requests that way. These tests make
the burst visible (the first wave's first token comes 300 ms late, later ones 20 ms) and check
that what the gate judges does not depend on where GuideLLM put the window.
"""

from __future__ import annotations

import copy
import json
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from workloads.benchmark.gate import load_problems
from workloads.benchmark.metrics import parse_report, trim_report
from workloads.benchmark.runner import Run, levels_profile, run_guidellm, scenario_spec, scenarios
from workloads.benchmark.window import _compile, rewindow, steady_window
from workloads.contract import GatePlan, level_bound

STREAMS = 4
BURST_TTFT_S, STEADY_TTFT_S, TOKEN_S = 0.3, 0.02, 0.005
TARGETS = GatePlan(
    ttft_p95_ms=5000, itl_p95_ms=500, min_throughput_rps=0.2, max_error_rate=0.05,
    concurrency=STREAMS, prompt_tokens=64, output_tokens=16, shared_prefix_tokens=0,
    predicted_requests_per_s=30.0, predicted_output_tokens_per_s=480.0, capacity_tolerance=0.25,
    predicted_e2e_ms=150.0, capacity_concurrency=STREAMS, capacity_requests_per_s=30.0,
    capacity_limited_by="ttft", shape_tolerance=0.05, min_measured_requests=20,
    cost_per_hour_usd=0.1,
)  # fmt: skip


def _burst_server() -> tuple[str, ThreadingHTTPServer]:
    """Streams `max_completion_tokens` tokens; the first STREAMS requests wait BURST_TTFT_S for
    their first token (the first wave's burst), every later one STEADY_TTFT_S."""
    arrivals = [0]
    lock = threading.Lock()

    class Server(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps({"data": [{"id": "burst"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            tokens = int(request.get("max_completion_tokens") or request.get("max_tokens") or 16)
            with lock:
                arrivals[0] += 1
                first_wave = arrivals[0] <= STREAMS
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            time.sleep(BURST_TTFT_S if first_wave else STEADY_TTFT_S)
            for sent in range(1, tokens + 1):
                chunk = {"id": "c", "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": {"content": " a"}}],
                         "usage": {"prompt_tokens": 64, "completion_tokens": sent,
                                   "total_tokens": 64 + sent}}  # fmt: skip
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(TOKEN_S)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


@pytest.fixture(scope="module")
def burst_run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, dict]:
    """One count-bounded level at STREAMS streams, as the gate runs it; and GuideLLM's raw
    report of it."""
    target, server = _burst_server()
    out = tmp_path_factory.mktemp("window")
    bounds = [level_bound(TARGETS, STREAMS)]
    spec = scenario_spec(target, scenarios(TARGETS)[0], levels_profile((STREAMS,)), bounds,
                         out / "level.json", TARGETS, tokenizer=str(tiny_model))  # fmt: skip
    try:
        run = run_guidellm("level", spec, bounds, out)
    finally:
        server.shutdown()
    return run, json.loads(run.reports[0].read_text())


def test_the_run_carries_every_requests_ttft_at_the_client(burst_run) -> None:
    """What vLLM's TTFT histogram is set against (report.first_token_path): every successful
    request of GuideLLM's raw report, warm-up and cool-down included, read once by the runner."""
    run, raw = burst_run
    successful = raw["benchmarks"][0]["requests"]["successful"]
    assert len(run.client_ttfts_s) == len(successful) > 0
    assert sorted(run.client_ttfts_s) == pytest.approx(
        sorted(r["time_to_first_token_ms"] / 1e3 for r in successful), abs=1e-5
    )


def _opened_at_first_dispatch(raw: dict[str, Any]) -> dict[str, Any]:
    """The report as GuideLLM writes it when its warm-up ends on a first-wave request: the
    window opens at the first request's start (GuideLLM's own metric code, that window)."""
    broken = copy.deepcopy(raw)
    benchmark = broken["benchmarks"][0]
    scheduler = benchmark["scheduler_metrics"]
    scheduler["measure_start_time"] = scheduler["request_start_time"]
    benchmark["metrics"] = _compile(benchmark, scheduler["request_start_time"],
                                    scheduler["measure_end_time"])  # fmt: skip
    return broken


def _spans(benchmark: dict[str, Any]) -> list[tuple[float, float]]:
    return sorted((r["info"]["timings"]["request_start"], r["info"]["timings"]["request_end"])
                  for r in benchmark["requests"]["successful"])  # fmt: skip


def test_the_window_leaves_out_the_first_wave_wherever_guidellm_opened_it(burst_run) -> None:
    run, raw = burst_run
    (level,) = run.levels
    broken = _opened_at_first_dispatch(raw)
    (as_guidellm_judged,) = parse_report(broken)
    # Judged as GuideLLM reported it, the first wave's burst is the level's TTFT tail.
    assert as_guidellm_judged.ttft_ms.p99 >= BURST_TTFT_S * 1e3
    # The gate judges the same numbers whichever window GuideLLM chose: the steady one.
    assert parse_report(rewindow(broken)) == list(run.levels)
    assert level.ttft_ms.p99 < BURST_TTFT_S * 1e3 / 2
    # Warm-up: its eighth of the requests sent and the whole first wave; cool-down: its eighth.
    benchmark = raw["benchmarks"][0]
    sent = benchmark["scheduler_state"]["processed_requests"]
    window = steady_window(benchmark)
    assert window is not None and level.warmup_requests == window["warmup_requests"]
    first_wave_end = max(end for _, end in _spans(benchmark)[:STREAMS])
    finished_by_then = sum(1 for _, end in _spans(benchmark) if end <= first_wave_end)
    assert window["warmup_requests"] == max(sent // 8, finished_by_then) >= STREAMS
    assert window["measure_start_time"] > first_wave_end
    # GuideLLM counts the requests overlapping the window: every one that finished after the
    # warm-up, less those sent after the cool-down began.
    measured = level.measured_requests
    assert sent - window["warmup_requests"] - sent // 8 <= measured
    assert measured <= sent - window["warmup_requests"]
    assert level.requests_per_s > 0 and not load_problems(run, TARGETS)


def test_recompiling_on_guidellms_own_window_reproduces_its_report(burst_run) -> None:
    """The recompilation is GuideLLM's own arithmetic: on GuideLLM's window it gives back the
    metrics GuideLLM wrote, to the last field."""
    _, raw = burst_run
    benchmark = raw["benchmarks"][0]
    scheduler = benchmark["scheduler_metrics"]
    again = _compile(benchmark, scheduler["measure_start_time"], scheduler["measure_end_time"])
    assert again == benchmark["metrics"]


def test_a_level_too_short_for_a_window_is_not_judged(burst_run) -> None:
    run, raw = burst_run
    short = copy.deepcopy(raw)
    benchmark = short["benchmarks"][0]
    benchmark["requests"]["successful"] = _sorted_requests(benchmark)[: STREAMS + 1]
    (level,) = parse_report(rewindow(short))
    assert level.window_refusal and "too few to leave out a warm-up" in level.window_refusal
    problems = load_problems(Run("short", run.reports, run.bounds, (level,)), TARGETS)
    assert problems and "requests finished at 4 streams" in problems[0]


def _sorted_requests(benchmark: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(benchmark["requests"]["successful"],
                  key=lambda r: r["info"]["timings"]["request_start"])  # fmt: skip


def test_time_bounded_and_trimmed_benchmarks_keep_guidellms_window(burst_run) -> None:
    """--seconds levels end their warm-up by time (GuideLLM places that exactly); a trimmed
    report has no samples to recompile from."""
    _, raw = burst_run
    timed = copy.deepcopy(raw)
    benchmark = timed["benchmarks"][0]
    benchmark["config"]["warmup"]["mode"] = benchmark["config"]["cooldown"]["mode"] = "duration"
    benchmark["scheduler_state"]["progress"]["total_requests"] = None
    assert rewindow(timed) == timed
    trimmed = copy.deepcopy(raw)
    trimmed["benchmarks"][0]["requests"] = {"successful": [], "errored": [], "incomplete": []}
    assert rewindow(trimmed) == trimmed
    assert rewindow({"not": "a report"}) == {"not": "a report"}


def test_the_trimmed_report_keeps_every_requests_timeline(burst_run) -> None:
    """Trimming drops the samples but keeps one row per successful request: the rows show
    when a level's TTFT tail came (the first wave's burst) and rebuild the level's figures."""
    run, raw = burst_run
    report = rewindow(raw)
    trimmed = trim_report(report)
    (kept,) = trimmed["benchmarks"]
    assert not any(kept["requests"].values())
    timeline = kept["leanrag_requests"]
    rows = [dict(zip(timeline["columns"], row, strict=True)) for row in timeline["rows"]]
    assert len(rows) == len(report["benchmarks"][0]["requests"]["successful"])
    starts = [row["start_s"] for row in rows]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert all(row["end_s"] > row["start_s"] for row in rows)
    assert {row["output_tokens"] for row in rows} == {TARGETS.output_tokens}
    # The first wave waited for the burst; every later request did not.
    assert min(row["ttft_ms"] for row in rows[:STREAMS]) >= BURST_TTFT_S * 1e3
    assert max(row["ttft_ms"] for row in rows[STREAMS:]) < BURST_TTFT_S * 1e3 / 2
    # The rows GuideLLM counts in the steady window (those finishing after it opens and sent
    # before it closes) rebuild the level's own count and medians.
    (level,) = run.levels
    window, origin = kept["leanrag_window"], timeline["origin_time"]
    opens, closes = (window[f"measure_{edge}_time"] - origin for edge in ("start", "end"))
    inside = [row for row in rows if row["end_s"] > opens and row["start_s"] < closes]
    assert len(inside) == level.successful
    assert statistics.median(r["itl_ms"] for r in inside) == pytest.approx(
        level.itl_ms.p50, rel=0.05
    )
    assert statistics.median(r["ttft_ms"] for r in inside) == pytest.approx(
        level.ttft_ms.p50, rel=0.05
    )
    # What the gate reads is unchanged, and trimming a trimmed report keeps the timeline.
    assert parse_report(trimmed) == list(run.levels)
    assert trim_report(trimmed) == trimmed
