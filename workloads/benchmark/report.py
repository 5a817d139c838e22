"""The gate report: JSON for machines, Markdown for people, PNG plots."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from workloads.benchmark.gate import Verdict
from workloads.benchmark.metrics import LevelMetrics
from workloads.benchmark.runner import Run
from workloads.contract import APPLIED_LOAD_TOLERANCE, GatePlan
from workloads.templating import render_text


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Optimized vs baseline on the same GPUs: at the planned load and at the SLO."""

    throughput_ratio: float
    cost_per_request_ratio: float
    baseline_meets_slo: bool
    optimized_meets_slo: bool
    # Capacity at the SLO (goodput search), when both endpoints were searched.
    capacity_ratio: float | None


def compare(optimized: Verdict, baseline: Verdict) -> Comparison | None:
    if optimized.level is None or baseline.level is None or not baseline.level.requests_per_s:
        return None
    throughput = optimized.level.requests_per_s / baseline.level.requests_per_s

    def slo_met(verdict: Verdict) -> bool:
        level = verdict.level
        return bool(level and level.ttft_ms.p95 and level.itl_ms.p95) and all(
            c.passed for c in verdict.checks if c.name in ("ttft_p95_ms", "itl_p95_ms")
        )

    capacity = None
    if optimized.capacity and baseline.capacity:
        base = baseline.capacity.capacity_requests_per_s
        capacity = optimized.capacity.capacity_requests_per_s / base if base else None
    return Comparison(throughput, 1 / throughput, slo_met(baseline), slo_met(optimized), capacity)


# vLLM's request count and the client's may differ by the gate's own probe request.
COUNT_SLACK = 0.01


@dataclasses.dataclass(frozen=True)
class FirstTokenPath:
    """Where a run's first tokens were late: vLLM's own TTFT histogram (stamped by its API
    server when a first token reaches it, read from /metrics before and after the run) against
    the client's per-request TTFTs (stamped when the token arrives), over the same requests.
    At the bucket bound where the two part most, vLLM's share at or under it less the
    client's is at least the share of requests whose first token vLLM had by then and the
    client got later — time spent on the way out (vLLM's streaming, a gateway, the network),
    which no engine setting buys back."""

    bound_s: float
    vllm_share: float
    client_share: float
    requests: int

    @property
    def late_after_vllm_share(self) -> float:
        return self.vllm_share - self.client_share


def first_token_path(run: Run) -> FirstTokenPath | None:
    """None: vLLM's histogram was not read (no --metrics-url / --metrics-service), the
    reports keep no per-request TTFTs, or vLLM counted other requests than the client."""
    if not run.server_ttft_buckets:
        return None
    return compare_first_tokens(run.server_ttft_buckets, list(run.client_ttfts_s))


def compare_first_tokens(
    vllm_buckets: tuple[tuple[float, float], ...], client: list[float]
) -> FirstTokenPath | None:
    """vLLM's TTFT histogram over a run (cumulative (bound s, count) pairs, the last +Inf's:
    `runner.ttft_buckets`) against the client's TTFTs (s) of the same requests; None when
    there are none or the two count other requests (more than COUNT_SLACK apart)."""
    count = vllm_buckets[-1][1] if vllm_buckets else 0.0  # the +Inf bucket: every first token
    if not client or count <= 0 or abs(count - len(client)) > max(1.0, COUNT_SLACK * count):
        return None
    shares = [
        (had / count, sum(t <= bound for t in client) / len(client), bound)
        for bound, had in vllm_buckets[:-1]
    ]
    vllm_share, client_share, bound = max(shares, key=lambda s: s[0] - s[1])
    return FirstTokenPath(bound, vllm_share, client_share, len(client))


def measured_cost(verdict: Verdict, targets: GatePlan) -> dict[str, float] | None:
    """Cost per request and per 1M output tokens at the measured capacity at the SLO."""
    if not verdict.capacity or not verdict.capacity.best:
        return None
    best = verdict.capacity.best
    per_second = targets.cost_per_hour_usd / 3600
    return {
        "capacity_requests_per_s": best.requests_per_s,
        "cost_per_request_usd": per_second / best.requests_per_s,
        "cost_per_million_output_tokens_usd": per_second
        / (best.requests_per_s * best.output_tokens_mean)
        * 1e6,
    }


