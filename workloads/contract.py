"""The plan contract: what a workload receives from the plan, and nothing of the Pulumi program.

`infra` writes these as JSON (the gate's `plan.json` ConfigMap) and may import this module;
workloads import nothing from `infra`. Standard library only, so every workload image carries
it as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class GatePlan:
    """What the post-deploy benchmark runs and the verdict it applies."""

    ttft_p95_ms: float
    itl_p95_ms: float
    min_throughput_rps: float
    max_error_rate: float
    concurrency: int
    prompt_tokens: int
    output_tokens: int
    shared_prefix_tokens: int
    predicted_requests_per_s: float
    predicted_output_tokens_per_s: float
    capacity_tolerance: float
    # End-to-end latency of one request at the planned load (Little's law on the closed loop):
    # bounds how long a count-bounded load level may take before the gate gives up on it.
    predicted_e2e_ms: float
    # Capacity at the SLO: the most requests in flight (and their rate) the deployment serves
    # with TTFT p95 and ITL p95 within target. The gate's goodput search measures the same.
    capacity_concurrency: int
    capacity_requests_per_s: float
    # What stops more load: "ttft", "itl", "both", or "ceiling" (the replicas admit no more).
    capacity_limited_by: str
    # Measured token counts must be within this share of the planned prompt and output lengths,
    # or the gate judged other traffic than the plan's and refuses to decide.
    shape_tolerance: float
    # Steady state by count: each level measures at least this many requests (and 4 × its
    # concurrency) after warm-up and before cool-down.
    min_measured_requests: int
    cost_per_hour_usd: float
    # Replicas the figures above are for (throughput and capacity are the deployment's).
    replicas: int = 1
    # The live quality check: the served log-probabilities of the quantize Job's held-out
    # passages may differ from the Job's by this many nats per token on average.
    quality_tolerance_nats: float = 0.1

    def capacity_band(self) -> tuple[float, float]:
        """The capacities at the SLO (req/s) within `capacity_tolerance` of the prediction."""
        return (
            self.capacity_requests_per_s * (1 - self.capacity_tolerance),
            self.capacity_requests_per_s * (1 + self.capacity_tolerance),
        )

    def one_replica(self) -> GatePlan:
        """The share of one replica: for gating a single replica (a canary, or one GPU of a
        plan that needs several) against its part of the plan."""
        n = max(self.replicas, 1)
        return replace(
            self,
            concurrency=max(1, math.ceil(self.concurrency / n)),
            min_throughput_rps=self.min_throughput_rps / n,
            predicted_requests_per_s=self.predicted_requests_per_s / n,
            predicted_output_tokens_per_s=self.predicted_output_tokens_per_s / n,
            capacity_concurrency=self.capacity_concurrency // n,
            capacity_requests_per_s=self.capacity_requests_per_s / n,
            cost_per_hour_usd=self.cost_per_hour_usd / n,
            replicas=1,
        )


# --- how the gate bounds each load level (the plan sizes the gate Job's timeout from it) ----

# Warm-up and cool-down: each this share of a level's requests (≥ one wave, as a level sends at
# least 12 × its concurrency; the warm-up also the whole first wave: benchmark/window.py). A
# level sends twice what it must measure plus four waves.
TRANSIENT_SHARE = 1 / 8
WAVES_MEASURED = 4
# A closed-loop client keeps N streams busy less a turnaround per request (measured ≈ 12 ms
# with GuideLLM on its own core: 3.75 of 4 in flight on 180 ms requests, 111.97 of 112 on 19 s
# ones); below this share of the planned streams in flight, the load was not applied.
APPLIED_LOAD_TOLERANCE = 0.10
# A scenario's prompts share its shared document and the chat template (a few tokens, under one
# KV block) and nothing else: vLLM's prefix cache may serve the document's share of each prompt
# and at most this much more — for the uncached RAG scenario, next to nothing.
CACHE_HIT_SLACK = 0.01
# In a steady state Little's law holds: throughput = requests in flight / mean latency. A level
# whose measured req/s is further than this from it measured a transient — the first wave's
# burst completing inside the window — not the server's rate. (A level of few waves gets more:
# up to one wave of requests straddles the window's edges.)
STEADY_STATE_TOLERANCE = 0.075
# A level may take this many times its predicted duration before it is stopped.
TIME_SAFETY = 3.0
STARTUP_ALLOWANCE_S = 120


@dataclass(frozen=True)
class LevelBound:
    """How one level (or one goodput probe) is bounded, and what it must measure to count."""

    concurrency: int
    bounded_by: str  # "requests" (count, time limit as a guard) or "seconds" (--seconds)
    total_requests: int | None  # sent, warm-up and cool-down included
    required_requests: int  # measured between warm-up and cool-down
    time_limit_s: float

    def describe(self) -> str:
        if self.bounded_by == "seconds":
            return (
                f"time-bounded by --seconds: {self.time_limit_s:.0f} s, warm-up and cool-down "
                f"{TRANSIENT_SHARE:.0%} of it each; needs ≥ {self.required_requests} measured"
            )
        return (
            f"count-bounded: {self.total_requests} requests, warm-up and cool-down "
            f"{int(TRANSIENT_SHARE * (self.total_requests or 0))} each, needs ≥ "
            f"{self.required_requests} measured; stopped after {self.time_limit_s:.0f} s "
            "otherwise"
        )


class WindowTooShort(ValueError):
    """A time-bounded level whose warm-up ends before its first requests complete."""


def min_seconds(targets: GatePlan) -> int:
    """The shortest --seconds whose warm-up outlasts one predicted request: with less, the first
    wave (all streams sent at once, its TTFT a burst's) completes inside the measured window."""
    return math.ceil(targets.predicted_e2e_ms / 1e3 / TRANSIENT_SHARE)


def level_bound(targets: GatePlan, concurrency: int, seconds: int | None = None) -> LevelBound:
    required = max(WAVES_MEASURED * concurrency, targets.min_measured_requests)
    if seconds:
        if seconds < min_seconds(targets):
            raise WindowTooShort(
                f"--seconds {seconds} is too short for this plan: its warm-up "
                f"({TRANSIENT_SHARE:.1%} of it) ends before a request sent at the start "
                f"completes (predicted {targets.predicted_e2e_ms / 1e3:.1f} s), so the first "
                f"wave's burst would be measured; use --seconds {min_seconds(targets)} or more, "
                "or leave --seconds out (count-bounded levels)"
            )
        return LevelBound(concurrency, "seconds", None, required, float(seconds))
    total = 2 * required + 4 * concurrency
    # Above the planned concurrency requests only queue: the rate stays the planned one.
    rate = min(concurrency, max(targets.concurrency, 1)) / (targets.predicted_e2e_ms / 1e3)
    limit = TIME_SAFETY * total / rate + STARTUP_ALLOWANCE_S
    return LevelBound(concurrency, "requests", total, required, round(limit, 1))


def search_bounds(targets: GatePlan, probes: int) -> list[LevelBound]:
    """The largest bound each capacity-search probe can have (the search steps up from the
    predicted capacity by `search_growth`, so probe k runs at most the k-th step's streams,
    never above the ceiling): what the gate Job's deadline allows for. Each probe runs at its
    own bound."""
    initial, ceiling = search_range(targets)
    growth, streams, bounds = search_growth(targets), initial, []
    for _ in range(probes):
        bounds.append(level_bound(targets, streams))
        streams = _step_up(streams, growth, ceiling)
    return bounds


def search_range(targets: GatePlan) -> tuple[int, int]:
    """Initial and maximal streams of the goodput search, around the predicted capacity."""
    initial = max(1, targets.capacity_concurrency)
    return initial, max(4 * initial, 2)


# What a gate's --target serves, as its report names that run: the plan's optimized vLLM, or
# stock vLLM where a plan says so (its "profile": the H200 calibration judges stock against its
# own plan). A --baseline-target's run is "baseline".
PROFILES = ("optimized", "stock")


def target_runs(report: dict[str, Any]) -> dict[str, Any]:
    """The --target's runs in a gate.json, by scenario (reports written before the profile was
    recorded named every target's run "optimized")."""
    return report["runs"][report.get("profile", "optimized")]


SEARCH_PROBES = 6
SEARCH_TOLERANCE = 0.1
TARGET_ATTAINMENT = 0.95
# GuideLLM 0.8's goodput profile doubles; a gate with a calibrated prediction steps by its
# capacity tolerance instead (`search_growth`).
GUIDELLM_GROWTH = 2.0


def search_growth(targets: GatePlan) -> float:
    """How far each capacity-search probe steps from the last while no level has missed: by
    the plan's capacity tolerance (a prediction the gate holds to ±tolerance needs its probes
    no further apart than that: a level one step over the prediction that passes already
    says the plan under-promised), GuideLLM's doubling where a plan states none. At prod's
    shape on an H200, doubling from 109 streams spends ≈ 8 minutes on a 218-stream probe that
    only says what the 126-stream one says. Never more than doubling (a tolerance of 100 % or
    more holds the plan to nothing finer)."""
    if targets.capacity_tolerance <= 0:
        return GUIDELLM_GROWTH
    return min(1 + targets.capacity_tolerance, GUIDELLM_GROWTH)


def _step_up(streams: int, growth: float, ceiling: int) -> int:
    return min(max(streams + 1, math.ceil(streams * growth)), ceiling)


def next_search_streams(
    best: int | None,
    failing: int | None,
    initial: int,
    ceiling: int,
    growth: float = GUIDELLM_GROWTH,
) -> int | str:
    """The capacity search's next concurrency, or why it stops (GuideLLM 0.8's goodput rule at
    its default `growth` of 2): step up from the predicted capacity by `growth` until a level
    misses the objectives, then bisect between the highest passing and the lowest failing
    level to SEARCH_TOLERANCE; when the first level already fails, step down by the same
    factor toward one stream."""
    if failing is None:
        current = best if best is not None else initial
        return "max_streams_reached" if current >= ceiling else _step_up(current, growth, ceiling)
    if best is None:
        if failing <= 1:
            return "objectives_unmet_at_minimum"
        return max(1, min(failing - 1, int(failing / growth)))
    if failing - best <= max(1, SEARCH_TOLERANCE * best):
        return "converged"
    return (best + failing) // 2


# --- quality: what a compressed checkpoint may lose (the quantize Job refuses more) ----------


@dataclass(frozen=True)
class QualityBudget:
    """The most a compressed checkpoint may lose before it is refused."""

    max_kl_nats: float
    min_top1_agreement: float
    max_perplexity_increase: float  # relative: 0.03 = perplexity may grow by 3 %

    def violations(self, metrics: dict[str, Any]) -> list[str]:
        found = []
        if metrics["kl_nats_per_token"] > self.max_kl_nats:
            found.append(
                f"kl_nats_per_token {metrics['kl_nats_per_token']:.5f} > budget {self.max_kl_nats}"
            )
        if metrics["top1_agreement"] < self.min_top1_agreement:
            found.append(
                f"top1_agreement {metrics['top1_agreement']:.4f} < budget {self.min_top1_agreement}"
            )
        if metrics["perplexity_increase"] > self.max_perplexity_increase:
            found.append(
                f"perplexity_increase {metrics['perplexity_increase']:.2%} > budget "
                f"{self.max_perplexity_increase:.2%}"
            )
        return found


# Per scheme, from the quality retention measured on the trained tiny model through vLLM
# (benchmarks/results/quality.md) with headroom for larger models and other corpora.
DEFAULT_QUALITY_BUDGETS = {
    "fp8": QualityBudget(max_kl_nats=0.02, min_top1_agreement=0.93, max_perplexity_increase=0.03),
    "int8-w8a8": QualityBudget(
        max_kl_nats=0.02, min_top1_agreement=0.93, max_perplexity_increase=0.03
    ),
    "w4a16": QualityBudget(max_kl_nats=0.05, min_top1_agreement=0.90, max_perplexity_increase=0.06),
}
# The gate's live check: the served model's log-probability of each held-out token may differ
# from the quantize Job's by this much on average (nats/token) — kernels and batch shapes move
# it a little; another checkpoint, tokenizer or a harmful KV-cache setting moves it a lot.
LIVE_TOLERANCE_NATS = GatePlan.quality_tolerance_nats
