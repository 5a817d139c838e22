"""The engine's own rate through each H200 gate level, against the scheduler simulation's:
vLLM logs its prompt and generation throughput every 10 s (`server-stats.log` beside each
run); the simulation is binned into the same 10-s windows. A closed loop of identical requests
can fall into waves — clients that finished together send together, their prompts are
prefilled together and decoding stalls meanwhile — which averages hide: a level can meet its
mean rate while its decode rate swings window to window. Whether the model falls into the same
waves decides whether it can predict the per-request TTFT and ITL spread the gate's p95 judges.

    .venv/bin/python -m benchmarks.gpu.h200.engine_rates

writes `benchmarks/results/gpu_h200_engine_rates.{json,md}` from the committed steady-state
levels (`summary.levels`) that carry a server log. Nothing here measures. A window counts when
the engine held at least 90 % of the level's streams (running + waiting); the first
`SKIPPED_WINDOWS` such windows (the first wave's burst) and the last (cut by the level's end)
are left out. The log's 10-s windows see a wave of about a request's length (≈ 20 s at prod's
shape) only as deep as where they fall against it; the per-request rows (`idle_start_share`)
show the waves whatever the windows did.
"""

from __future__ import annotations

import bisect
import math
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.gpu.h200.server_metrics import request_timeline
from benchmarks.gpu.h200.summary import (
    GATE,
    SHAPES,
    Level,
    knobs_of,
    levels,
    out_path,
    write_results,
)
from infra.catalog import ACCELERATORS, MODEL_PRESETS
from infra.load_model import simulate
from infra.sizing import StepCost
from workloads.contract import APPLIED_LOAD_TOLERANCE

WINDOW_S = 10.0  # vLLM's log interval (VLLM_LOG_STATS_INTERVAL's default)
SKIPPED_WINDOWS = 2
START_BIN_S = 2.0  # per-request starts are counted in bins this wide
IN_WAVES = 0.15  # a level whose clients send in waves leaves at least this share of bins idle
SWING_MATCH = 0.10  # the model's swing and the log's agree within this
NO_WAVES = 1.10  # a level whose windows' rates swing less than this holds its steps alike
RESEND_WITHIN_S = 0.2  # a start this soon after a completion is that client's next request
_LINE = re.compile(
    r"Avg prompt throughput: (?P<prompt>[\d.]+) tokens/s, "
    r"Avg generation throughput: (?P<generation>[\d.]+) tokens/s, "
    r"Running: (?P<running>\d+) reqs, Waiting: (?P<waiting>\d+) reqs"
)


def log_windows(log: str, streams: int) -> list[dict[str, float]]:
    """The steady 10-s windows of one level's server log: prompt and generation tokens/s."""
    loaded = []
    for line in log.splitlines():
        if (match := _LINE.search(line)) is None:
            continue
        held = int(match["running"]) + int(match["waiting"])
        if held >= (1 - APPLIED_LOAD_TOLERANCE) * streams:
            loaded.append(
                {"prompt": float(match["prompt"]), "generation": float(match["generation"])}
            )
    return loaded[SKIPPED_WINDOWS:-1]


def _sorted_column(timeline: dict[str, Any], name: str) -> list[float]:
    index = timeline["columns"].index(name)
    return sorted(row[index] for row in timeline["rows"])


