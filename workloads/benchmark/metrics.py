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
    """One GuideLLM benchmark (a load level): throughput, latency and errors."""

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

    @property
    def error_rate(self) -> float:
        finished = self.successful + self.errored
        return self.errored / finished if finished else 1.0


class ParseError(Exception):
    """The file is not a GuideLLM benchmark report this version understands."""


def _percentiles(metric: dict[str, Any], scale: float = 1.0) -> Percentiles:
    values = metric["successful"]["percentiles"]
    return Percentiles(values["p50"] * scale, values["p95"] * scale, values["p99"] * scale)


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
                )
            )
    except (KeyError, TypeError) as error:
        raise ParseError(f"not a GuideLLM 0.8 report: missing {error}") from None
    return levels
