"""The engine's window-by-window rate through each committed H200 gate level against the
scheduler simulation's (benchmarks/gpu/h200/engine_rates.py): the closed loop's waves are in
the data, and the model must fall into the same ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.gpu.h200.engine_rates import (
    IN_WAVES,
    SKIPPED_WINDOWS,
    SWING_MATCH,
    compare,
    idle_start_share,
    late_first_tokens,
    log_windows,
    markdown,
    resend_gaps_ms,
    straddled,
    swing_gap,
)
from benchmarks.gpu.h200.summary import GATE
from tests.conftest import write_request_rows


def _line(prompt: float, generation: float, running: int, waiting: int) -> str:
    return (
        "(APIServer pid=714) INFO 12-04 05:22:11 [loggers.py:273] Engine 000: "
        f"Avg prompt throughput: {prompt} tokens/s, Avg generation throughput: {generation} "
        f"tokens/s, Running: {running} reqs, Waiting: {waiting} reqs, GPU KV cache usage: 26.4%"
    )


def test_only_loaded_windows_past_the_first_wave_count() -> None:
    log = "\n".join(
        [
            _line(0.0, 0.0, 0, 0),  # idle before the level
            _line(3840.2, 7.8, 10, 76),  # the first wave: held, left out
            _line(46053.1, 1109.5, 79, 7),  # still the first wave's burst: left out
            _line(30000.0, 2100.0, 85, 1),
            "an unrelated line",
            _line(35000.0, 1700.0, 69, 8),  # 77 of 86 held: under 90 %, not the level's load
            _line(39000.0, 1900.0, 86, 0),
            _line(16640.3, 2746.8, 80, 0),  # the level's end cut this window: left out
            _line(0.0, 0.0, 0, 0),
        ]
    )
    windows = log_windows(log, 86)
    assert SKIPPED_WINDOWS == 2
    assert windows == [
        {"prompt": 30000.0, "generation": 2100.0},
        {"prompt": 39000.0, "generation": 1900.0},
    ]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return compare()


def test_the_committed_comparison_is_todays(rows: list[dict]) -> None:
    """Regenerate with: python -m benchmarks.gpu.h200.engine_rates"""
    results = GATE.parent
    assert json.loads((results / "gpu_h200_engine_rates.json").read_text()) == json.loads(
        json.dumps(rows)
    )
    assert (results / "gpu_h200_engine_rates.md").read_text() == markdown(rows)


def test_stock_at_prods_shape_runs_in_waves_and_the_model_does_too(rows: list[dict]) -> None:
    """Stock vLLM at 74 streams of 6,400/384 alternates a decoding window (≈ 2,530 tokens/s)
    with one prefilling a whole wave (≈ 310): an 8× swing in two runs. The plan's profile at
    its capacity (109 streams) holds its rate within 2 %. The simulation's swing is within 10 %
    of the log's at every steady-state level that has a log, but one: stock's fourth run at 74,
    whose log swings 1.5× — and whose own requests were sent in bursts (no request in 28 % of
    its 2-s bins; none idle at the plan's levels): the ≈ 20-s waves were there, the log's 10-s
    windows straddled them."""
    by_report = {r["report"]: r for r in rows}
    assert len(rows) >= 17
    swing = {report: r["generation"]["swing"] for report, r in by_report.items()}
    assert swing["prod-shape-bracket/stock-c74/gate.json"] > 6.0
    assert swing["prod-shape-repeats/stock74-r3/gate.json"] > 6.0
    for run in ("r1", "r2", "r3"):
        assert swing[f"prod-shape-repeats/opt1792-c109-{run}/gate.json"] < 1.02
    waved = by_report["prod-shape-repeats/stock74-r4/gate.json"]
    assert waved["generation"]["swing"] < 2.0 and waved["idle_start_share"] > 0.25
    for steady in ("opt1792-c86-r2", "cg1792-c109-r1"):
        assert by_report[f"prod-shape-repeats/{steady}/gate.json"]["idle_start_share"] == 0.0
    for r in rows:
        assert swing_gap(r) <= SWING_MATCH or straddled(r), r["report"]
    assert [r["report"] for r in rows if swing_gap(r) > SWING_MATCH] == [waved["report"]]


def _run_with_starts(tmp_path: Path, starts: list[float], ends: list[float] | None = None) -> Path:
    ends = ends or [t + 20.0 for t in starts]
    rows = [[t, e, 900.0, 49.0, 6407, 384] for t, e in zip(starts, ends, strict=True)]
    return write_request_rows(tmp_path, rows)


def test_idle_send_bins_tell_waves_from_a_steady_loop(tmp_path: Path) -> None:
    """74 streams sending one request every 0.27 s leave no 2-s bin idle; the same requests
    sent in 14-s bursts every 20 s leave 6 s of every 20 idle — and a report without rows, or
    with two levels, is not judged."""
    steady = [i * 0.27 for i in range(888)]
    assert idle_start_share(_run_with_starts(tmp_path / "steady", steady)) == 0.0
    bursts = [wave * 20.0 + i * 14.0 / 74 for wave in range(12) for i in range(74)]
    share = idle_start_share(_run_with_starts(tmp_path / "bursts", bursts))
    assert share is not None and share >= IN_WAVES
    # a 6-s gap leaves two or three whole 2-s bins idle of every ten, by where the bins fall
    assert 0.2 - 1e-9 <= share <= 0.3 + 1e-9
    assert idle_start_share(tmp_path) is None
    report = tmp_path / "bursts" / "guidellm-stock-rag-trimmed.json"
    doubled = json.loads(report.read_text())
    doubled["benchmarks"] *= 2
    report.write_text(json.dumps(doubled))
    assert idle_start_share(tmp_path / "bursts") is None


def test_resend_gaps_are_each_clients_turn_from_its_rows(tmp_path: Path) -> None:
    """Four clients, each resending 5 ms after its request ends (one client 40 ms): the gaps
    are read from the rows whatever order they come in; the first wave's starts precede every
    end and the last wave's ends have no next start — neither is a gap. A timeline whose
    starts do not follow its ends (not a closed loop) is not judged."""
    starts, ends = [], []
    for client in range(4):
        t = client * 0.001
        for _ in range(10):
            end = t + 2.0 + client * 0.1
            starts.append(t)
            ends.append(end)
            t = end + (0.040 if client == 3 else 0.005)
    order = sorted(range(len(starts)), key=lambda i: -ends[i])  # rows in no particular order
    gaps = resend_gaps_ms(_run_with_starts(tmp_path / "loop", [starts[i] for i in order],
                                           [ends[i] for i in order]))  # fmt: skip
    assert gaps is not None and gaps["requests"] == 36
    assert gaps["p50"] == pytest.approx(5.0, abs=0.01)
    assert gaps["p99"] == pytest.approx(40.0, abs=0.01)
    open_loop = [i * 0.5 for i in range(40)]  # a start every 0.5 s, each lasting 20 s
    assert resend_gaps_ms(_run_with_starts(tmp_path / "open", open_loop)) is None
    assert resend_gaps_ms(tmp_path) is None


def test_the_gates_clients_resend_within_a_small_share_of_a_step(rows: list[dict]) -> None:
    """Where the committed rows say, the clients resend 4-6 ms after a completion (p99 under
    10 ms) — the simulation takes none; a TTFT gap between the model and a level is not the
    client's (an engine step at prod's shape is 40-220 ms)."""
    resent = [r["resend_ms"] for r in rows if r["resend_ms"] is not None]
    assert len(resent) >= 8
    assert all(3.0 < g["p50"] < 6.0 and g["p99"] < 10.0 for g in resent)


def test_late_first_tokens_tell_a_late_start_from_a_late_delivery(tmp_path: Path) -> None:
    """Every step 50 ms, 384 tokens a request: one in four requests has its TTFT a step over
    the median. Where each of those waited a step to be scheduled, it ends a step later; where
    its first token reached the client a step late, it ends on time (its ITL a little shorter).
    The first and last eighth are left out; no rows, or no late request, is not judged."""

    def rows(late_ends_later: bool) -> list[list[float]]:
        out = []
        for i in range(400):
            late = i % 4 == 0
            ttft = 300.0 + (50.0 if late else 0.0)
            e2e = 300.0 + 383 * 50.0 + (50.0 if late and late_ends_later else 0.0)
            start = i * 0.25
            out.append([start, start + e2e / 1e3, ttft, (e2e - ttft) / 383, 6400, 384])
        return out

    waited = late_first_tokens(write_request_rows(tmp_path / "waited", rows(True)))
    assert waited == {"share": pytest.approx(0.25, abs=0.01), "ttft_ms": pytest.approx(50.0),
                      "e2e_ms": pytest.approx(50.0)}  # fmt: skip
    delivered = late_first_tokens(write_request_rows(tmp_path / "delivered", rows(False)))
    assert delivered is not None and delivered["e2e_ms"] == pytest.approx(0.0, abs=1e-6)
    assert delivered["ttft_ms"] == pytest.approx(50.0)
    on_time = [[i * 0.25, i * 0.25 + 19.45, 300.0, 50.0, 6400, 384] for i in range(400)]
    assert late_first_tokens(write_request_rows(tmp_path / "on-time", on_time)) is None
    assert late_first_tokens(tmp_path) is None


def test_a_ttft_comes_in_whole_steps_and_the_late_ones_do_not_all_end_late(
    rows: list[dict],
) -> None:
    """The committed rows: at every level that keeps them 15-45 % of requests have their TTFT
    more than half a step over the median, by about a step (stock: one 222-ms step). Where the
    loop does not wave, the CUDA-graph and 16-bit-KV levers' late requests ended no later
    (their first token reached the client late), the 128-token pages' ended about as much
    later (they waited): both happen, and the model, which times the engine, sees neither."""
    late = {r["report"].split("/")[1]: r["late_first_tokens"] for r in rows
            if r["late_first_tokens"]}  # fmt: skip
    assert len(late) >= 8
    assert all(0.15 <= lf["share"] <= 0.45 for lf in late.values())
    for run in ("stock66-r2", "stock66-r3", "stock74-r4"):
        assert 200 < late[run]["ttft_ms"] < 300
    for run in ("cg1792-c109-r1", "kv16-c109-r1"):
        assert abs(late[run]["e2e_ms"]) < 5 and late[run]["ttft_ms"] > 40
    assert late["page128-c109-r1"]["e2e_ms"] > 0.8 * late["page128-c109-r1"]["ttft_ms"]