def idle_start_share(run_dir: Path) -> float | None:
    """From the run's per-request rows: the share of `START_BIN_S` bins, between the starts of
    the first and last eighth of its requests (the warm-up and cool-down), in which no request
    was sent. A closed loop in waves sends in bursts and leaves bins idle; one out of step
    sends all the time. Unlike the log's 10-s windows this does not depend on where a window
    falls against a wave. None: the run has no rows or more than one level."""
    if (timeline := request_timeline(run_dir)) is None:
        return None
    starts = _sorted_column(timeline, "start_s")
    first, last = starts[len(starts) // 8], starts[len(starts) * 7 // 8]
    bins = int((last - first) // START_BIN_S)
    if bins < 10:
        return None
    busy = {int((t - first) // START_BIN_S) for t in starts if first <= t < last}
    return 1 - len(busy & set(range(bins))) / bins


def resend_gaps_ms(run_dir: Path) -> dict[str, float] | None:
    """From the run's per-request rows: how long the gate's clients took to send the next
    request after one completed (each completion matched, in order, to the first later start
    not yet matched, within `RESEND_WITHIN_S`) — the client's share of the closed loop's turn,
    which the simulation takes as none. None: no rows, or fewer than half the requests
    matched (not a closed loop's timeline)."""
    if (timeline := request_timeline(run_dir)) is None:
        return None
    starts, ends = _sorted_column(timeline, "start_s"), _sorted_column(timeline, "end_s")
    gaps: list[float] = []
    taken = 0
    for end in ends:
        taken = max(taken, bisect.bisect_left(starts, end))
        if taken < len(starts) and starts[taken] - end <= RESEND_WITHIN_S:
            gaps.append((starts[taken] - end) * 1e3)
            taken += 1
    if len(gaps) < len(ends) / 2:
        return None
    gaps.sort()
    return {
        "requests": len(gaps),
        "p50": gaps[len(gaps) // 2],
        "p99": gaps[min(len(gaps) - 1, math.ceil(0.99 * len(gaps)) - 1)],
    }


def late_first_tokens(run_dir: Path) -> dict[str, float] | None:
    """From the run's per-request rows, between its first and last eighth (warm-up and
    cool-down): the share of requests whose TTFT is more than half a median ITL (an engine
    step) above the median TTFT, and how much longer their TTFT and their end-to-end latency
    were than those of the requests at the median (within half a step of it). A request that
    waited a step longer to be scheduled ends a step later too, where every step is alike (no
    waves); one whose first token was computed on time but reached its client late does not.
    None: no rows, or no request above or at the median."""
    if (timeline := request_timeline(run_dir)) is None:
        return None
    names = timeline["columns"]
    start, end, ttft, itl = (names.index(n) for n in ("start_s", "end_s", "ttft_ms", "itl_ms"))
    rows = sorted(timeline["rows"], key=lambda row: row[start])
    rows = rows[len(rows) // 8 : len(rows) - len(rows) // 8]
    if not rows:
        return None
    median = statistics.median(row[ttft] for row in rows)
    half_step = statistics.median(row[itl] for row in rows) / 2
    late = [row for row in rows if row[ttft] > median + half_step]
    usual = [row for row in rows if abs(row[ttft] - median) <= half_step]
    if not late or not usual:
        return None

    def mean(group: list[list[float]], value: Callable[[list[float]], float]) -> float:
        return statistics.fmean(value(row) for row in group)

    def e2e_ms(row: list[float]) -> float:
        return (row[end] - row[start]) * 1e3

    return {
        "share": len(late) / len(rows),
        "ttft_ms": mean(late, lambda row: row[ttft]) - mean(usual, lambda row: row[ttft]),
        "e2e_ms": mean(late, e2e_ms) - mean(usual, e2e_ms),
    }


def simulated_steps(level: Level, requests: int) -> list[tuple[float, int]]:
    """The simulation's steps over `requests` requests at the level's streams: (seconds,
    tokens decoded) each."""
    steps: list[tuple[float, int]] = []

    class Recorder(StepCost):
        def seconds(
            self,
            decode_tokens: int,
            decode_context_tokens: int,
            prefill_chunks: list[tuple[int, int]],
        ) -> float:
            took = super().seconds(decode_tokens, decode_context_tokens, prefill_chunks)
            steps.append((took, decode_tokens))
            return took

    simulate(
        MODEL_PRESETS["llama-3.1-8b-instruct"].architecture,
        ACCELERATORS["H200"],
        knobs_of(GATE / level.server),
        SHAPES[level.shape]["workload"],
        level.concurrency,
        measured_requests=requests,
        step_cost=Recorder,
    )
    return steps


def binned(steps: list[tuple[float, int]]) -> list[float]:
    """Decode tokens/s in 10-s windows of the simulated run (its first `SKIPPED_WINDOWS` and
    its last window left out, as for the log)."""
    windows: list[float] = []
    now = tokens = 0.0
    edge = WINDOW_S
    for took, decoded in steps:
        now += took
        tokens += decoded
        if now >= edge:
            windows.append(tokens / WINDOW_S)
            tokens, edge = 0.0, edge + WINDOW_S
    return windows[SKIPPED_WINDOWS:-1]


def _spread(rates: list[float]) -> dict[str, float]:
    return {
        "min": min(rates),
        "median": statistics.median(rates),
        "max": max(rates),
        "swing": max(rates) / min(rates) if min(rates) > 0 else float("inf"),
    }


def compare(gate: Path = GATE) -> list[dict[str, Any]]:
    rows = []
    for level in levels(gate):
        # Only a run's own folder holds its level's log alone.
        log = (gate / level.report).parent / "server-stats.log"
        if level.refused or Path(level.report).name != "gate.json" or not log.is_file():
            continue
        windows = log_windows(log.read_text(), level.concurrency)
        if len(windows) < 3:
            continue
        simulated = binned(simulated_steps(level, level.measured_requests + level.concurrency))
        rows.append(
            {
                "shape": level.shape,
                "profile": level.profile,
                "report": level.report,
                "streams": level.concurrency,
                "windows": len(windows),
                "generation": _spread([w["generation"] for w in windows]),
                "prompt": _spread([w["prompt"] for w in windows]),
                "itl_p95_ms": level.itl_p95_ms,
                "ttft_p50_ms": level.ttft_p50_ms,
                "ttft_p95_ms": level.ttft_p95_ms,
                "model_generation": _spread(simulated),
                "idle_start_share": idle_start_share((gate / level.report).parent),
                "resend_ms": resend_gaps_ms((gate / level.report).parent),
                "late_first_tokens": late_first_tokens((gate / level.report).parent),
            }
        )
    return rows


def swing_gap(row: dict[str, Any]) -> float:
    """How far the model's swing is from the log's, as a share of the log's."""
    return abs(row["model_generation"]["swing"] / row["generation"]["swing"] - 1)


def straddled(row: dict[str, Any]) -> bool:
    """The log shows a shallower swing than the model, and the run's own requests were sent in
    waves: the log's 10-s windows fell across the waves (an average over a window can only
    flatten a swing), rather than the engine not waving."""
    share = row["idle_start_share"]
    return (
        row["generation"]["swing"] < row["model_generation"]["swing"]
        and share is not None
        and share >= IN_WAVES
    )


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "# The engine's rate through each H200 gate level, window by window",
        "",
        "Generated by `.venv/bin/python -m benchmarks.gpu.h200.engine_rates` from the server logs",
        f"beside the {len(rows)} steady-state gate levels that carry one (vLLM 0.25.1 logs its",
        "prompt and generation throughput every 10 s); the model's column is the scheduler",
        "simulation (`infra/load_model.py`) at the same streams, binned into the same windows.",
        "Swing: the fastest window's generation rate over the slowest's. Idle send bins: the",
        f"share of {START_BIN_S:.0f}-s bins in which the gate sent no request (from its",
        "per-request rows, runs since 2026-12-04; — before): a closed loop in waves sends in",
        "bursts. Resend: how long a client took from a completion to its next request (same",
        "rows), which the simulation takes as none. Late first tokens: the share of requests whose",
        "TTFT was more than half a step (half the median ITL) over the median, and how much longer",
        "their TTFT and their end-to-end latency were than the median requests' (same rows).",
        "",
        "| shape | profile | report | streams | windows | generation tok/s min / median / max "
        "| swing | model swing | idle send bins | resend p50 / p99 ms "
        "| late first tokens: share, TTFT + / e2e + ms | prompt tok/s min-max "
        "| TTFT p50 / p95 ms | ITL p95 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        g, p, m = r["generation"], r["prompt"], r["model_generation"]
        idle = "—" if r["idle_start_share"] is None else f"{r['idle_start_share']:.0%}"
        resend = "—"
        if (gap := r["resend_ms"]) is not None:
            resend = f"{gap['p50']:.1f} / {gap['p99']:.1f}"
        late_cell = "—"
        if (lf := r["late_first_tokens"]) is not None:
            late_cell = f"{lf['share']:.0%}, +{lf['ttft_ms']:.0f} / {lf['e2e_ms']:+.0f}"
        lines.append(
            f"| {r['shape']} | {r['profile']} | `{r['report']}` | {r['streams']} | {r['windows']} "
            f"| {g['min']:,.0f} / {g['median']:,.0f} / {g['max']:,.0f} | {g['swing']:.2f}× "
            f"| {m['swing']:.2f}× | {idle} | {resend} | {late_cell} "
            f"| {p['min']:,.0f}-{p['max']:,.0f} "
            f"| {r['ttft_p50_ms']:,.0f} / {r['ttft_p95_ms']:,.0f} | {r['itl_p95_ms']:.1f} |"
        )
    matched = [r for r in rows if swing_gap(r) <= SWING_MATCH]
    across = [r for r in rows if r not in matched and straddled(r)]
    unexplained = [r for r in rows if r not in matched and r not in across]
    gaps = [swing_gap(r) for r in matched]
    widest = max(rows, key=lambda r: r["generation"]["swing"])
    text = (
        "Where the swing is large the closed loop has fallen into waves: at its widest "
        f"({widest['profile']} at {widest['streams']} streams, {widest['shape']}) windows of "
        "decoding alternate with windows of prefilling a whole wave's prompts. The simulation "
        f"falls into the same waves: its swing is within {max(gaps):.0%} of the log's at "
        f"{len(matched)} of {len(rows)} levels (median {statistics.median(gaps):.0%})."
    )
    for r in across:
        text += (
            f" At `{r['report']}` the log swings {r['generation']['swing']:.2f}× where the "
            f"model swings {r['model_generation']['swing']:.2f}×, yet the gate sent no request "
            f"in {r['idle_start_share']:.0%} of its {START_BIN_S:.0f}-s bins: it ran in waves, "
            "and the log's 10-s windows fell across them (a window's average can only flatten "
            "a swing)."
        )
    for r in unexplained:
        text += (
            f" Not explained: `{r['report']}` (log {r['generation']['swing']:.2f}×, model "
            f"{r['model_generation']['swing']:.2f}×)."
        )
    text += (
        " So where a level's per-request TTFT or ITL p95 and the model's differ "
        "(gpu_h200_summary.md), it is not for want of waves in the model."
    )
    if resent := [r["resend_ms"] for r in rows if r["resend_ms"]]:
        text += (
            f" Nor is it the clients: where the rows say ({len(resent)} levels) a client sent "
            f"its next request {min(g['p50'] for g in resent):.1f}-"
            f"{max(g['p50'] for g in resent):.1f} ms after a completion (median; at most "
            f"{max(g['p99'] for g in resent):.1f} ms at p99), a small share of one engine step."
        )
    if late := [r for r in rows if r["late_first_tokens"]]:
        shares = [r["late_first_tokens"]["share"] for r in late]
        text += (
            f" A TTFT comes in whole engine steps: at the {len(late)} levels with rows "
            f"{min(shares):.0%}-{max(shares):.0%} of the requests had theirs more than half a "
            "step after the median (a whole step, mostly). Whether such a request waited for "
            "the scheduler or its first token reached the client late shows in its end-to-end "
            "latency where every step is alike: "
        )
        text += "; ".join(
            f"`{r['report']}` +{r['late_first_tokens']['ttft_ms']:.0f} ms TTFT, "
            f"{r['late_first_tokens']['e2e_ms']:+.0f} ms e2e"
            for r in late
            if r["generation"]["swing"] < NO_WAVES
        )
        text += (
            " (where the loop waves, a step's length depends on where it falls, and the end-to-"
            "end latency cannot tell)."
        )
    return "\n".join([*lines, "", text, ""])


def main() -> None:
    out = out_path(__doc__, "gpu_h200_engine_rates")
    rows = compare()
    write_results(out, rows, markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
