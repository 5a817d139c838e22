"""server_metrics.py: vLLM's own histograms over one gate level, against the gate's rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.gpu.h200.server_metrics import SERIES, first_token_after_vllm, histogram_delta
from benchmarks.gpu.h200.summary import GATE
from tests.conftest import write_request_rows
from workloads.benchmark.runner import metric_totals

BOUNDS = (0.25, 0.5, 0.75, 1.0, 2.5)
NAME = "vllm:time_to_first_token_seconds"


def _histogram(values: list[float]) -> str:
    lines = [
        f'{NAME}_bucket{{engine="0",le="{bound}"}} {float(sum(v <= bound for v in values))}'
        for bound in BOUNDS
    ]
    lines.append(f'{NAME}_bucket{{engine="0",le="+Inf"}} {float(len(values))}')
    lines.append(f'{NAME}_count{{engine="0"}} {float(len(values))}')
    lines.append(f'{NAME}_sum{{engine="0"}} {sum(values)}')
    return "\n".join(lines) + "\n"


def _run(tmp_path: Path, server_s: list[float], client_s: list[float], before: list[float]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "metrics-before.txt").write_text(_histogram(before))
    (tmp_path / "metrics-after.txt").write_text(_histogram(before + server_s))
    rows = [[i * 0.2, i * 0.2 + 18.0, t * 1e3, 45.0, 6400, 384] for i, t in enumerate(client_s)]
    return write_request_rows(tmp_path, rows)


def test_the_share_late_on_the_way_out_is_what_parts_vllms_count_from_the_clients(
    tmp_path: Path,
) -> None:
    """100 requests: vLLM stamped 80 first tokens at 0.89 s and 20 at 1.11 s; the client got
    65 at 0.89 s and 35 at 1.11 s — so at least 15 % reached the client a step after vLLM had
    them. Counts from a run before (the server's earlier requests) are taken off; when the
    server counted other requests than the rows, or the run has no rows, nothing is said."""
    server = [0.89] * 80 + [1.11] * 20
    client = [0.89] * 65 + [1.11] * 35
    late = first_token_after_vllm(_run(tmp_path / "a", server, client, before=[0.1] * 50))
    assert late is not None
    assert late["bound_s"] == 1.0
    assert late["server_share"] == pytest.approx(0.80)
    assert late["client_share"] == pytest.approx(0.65)
    assert late["late_after_vllm_share"] == pytest.approx(0.15)
    same = first_token_after_vllm(_run(tmp_path / "b", server, server, before=[]))
    assert same is not None and same["late_after_vllm_share"] == pytest.approx(0.0)
    assert first_token_after_vllm(_run(tmp_path / "c", server, client[:90], before=[])) is None
    (tmp_path / "a" / "guidellm-stock-rag-trimmed.json").unlink()
    assert first_token_after_vllm(tmp_path / "a") is None


def test_histogram_deltas_are_the_runs_own() -> None:
    before = metric_totals(_histogram([0.1] * 10), SERIES)
    after = metric_totals(_histogram([0.1] * 10 + [0.3, 0.9, 2.0]), SERIES)
    delta = histogram_delta(before, after, NAME)
    assert delta is not None
    assert delta["count"] == 3 and delta["mean"] == pytest.approx((0.3 + 0.9 + 2.0) / 3)
    assert delta["p50_at_most"] == 1.0 and delta["p95_at_most"] == 2.5


def test_stocks_late_first_tokens_are_partly_after_vllm_had_them() -> None:
    """The committed stock runs at prod's shape: vLLM stamped 79-87 % of the first tokens
    within 1.0 s, the clients got 64-70 % within it — at least 14-18 % of the requests got
    their first token later than vLLM had it (all requests of each run on both sides)."""
    for run in ("stock66-r2", "stock66-r3", "stock74-r4"):
        late = first_token_after_vllm(GATE / "prod-shape-repeats" / run)
        assert late is not None and late["bound_s"] == 1.0
        assert 0.12 < late["late_after_vllm_share"] < 0.20


def test_the_api_servers_cpu_is_read_per_second_of_load(tmp_path: Path) -> None:
    """40 CPU-seconds over five loaded 10-s windows (idle ones before and after do not count):
    0.8; no log, no share."""
    from benchmarks.gpu.h200.server_metrics import api_server_cpu_share

    (tmp_path / "metrics-before.txt").write_text("process_cpu_seconds_total 12.5\n")
    (tmp_path / "metrics-after.txt").write_text("process_cpu_seconds_total 52.5\n")
    line = "Engine 000: Avg prompt throughput: 1.0 tokens/s, Running: {} reqs, Waiting: 0 reqs"
    log = [line.format(0), *[line.format(n) for n in (3, 112, 80, 10, 1)], line.format(0)]
    (tmp_path / "server-stats.log").write_text("\n".join(log) + "\n")
    assert api_server_cpu_share(tmp_path) == pytest.approx(0.8)
    (tmp_path / "server-stats.log").unlink()
    assert api_server_cpu_share(tmp_path) is None


def test_the_frontend_is_busiest_at_the_plans_2048_256_capacity() -> None:
    """The committed runs: the API server process spent 0.71-0.82 CPU-seconds a second at the
    plan's 256 streams of 2048/256 (≈ 5,300 tokens/s streamed), about half that for stock at
    112 and less at prod's shape — why the frontend lever is queued for 2048/256."""
    from benchmarks.gpu.h200.server_metrics import api_server_cpu_share

    chat = GATE / "chat"
    for run in ("opt256-r2", "opt256-r3"):
        share = api_server_cpu_share(chat / run)
        assert share is not None and 0.65 < share < 0.9
    for run in ("stock112-r2", "stock112-r3"):
        share = api_server_cpu_share(chat / run)
        assert share is not None and 0.4 < share < 0.55
    share = api_server_cpu_share(GATE / "prod-shape-repeats" / "opt1792-c109-r1")
    assert share is not None and share < 0.4


def test_a_reading_taken_at_a_deadline_is_marked_partial(tmp_path: Path) -> None:
    """levels.sh reads /metrics at a call's deadline while a search runs and marks it: the
    summary says so, and a run whose gate wrote its own final reading has no mark."""
    import shutil

    from benchmarks.gpu.h200.server_metrics import summarize

    run = tmp_path / "run"
    shutil.copytree(GATE / "prod-shape-repeats" / "stock66-r2", run)
    assert summarize(run)["metrics_after_partial"] is None
    (run / "metrics-after.partial").write_text("read 2026-12-05T04:30:00Z at a call's deadline\n")
    assert summarize(run)["metrics_after_partial"].startswith("read 2026-12-05T04:30:00Z")