def as_data(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {
            f.name: as_data(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.metadata.get("in_report", True)
        }
        if isinstance(value, LevelMetrics):
            data["error_rate"] = value.error_rate
            data["measured_requests"] = value.measured_requests
        return data
    if isinstance(value, (list, tuple)):
        return [as_data(v) for v in value]
    if isinstance(value, dict):
        return {k: as_data(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def write_report(
    out_dir: Path,
    verdict: Verdict,
    targets: GatePlan,
    runs: dict[str, dict[str, Run]],
    searches: dict[str, Run],
    comparison: Comparison | None,
    context: dict[str, Any],
) -> dict[str, Any]:
    """Write gate.json, gate.md and the plots; return the JSON document."""
    cost = measured_cost(verdict, targets)
    named = [(f"{label} {scenario}", run) for label, scenarios in runs.items()
             for scenario, run in scenarios.items()]  # fmt: skip
    named += [(f"{label} capacity search", run) for label, run in searches.items()]
    paths = {name: path for name, run in named if (path := first_token_path(run)) is not None}
    document = {
        "verdict": verdict.status,
        "reason": verdict.reason,
        "refusals": list(verdict.refusals),
        "exit_code": verdict.exit_code,
        "checks": as_data(verdict.checks),
        "gate_level": as_data(verdict.level),
        "gate_level_bound": as_data(verdict.bound),
        "capacity_at_slo": {
            "measured": as_data(verdict.capacity),
            "decision": verdict.capacity.describe() if verdict.capacity else None,
            "predicted_requests_per_s": targets.capacity_requests_per_s,
            "predicted_concurrency": targets.capacity_concurrency,
            "measured_cost": cost,
        },
        "targets": as_data(targets),
        "runs": as_data(runs),
        "searches": as_data(searches),
        "comparison": as_data(comparison),
        "first_token_paths": {
            name: {**as_data(path), "late_after_vllm_share": path.late_after_vllm_share}
            for name, path in paths.items()
        },
        **context,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gate.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    plots = _plots(out_dir, runs, searches)
    (out_dir / "gate.md").write_text(
        render_text(
            "reports/gate.md.j2",
            verdict=verdict,
            targets=targets,
            runs=runs,
            searches=searches,
            comparison=comparison,
            cost=cost,
            context=context,
            plots=plots,
            first_token_paths=paths,
            applied_load_tolerance=APPLIED_LOAD_TOLERANCE,
        )
    )
    return document


def _plots(out_dir: Path, runs: dict[str, dict[str, Run]], searches: dict[str, Run]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = [
        (f"{label} / {scenario}", run.levels)
        for label, scenarios in runs.items()
        for scenario, run in scenarios.items()
    ] + [(f"{label} / goodput search", run.levels) for label, run in searches.items()]
    for name, measured in series:
        levels = sorted(measured, key=lambda level: level.concurrency or 0)
        x = [level.concurrency or 0 for level in levels]
        latency.plot(
            x, [level.ttft_ms.p95 for level in levels], marker="o", label=f"{name}: TTFT p95"
        )
        latency.plot(
            x,
            [level.itl_ms.p95 for level in levels],
            marker="s",
            linestyle="--",
            label=f"{name}: ITL p95",
        )
        throughput.plot(x, [level.requests_per_s for level in levels], marker="o", label=name)
    latency.set(xlabel="concurrency", ylabel="ms", title="Latency vs load", yscale="log")
    throughput.set(xlabel="concurrency", ylabel="requests/s", title="Throughput vs concurrency")
    for axis in (latency, throughput):
        axis.grid(True, alpha=0.3)
        if axis.lines:  # nothing measured: an empty, labelled frame
            axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out_dir / "gate.png", dpi=110)
    plt.close(figure)
    return ["gate.png"]
