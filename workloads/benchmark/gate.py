"""The deployment gate: measured metrics against the stack's targets and the sizing prediction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from infra.plan import GatePlan
from workloads.benchmark.metrics import LevelMetrics

PASS, FAIL, COULD_NOT_MEASURE = "pass", "fail", "could-not-measure"
EXIT_CODES = {PASS: 0, FAIL: 1, COULD_NOT_MEASURE: 2}


def targets_from_plan(plan: dict[str, Any]) -> GatePlan:
    """The gate section of a plan written by `leanrag plan --output plan.json`."""
    gate = plan["gate"]
    fields = {f.name for f in dataclasses.fields(GatePlan)}
    missing = fields - set(gate)
    if missing:
        raise KeyError(f"plan gate section lacks {', '.join(sorted(missing))}")
    return GatePlan(**{name: gate[name] for name in fields})


@dataclass(frozen=True)
class Check:
    name: str
    measured: float
    target: str
    passed: bool


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str
    checks: tuple[Check, ...]
    level: LevelMetrics | None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def gate_level(levels: list[LevelMetrics], concurrency: int) -> LevelMetrics | None:
    """The level measured at the planned concurrency (or the nearest one measured)."""
    if not levels:
        return None
    return min(levels, key=lambda level: abs((level.concurrency or 0) - concurrency))


def evaluate(levels: list[LevelMetrics], targets: GatePlan) -> Verdict:
    level = gate_level(levels, targets.concurrency)
    if level is None or level.successful == 0:
        return Verdict(COULD_NOT_MEASURE, "no successful requests were measured", (), level)
    capacity_ratio = level.requests_per_s / targets.predicted_requests_per_s
    tolerance = targets.capacity_tolerance
    checks = (
        Check(
            "throughput_rps",
            level.requests_per_s,
            f">= {targets.min_throughput_rps:g}",
            level.requests_per_s >= targets.min_throughput_rps,
        ),
        Check(
            "ttft_p95_ms",
            level.ttft_ms.p95,
            f"<= {targets.ttft_p95_ms:g}",
            level.ttft_ms.p95 <= targets.ttft_p95_ms,
        ),
        Check(
            "itl_p95_ms",
            level.itl_ms.p95,
            f"<= {targets.itl_p95_ms:g}",
            level.itl_ms.p95 <= targets.itl_p95_ms,
        ),
        Check(
            "error_rate",
            level.error_rate,
            f"<= {targets.max_error_rate:g}",
            level.error_rate <= targets.max_error_rate,
        ),
        Check(
            "capacity_vs_prediction",
            capacity_ratio,
            f"within ±{tolerance:.0%} of {targets.predicted_requests_per_s:.2f} req/s",
            abs(capacity_ratio - 1) <= tolerance,
        ),
    )
    failed = [check.name for check in checks if not check.passed]
    if failed:
        return Verdict(FAIL, "failed: " + ", ".join(failed), checks, level)
    return Verdict(PASS, "every check passed", checks, level)
