"""Where a request's time went, by vLLM's own histograms, over one gate level.

`benchmarks/gpu/h200/gate.sh` saves vLLM's /metrics before and after each gate run; the
difference of each histogram is what that run's requests (warm-up and cool-down included)
spent: waiting in the scheduler's queue, being prefilled, decoding, and the server-side TTFT
(from the API server's arrival to the first token). Set against the gate's client-side TTFT,
it says whether a long TTFT is queueing in the engine, prefill work, or outside the engine.

    python -m benchmarks.gpu.h200.server_metrics RUN_DIR [RUN_DIR ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from workloads.benchmark.report import compare_first_tokens
from workloads.benchmark.runner import metric_totals, ttft_buckets
from workloads.contract import target_runs

HISTOGRAMS = {
    "queue_s": "vllm:request_queue_time_seconds",
    "prefill_s": "vllm:request_prefill_time_seconds",
    "decode_s": "vllm:request_decode_time_seconds",
    "server_ttft_s": "vllm:time_to_first_token_seconds",
    "server_e2e_s": "vllm:e2e_request_latency_seconds",
}
CPU_SECONDS = "process_cpu_seconds_total"  # of the API server process serving /metrics
SERIES = (CPU_SECONDS, *(f"{name}{part}" for name in HISTOGRAMS.values()
                         for part in ("_bucket", "_count", "_sum")))  # fmt: skip


def readings(run: Path) -> tuple[dict[str, float], dict[str, float]]:
    """The run's /metrics before and after (gate.sh), as the gate reads them (`metric_totals`)."""
    before, after = (
        metric_totals((run / f"metrics-{at}.txt").read_text(), SERIES) for at in ("before", "after")
    )
    return before, after


def _quantile(buckets: list[tuple[float, float]], count: float, share: float) -> float:
    """Upper bound of the bucket holding the `share` quantile (buckets: cumulative deltas)."""
    for upper, cumulative in buckets:
        if cumulative >= share * count:
            return upper
    return float("inf")


def histogram_delta(
    before: dict[str, float], after: dict[str, float], name: str
) -> dict[str, float] | None:
    """One histogram's requests between two readings: their count, mean and the bucket
    bounds their median and 95th percentile lie at or under. None: none counted."""

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    if f"{name}_count" not in after or (count := delta(f"{name}_count")) <= 0:
        return None
    prefix = f"{name}_bucket:"
    buckets = sorted((float(key[len(prefix) :]), delta(key)) for key in after
                     if key.startswith(prefix))  # fmt: skip
    return {
        "count": count,
        "mean": delta(f"{name}_sum") / count,
        "p50_at_most": _quantile(buckets, count, 0.5),
        "p95_at_most": _quantile(buckets, count, 0.95),
    }


def request_timeline(run: Path) -> dict[str, Any] | None:
    """The per-request rows of the run's trimmed GuideLLM report (`leanrag_requests`, kept
    since 2026-12-04: columns and one row per request). None: the run has none (older
    reports) or more than one level."""
    timelines = [
        benchmark["leanrag_requests"]
        for report in sorted(run.glob("guidellm-*-trimmed.json"))
        for benchmark in json.loads(report.read_text())["benchmarks"]
        if "leanrag_requests" in benchmark
    ]
    return timelines[0] if len(timelines) == 1 else None


def first_token_after_vllm(run: Path) -> dict[str, float] | None:
    """Where a first token was late: vLLM's own TTFT histogram (stamped by its API server when
    the token reaches it) against the gate's per-request rows (stamped by the client when the
    token arrives), over the same requests — every request of the run, warm-up included, on
    both sides. At the bucket bound where they part most, the server's share at or under it
    less the client's is at least the share of requests whose first token vLLM had in time
    and the client got after that bound: late on the way out, not in the engine — the gate's
    own comparison (`report.compare_first_tokens`). None: no rows, no histogram, or the two
    do not count the same requests (within the gate's slack, 1 %)."""
    if (timeline := request_timeline(run)) is None:
        return None
    column = timeline["columns"].index("ttft_ms")
    before, after = readings(run)  # the TTFT buckets keyed as the gate keys them
    path = compare_first_tokens(
        ttft_buckets(before, after), [row[column] / 1e3 for row in timeline["rows"]]
    )
    if path is None:
        return None
    return {
        "bound_s": path.bound_s,
        "server_share": path.vllm_share,
        "client_share": path.client_share,
        "late_after_vllm_share": path.late_after_vllm_share,
    }


LOG_INTERVAL_S = 10.0  # vLLM's periodic stats lines (server-stats.log beside each run)
_LOADED = re.compile(r"Running: [1-9]")


def api_server_cpu_share(run: Path) -> float | None:
    """CPU seconds vLLM's API server process (the one serving /metrics: it tokenizes every
    prompt and streams every token) spent per second of the run's load — the rise of its
    `process_cpu_seconds_total` over the run, against the 10-s log windows in which the
    engine ran anything. Near 1.0 the frontend's one Python process is saturated. None:
    no counter or no log."""
    log = run / "server-stats.log"
    if not log.is_file():
        return None
    before, after = readings(run)
    loaded = sum(1 for line in log.read_text().splitlines() if _LOADED.search(line))
    if CPU_SECONDS not in after or CPU_SECONDS not in before or loaded == 0:
        return None
    return (after[CPU_SECONDS] - before[CPU_SECONDS]) / (loaded * LOG_INTERVAL_S)


def summarize(run: Path) -> dict[str, Any]:
    before, after = readings(run)
    server = {key: histogram_delta(before, after, name) for key, name in HISTOGRAMS.items()}
    gate = json.loads((run / "gate.json").read_text())
    levels = [level for scenario in target_runs(gate).values() for level in scenario["levels"]]
    partial = run / "metrics-after.partial"  # levels.sh: a search's reading at a deadline
    return {
        "run": run.name,
        "metrics_after_partial": partial.read_text().strip() if partial.is_file() else None,
        "server": server,
        "first_token_after_vllm": first_token_after_vllm(run),
        "api_server_cpu_share": api_server_cpu_share(run),
        "client": [
            {
                "concurrency": level["concurrency"],
                "ttft_ms": level["ttft_ms"],
                "itl_ms": level["itl_ms"],
                "requests_per_s": level["requests_per_s"],
            }
            for level in levels
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="also write the runs' summaries as JSON")
    args = parser.parse_args()
    summaries = [summarize(run) for run in args.runs]
    if args.out:
        args.out.write_text(json.dumps(summaries, indent=1) + "\n")
    for summary in summaries:
        means = {k: round(v["mean"] * 1e3) if v else None for k, v in summary["server"].items()}
        client = summary["client"][0] if summary["client"] else {}
        print(
            f"{summary['run']}: server mean ms {means}; client TTFT p50/p95 "
            f"{client.get('ttft_ms', {}).get('p50', 0):.0f}/"
            f"{client.get('ttft_ms', {}).get('p95', 0):.0f} ms"
        )
        if summary["metrics_after_partial"]:
            print(f"  partial: the after-reading was {summary['metrics_after_partial']}")
        if (cpu := summary["api_server_cpu_share"]) is not None:
            print(f"  API server process: {cpu:.2f} CPU-seconds per second of load")
        if late := summary["first_token_after_vllm"]:
            print(
                f"  first token at the client later than vLLM stamped it: ≥ "
                f"{late['late_after_vllm_share']:.0%} of requests (TTFT ≤ {late['bound_s']} s: "
                f"{late['server_share']:.0%} by vLLM, {late['client_share']:.0%} by the client)"
            )


if __name__ == "__main__":
    main()
