"""GuideLLM 0.8 JSON → typed metrics, one entry per measured load level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Percentiles:
    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class LevelMetrics:
    """One GuideLLM benchmark (a load level or a goodput probe): what was sent and measured.

    Only requests between warm-up and cool-down are counted; token means are what the server
    reported for the successful ones (the traffic that actually reached the model).
    """

    strategy: str
    concurrency: int | None
    requests_per_s: float
    output_tokens_per_s: float
    ttft_ms: Percentiles
    itl_ms: Percentiles
    e2e_ms: Percentiles
    successful: int
    errored: int
    incomplete: int
    duration_s: float
    prompt_tokens_mean: float
    output_tokens_mean: float
    # Share of requests meeting every latency objective (goodput runs), its population and
    # the rate of conforming requests; None when the run had no objectives.
    slo_attainment: float | None
    slo_determined_requests: int
    goodput_requests_per_s: float | None
    # GuideLLM's own post-benchmark warnings (e.g. generation_delay_ttft: its per-request
    # generation time against TTFT — which is measured from dispatch, after generation).
    warnings: tuple[str, ...]
    # Requests in flight, time-averaged over the window (None: the report does not say). With
    # N streams it is N when the load generator keeps up; less when it held requests back.
    in_flight_mean: float | None = None
    # Mean wait between a stream's turn and GuideLLM dispatching its request (ms).
    dispatch_delay_ms: float = 0.0
    # Mean end-to-end latency of the measured requests (ms; None: the report does not say).
    e2e_mean_ms: float | None = None
    # Requests left out as warm-up by the gate's steady window (window.py; None: GuideLLM's own
    # window, as in reports written before it), or why no steady window could be set.
    warmup_requests: int | None = None
    window_refusal: str | None = None
    # The successful requests' 1st and 99th percentile of prompt and output tokens (None: the
    # report does not say): a mean on the plan's shape can hide requests that are not.
    prompt_tokens_range: tuple[float, float] | None = None
    output_tokens_range: tuple[float, float] | None = None
    # Over the whole level, warm-up and cool-down included (GuideLLM's scheduler): the requests
    # it was to send (a count-bounded level; None: time-bounded, or the report does not say),
    # those it processed, and those of them it cancelled when a limit stopped the level.
    planned_requests: int | None = None
    processed_requests: int | None = None
    cancelled_requests: int = 0

    @property
    def error_rate(self) -> float:
        finished = self.successful + self.errored
        return self.errored / finished if finished else 1.0

    @property
    def measured_requests(self) -> int:
        return self.successful + self.errored


class ParseError(Exception):
    """The file is not a GuideLLM benchmark report this version understands."""


def _percentiles(metric: dict[str, Any], scale: float = 1.0) -> Percentiles:
    values = metric["successful"]["percentiles"]
    return Percentiles(values["p50"] * scale, values["p95"] * scale, values["p99"] * scale)


def _successful_mean(metric: dict[str, Any] | None) -> float:
    if not metric or not metric.get("successful"):
        return 0.0
    return float(metric["successful"]["mean"] or 0.0)


def _successful_range(metric: dict[str, Any] | None) -> tuple[float, float] | None:
    summary = (metric or {}).get("successful") or {}
    percentiles = summary.get("percentiles") or {}
    if not summary.get("count") or "p01" not in percentiles or "p99" not in percentiles:
        return None
    return float(percentiles["p01"]), float(percentiles["p99"])


def _in_flight(metric: dict[str, Any] | None) -> float | None:
    """Time-averaged requests in flight, every status together."""
    if not metric:
        return None
    summary = metric.get("total") or metric.get("successful")
    return float(summary["mean"]) if summary and summary.get("mean") is not None else None


def parse_report(report: dict[str, Any]) -> list[LevelMetrics]:
    """Every benchmark in a GuideLLM report, in the order it ran."""
    try:
        benchmarks = report["benchmarks"]
        levels = []
        for benchmark in benchmarks:
            metrics = benchmark["metrics"]
            totals = metrics["request_totals"]
            strategy = benchmark["config"]["strategy"]
            if not totals["successful"]:
                zero = Percentiles(0.0, 0.0, 0.0)
                ttft = itl = e2e = zero
            else:
                ttft = _percentiles(metrics["time_to_first_token_ms"])
                itl = _percentiles(metrics["inter_token_latency_ms"])
                e2e = _percentiles(metrics["request_latency"], scale=1000.0)  # seconds → ms
            goodput = metrics.get("request_goodput")
            window = benchmark.get("leanrag_window") or {}
            scheduler = benchmark.get("scheduler_state") or {}
            planned = (scheduler.get("progress") or {}).get("total_requests")
            processed = scheduler.get("processed_requests")
            levels.append(
                LevelMetrics(
                    strategy=strategy["type_"],
                    concurrency=strategy.get("streams"),
                    requests_per_s=metrics["requests_per_second"]["successful"]["mean"],
                    output_tokens_per_s=metrics["output_tokens_per_second"]["successful"]["mean"],
                    ttft_ms=ttft,
                    itl_ms=itl,
                    e2e_ms=e2e,
                    successful=totals["successful"],
                    errored=totals["errored"],
                    incomplete=totals["incomplete"],
                    duration_s=benchmark["duration"],
                    prompt_tokens_mean=_successful_mean(metrics["prompt_token_count"]),
                    output_tokens_mean=_successful_mean(metrics["output_token_count"]),
                    slo_attainment=metrics.get("slo_attainment"),
                    slo_determined_requests=metrics.get("slo_determined_requests") or 0,
                    goodput_requests_per_s=_successful_mean(goodput) if goodput else None,
                    warnings=tuple(w["code"] for w in benchmark.get("warnings") or ()),
                    in_flight_mean=_in_flight(metrics.get("request_concurrency")),
                    # A plain distribution over every dispatched request (no status split).
                    dispatch_delay_ms=1000.0
                    * float((metrics.get("root_dispatch_delay") or {}).get("mean") or 0.0),
                    e2e_mean_ms=1000.0 * _successful_mean(metrics["request_latency"])
                    if totals["successful"]
                    else None,
                    warmup_requests=window.get("warmup_requests"),
                    window_refusal=window.get("refused"),
                    prompt_tokens_range=_successful_range(metrics["prompt_token_count"]),
                    output_tokens_range=_successful_range(metrics["output_token_count"]),
                    planned_requests=int(planned) if planned else None,
                    processed_requests=int(processed) if processed is not None else None,
                    cancelled_requests=int(scheduler.get("cancelled_requests") or 0),
                )
            )
    except (KeyError, TypeError) as error:
        raise ParseError(f"not a GuideLLM 0.8 report: missing {error}") from None
    return levels


# Per-request samples and per-modality breakdowns: most of a report's bytes, none of the gate's.
_TRIMMED_METRICS = ("text", "image", "video", "audio", "tool_call")
# What each successful request's percentiles are made of, kept when its sample is dropped
# (≈ 80 bytes a request as the runner indents it): where a level's TTFT or ITL spreads across
# requests, the timeline says when and which (seconds from the level's first request start).
TIMELINE_COLUMNS = ("start_s", "end_s", "ttft_ms", "itl_ms", "prompt_tokens", "output_tokens")


def request_timeline(benchmark: dict[str, Any]) -> dict[str, Any] | None:
    """The benchmark's successful requests, one row each in start order (None: the report
    carries no samples, e.g. a trimmed one)."""
    successful = (benchmark.get("requests") or {}).get("successful") or ()
    if not successful:
        return None
    origin = min(request["request_start_time"] for request in successful)
    rows = sorted(
        [
            round(request["request_start_time"] - origin, 6),
            round(request["request_end_time"] - origin, 6),
            round(request["time_to_first_token_ms"] or 0.0, 2),
            round(request["inter_token_latency_ms"] or 0.0, 3),
            request["prompt_tokens"] or 0,
            request["output_tokens"] or 0,
        ]
        for request in successful
    )
    return {"origin_time": origin, "columns": list(TIMELINE_COLUMNS), "rows": rows}


def trim_report(report: dict[str, Any]) -> dict[str, Any]:
    """A GuideLLM report small enough to commit: every summary the gate reads and each
    successful request's timeline row (`leanrag_requests`), no samples."""
    trimmed = dict(report)
    trimmed["benchmarks"] = []
    for benchmark in report["benchmarks"]:
        kept = dict(benchmark)
        kept["requests"] = {status: [] for status in benchmark.get("requests") or {}}
        kept["metrics"] = {
            k: v for k, v in benchmark["metrics"].items() if k not in _TRIMMED_METRICS
        }
        timeline = request_timeline(benchmark)
        if timeline is not None:
            kept["leanrag_requests"] = timeline
        trimmed["benchmarks"].append(kept)
    return trimmed
