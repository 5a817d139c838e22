"""The measured window of a count-bounded level, set from its requests rather than left to chance.

GuideLLM 0.8.1 ends a count-bounded warm-up at the start time of whichever request it hears
about while exactly `warm-up + 1` requests have finished. Which one that is depends on how the
workers' updates interleave: usually a request just sent (the window then starts a wave or two
in), but when a first-wave request finishes as that (warm-up + 1)-th one and no update follows
before the next finish, the window starts at the first wave's dispatch, and the first wave's
burst is measured. Reproduced with real GuideLLM against a streaming server: over four identical
runs its window started 0.58 s or 1.13 s after the first request of 0.56 s ones.

Here the warm-up is what it is meant to be: the first `percent × sent` requests to finish, and
at least the whole first wave (the `streams` requests dispatched first). The window opens just
after the last of them finishes and closes when only the cool-down's `percent × sent` remain,
and GuideLLM's own metric code recompiles the benchmark on it from the report's per-request
samples (it reproduces GuideLLM's published numbers exactly on GuideLLM's own window).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

# A request that finished at the window's opening is warm-up: the window opens just after it.
_AFTER_S = 1e-6
STATUSES = ("successful", "errored", "incomplete")


class WindowError(ValueError):
    """The report has too few finished requests to place a warm-up and a cool-down."""


def _finished(benchmark: dict[str, Any]) -> list[tuple[float, float]]:
    """(start, end) of every request that reached the server and finished, by start time."""
    spans = []
    for status in STATUSES:
        for request in benchmark["requests"].get(status) or ():
            timings = request["info"]["timings"]
            start, end = timings.get("request_start"), timings.get("request_end")
            if start is not None and end is not None:
                spans.append((start, end))
    return sorted(spans)


def steady_window(benchmark: dict[str, Any]) -> dict[str, Any] | None:
    """Where a count-bounded benchmark's measurement starts and ends (None: not count-bounded,
    so GuideLLM's time-based window stands)."""
    config = benchmark["config"]
    total = benchmark["scheduler_state"]["progress"].get("total_requests")
    warmup, cooldown = config.get("warmup") or {}, config.get("cooldown") or {}
    if not total or "requests" not in (warmup.get("mode"), cooldown.get("mode")):
        return None
    streams = int(config["strategy"].get("streams") or 1)
    spans = _finished(benchmark)
    warm = int((warmup.get("percent") or 0) * total)
    cool = int((cooldown.get("percent") or 0) * total)
    ends = sorted(end for _, end in spans)
    first_wave_end = max(end for _, end in spans[:streams]) if spans else 0.0
    # The warm-up is its share of the requests, or the whole first wave if that finished later.
    warm = max(warm, sum(1 for end in ends if end <= first_wave_end))
    if warm + cool >= len(ends):
        raise WindowError(
            f"{len(ends)} requests finished at {streams} streams: too few to leave out a warm-up "
            f"of {warm} (the first wave included) and a cool-down of {cool}"
        )
    return {
        "warmup_requests": warm,
        "cooldown_requests": cool,
        "first_wave": streams,
        # warm ≥ 1: the first wave's last finish is at or after the first finish
        "measure_start_time": ends[warm - 1] + _AFTER_S,
        "measure_end_time": ends[len(ends) - cool - 1],
    }


def _compile(benchmark: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """GuideLLM's own metrics for the benchmark's requests within [start, end]."""
    from guidellm.benchmark.schemas.accumulator import GenerativeRequestsAccumulator
    from guidellm.benchmark.schemas.base import BenchmarkConfig
    from guidellm.benchmark.schemas.metrics import GenerativeMetrics
    from guidellm.schemas import GenerativeRequestStats

    def requests(status: str) -> GenerativeRequestsAccumulator:
        stats = [GenerativeRequestStats.model_validate(request)
                 for request in benchmark["requests"].get(status) or ()]  # fmt: skip
        return GenerativeRequestsAccumulator(requests_stats=stats)

    accumulator = SimpleNamespace(
        timings=SimpleNamespace(finalized_measure_start=start, finalized_measure_end=end),
        completed=requests("successful"),
        errored=requests("errored"),
        incomplete=requests("incomplete"),
        config=BenchmarkConfig.model_validate(benchmark["config"]),
    )
    return json.loads(GenerativeMetrics.compile(accumulator).model_dump_json())


def _has_samples(benchmark: dict[str, Any]) -> bool:
    """Whether the benchmark still carries its per-request samples (a trimmed copy does not)."""
    requests = benchmark.get("requests") if isinstance(benchmark, dict) else None
    return isinstance(requests, dict) and any(requests.get(status) for status in STATUSES)


def rewindow(report: dict[str, Any]) -> dict[str, Any]:
    """The report with every count-bounded benchmark measured over its steady window; each
    says where GuideLLM had put the window (`leanrag_window`). Benchmarks already rewindowed,
    or trimmed of their samples, are left as they are (and what is not a GuideLLM report is
    left to parse_report to name)."""
    if not isinstance(report, dict) or not isinstance(report.get("benchmarks"), list):
        return report
    benchmarks = []
    for benchmark in report["benchmarks"]:
        if "leanrag_window" in benchmark or not _has_samples(benchmark):
            benchmarks.append(benchmark)
            continue
        try:
            window = steady_window(benchmark)
        except WindowError as error:
            benchmarks.append(benchmark | {"leanrag_window": {"refused": str(error)}})
            continue
        if window is None:
            benchmarks.append(benchmark)
            continue
        start, end = window["measure_start_time"], window["measure_end_time"]
        scheduler = dict(benchmark["scheduler_metrics"])
        window["guidellm_measure_start_time"] = scheduler["measure_start_time"]
        window["guidellm_measure_end_time"] = scheduler["measure_end_time"]
        scheduler |= {"measure_start_time": start, "measure_end_time": end}
        requests_start = scheduler["request_start_time"]
        benchmarks.append(
            benchmark | {
                "metrics": _compile(benchmark, start, end),
                "scheduler_metrics": scheduler,
                "start_time": start,
                "end_time": end,
                "duration": end - start,
                "warmup_duration": start - requests_start,
                "cooldown_duration": scheduler["request_end_time"] - end,
                "leanrag_window": window,
            }
        )  # fmt: skip
    return report | {"benchmarks": benchmarks}
