"""The deployment gate: measured metrics against the stack's targets and the sizing prediction.

It judges only traffic that is the plan's: every benchmark's measured prompt and output token
means must be within `shape_tolerance` of the plan's, and every judged level must have measured
its steady-state request count. Otherwise the verdict is *could not measure* (exit 2).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from workloads.benchmark.metrics import LevelMetrics
from workloads.benchmark.runner import Run, Scenario
from workloads.contract import (
    APPLIED_LOAD_TOLERANCE,
    CACHE_HIT_SLACK,
    GUIDELLM_GROWTH,
    SEARCH_PROBES,
    STEADY_STATE_TOLERANCE,
    TARGET_ATTAINMENT,
    GatePlan,
    LevelBound,
    level_bound,
    next_search_streams,
    search_growth,
    search_range,
)

PASS, FAIL, COULD_NOT_MEASURE = "pass", "fail", "could-not-measure"
EXIT_CODES = {PASS: 0, FAIL: 1, COULD_NOT_MEASURE: 2}
CONFIDENCE = 0.95


def targets_from_plan(plan: dict[str, Any]) -> GatePlan:
    """The gate section of a plan written by `leanrag plan --output plan.json`."""
    gate = plan["gate"]
    fields = {f.name for f in dataclasses.fields(GatePlan)}
    required = {f.name for f in dataclasses.fields(GatePlan) if f.default is dataclasses.MISSING}
    missing = required - set(gate)
    if missing:
        raise KeyError(f"plan gate section lacks {', '.join(sorted(missing))}")
    return GatePlan(**{name: gate[name] for name in fields & set(gate)})


@dataclass(frozen=True)
class Check:
    name: str
    measured: float
    target: str
    passed: bool


@dataclass(frozen=True)
class Probe:
    """One goodput-search probe as GuideLLM scored it (attainment with a Wilson interval)."""

    streams: int
    attainment: float
    attainment_lower: float
    attainment_upper: float
    determined_requests: int
    requests_per_s: float
    goodput_requests_per_s: float | None
    passed: bool
    resolved: bool


@dataclass(frozen=True)
class CapacitySearch:
    """The goodput search over concurrency (search.py): where the latency objectives stop
    holding, each probe a count-bounded level scored as GuideLLM's goodput profile scores it."""

    probes: tuple[Probe, ...]
    best: LevelMetrics | None  # the highest concurrency whose attainment met the target
    lowest_failing_streams: int | None
    stop_reason: str
    growth: float = GUIDELLM_GROWTH  # each step up while no level has missed (search_growth)
    # The probe its rule would have run next where the search ended before the rule stopped
    # (a refused probe ended it, or its reports end there); None when the rule stopped it.
    unrun_streams: int | None = None

    @property
    def capacity_requests_per_s(self) -> float:
        return self.best.requests_per_s if self.best else 0.0

    @property
    def bracket_requests_per_s(self) -> tuple[float, float | None]:
        """Where the capacity lies: at least the highest passing probe's rate, at most the
        lowest failing one's (a closed loop's rate does not fall as streams are added);
        None above with no failing probe (unbounded)."""
        low = self.capacity_requests_per_s
        failing = [p for p in self.probes if p.streams == self.lowest_failing_streams]
        return low, max(failing[0].requests_per_s, low) if failing else None

    @property
    def stepping(self) -> str:
        if self.growth == GUIDELLM_GROWTH:
            return "doubling"
        return f"stepping up by {self.growth - 1:.0%}"

    def describe(self) -> str:
        path = " → ".join(
            f"{p.streams} ({p.attainment:.0%}{'' if p.resolved else ', unresolved'})"
            for p in self.probes
        )
        best = (
            f"{self.best.concurrency} streams at {self.best.requests_per_s:.2f} req/s"
            if self.best
            else "none"
        )
        return (
            f"goodput search ({self.stepping} from the predicted capacity, then bisecting; each "
            f"probe count-bounded at its own streams), probes (streams, share of requests within "
            f"both latency targets): {path}; highest passing ≥ {TARGET_ATTAINMENT:.0%}: {best}; "
            f"lowest failing: {self.lowest_failing_streams or '—'}; stopped: {self.stop_reason}"
        )


def _wilson(successes: int, trials: int) -> tuple[float, float]:
    from guidellm.utils.statistics import wilson_interval

    return wilson_interval(successes=successes, trials=trials, confidence=CONFIDENCE)


def capacity_search(run: Run, targets: GatePlan) -> CapacitySearch:
    """Score each probe as GuideLLM's goodput profile does and say why the search stopped
    (GuideLLM keeps its final decision out of the report)."""
    probes: list[Probe] = []
    best: LevelMetrics | None = None
    failing: int | None = None
    for level in run.levels:
        if level.slo_attainment is None or level.concurrency is None:
            continue
        lower, upper = _wilson(
            round(level.slo_attainment * level.slo_determined_requests),
            level.slo_determined_requests,
        )
        passed = level.slo_attainment >= TARGET_ATTAINMENT
        probes.append(
            Probe(
                level.concurrency, level.slo_attainment, lower, upper,
                level.slo_determined_requests, level.requests_per_s,
                level.goodput_requests_per_s, passed,
                lower >= TARGET_ATTAINMENT or upper < TARGET_ATTAINMENT,
            )
        )  # fmt: skip
        if passed and (best is None or level.concurrency > (best.concurrency or 0)):
            best = level
        if not passed and (failing is None or level.concurrency < failing):
            failing = level.concurrency
    growth = search_growth(targets)
    if not probes:
        return CapacitySearch((), None, None, "no probe measured", growth)
    step = next_search_streams(best.concurrency if best else None, failing,
                               *search_range(targets), growth)  # fmt: skip
    unrun = step if isinstance(step, int) and len(probes) < SEARCH_PROBES else None
    return CapacitySearch(tuple(probes), best, failing, _stop_reason(step, unrun), growth, unrun)


def undecided_capacity(capacity: CapacitySearch, targets: GatePlan) -> str | None:
    """Why a search that ended before its rule stopped cannot judge the capacity check, or None.
    Such a search only brackets the capacity (`bracket_requests_per_s`): the check is judged
    only where the whole bracket lies within the plan's tolerance of its prediction, or
    wholly outside it."""
    if capacity.unrun_streams is None:
        return None
    low, bounded = capacity.bracket_requests_per_s
    high = math.inf if bounded is None else bounded
    least, most = targets.capacity_band()
    if (least <= low and high <= most) or low > most or high < least:
        return None
    return (
        f"the capacity search ended before its rule stopped (its next probe, "
        f"{capacity.unrun_streams} streams, was not run): the capacity lies between "
        f"{low:.2f} and {high:.2f} req/s, which does not decide whether it is within "
        f"±{targets.capacity_tolerance:.0%} of the predicted "
        f"{targets.capacity_requests_per_s:.2f} req/s ({least:.2f}-{most:.2f})"
    )


def _stop_reason(step: int | str, unrun: int | None) -> str:
    """Why the search stopped: its rule's own reason, or — where it would have gone on (a
    refused probe ended it, or its reports end there) — the probe it did not run, so a bracket
    no probe narrowed is not read as a finished search; else all its probes were spent."""
    if isinstance(step, str):
        return step
    if unrun is not None:
        return f"ended before its rule stopped (next probe, {unrun} streams, not run)"
    return "max_probes_exhausted"


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str
    checks: tuple[Check, ...]
    level: LevelMetrics | None
    capacity: CapacitySearch | None = None
    bound: LevelBound | None = None
    refusals: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]


def gate_level(levels: tuple[LevelMetrics, ...], concurrency: int) -> LevelMetrics | None:
    """The level measured at the planned concurrency (or the nearest one measured)."""
    if not levels:
        return None
    return min(levels, key=lambda level: abs((level.concurrency or 0) - concurrency))


def shape_problems(
    run: Run, scenario: Scenario, targets: GatePlan, label: str = "optimized"
) -> list[str]:
    """Every benchmark whose measured token means — or the 1st / 99th percentile of its
    requests' token counts — are off the plan's by more than the tolerance: the gate would
    otherwise judge other traffic than the plan describes (a mean on the plan's shape can be
    a mix of empty prompts and long ones)."""
    problems = []
    tolerance = targets.shape_tolerance
    for level in run.levels:
        if not level.successful:
            continue
        where = f"{label} {scenario.name}, concurrency {level.concurrency}"
        for what, measured, spread, planned in (
            ("prompt", level.prompt_tokens_mean, level.prompt_tokens_range,
             scenario.planned_prompt_tokens),
            ("output", level.output_tokens_mean, level.output_tokens_range,
             scenario.output_tokens),
        ):  # fmt: skip
            if abs(measured / planned - 1) > tolerance:
                problems.append(
                    f"traffic did not match the plan: measured {measured:.0f} {what} tokens, "
                    f"planned {planned} ({where}; more than ±{tolerance:.0%} off)"
                )
            elif spread and any(abs(end / planned - 1) > tolerance for end in spread):
                problems.append(
                    f"traffic did not match the plan: {what} tokens per request ranged "
                    f"{spread[0]:.0f}-{spread[1]:.0f} (1st-99th percentile; mean "
                    f"{measured:.0f}), planned {planned} each ({where}; more than "
                    f"±{tolerance:.0%} off)"
                )
    if (problem := prefix_cache_problem(run, scenario, label)) is not None:
        problems.append(problem)
    return problems


# A shared-document run's cache must serve at least this share of the document's, or no cache
# was measured (CACHE_HIT_SLACK bounds it from above).
CACHED_SHARE_FLOOR = 0.8


def prefix_cache_problem(run: Run, scenario: Scenario, label: str = "optimized") -> str | None:
    """The run's prefix-cache hits (vLLM's /metrics, where the gate read them) against what its
    traffic shares: an uncached scenario the cache served measures a cached rate, not the
    capacity the plan states; a shared-document scenario the cache did not serve measures no
    caching."""
    share = run.prefix_cache_hit_share
    if share is None:
        return None
    meant = scenario.prefix_tokens / scenario.planned_prompt_tokens
    where = f"{label} {scenario.name}"
    if share > meant + CACHE_HIT_SLACK:
        return (
            f"traffic did not match the plan: vLLM's prefix cache served {share:.1%} of the "
            f"prompt tokens, where the prompts share {meant:.1%} ({where}) — the measured rate "
            "is a cached one; check that the load generator's prompts are unique"
        )
    if share < CACHED_SHARE_FLOOR * meant:
        return (
            f"traffic did not match the plan: vLLM's prefix cache served {share:.1%} of the "
            f"prompt tokens, where the shared document is {meant:.1%} of each ({where}) — "
            "nothing cached was measured; check --enable-prefix-caching and that --metrics-url "
            "(or --metrics-service) reaches every replica behind the target"
        )
    return None


def load_problems(
    run: Run, targets: GatePlan, label: str = "optimized", scenario: str = ""
) -> list[str]:
    """Every concurrency level that did not apply its load: fewer requests in flight on
    average than streams asked for (by more than APPLIED_LOAD_TOLERANCE) means the load
    generator held requests back. Latencies were then measured under less load than planned and
    throughput understated, so nothing measured there is judged. Nor is a level without a
    steady window (too few requests finished to leave out its warm-up and cool-down), or one
    whose window Little's law shows held a transient."""
    problems = []
    for level in run.levels:
        if level.window_refusal:
            problems.append(f"{level.window_refusal} ({label} {scenario})")
            continue
        if not level.successful or not level.concurrency or level.in_flight_mean is None:
            continue
        problem = little_problem(level)
        if problem:
            problems.append(f"{problem} ({label} {scenario}, concurrency {level.concurrency})")
        if level.in_flight_mean < level.concurrency * (1 - APPLIED_LOAD_TOLERANCE):
            problems.append(
                f"the planned load was not applied: {level.in_flight_mean:.1f} requests in "
                f"flight on average at concurrency {level.concurrency} ({label} {scenario}; "
                f"the load generator waited {level.dispatch_delay_ms:.0f} ms per request to "
                "send it): give the gate more CPU or run it beside, not on, the server"
            )
    return problems


def little_problem(level: LevelMetrics) -> str | None:
    """Throughput that Little's law does not reproduce from the same window's requests in flight
    and mean latency: the window measured a transient, not a steady state. Levels with errors
    are left to the error-rate check (failed requests are in flight, not in the mean latency)."""
    if not level.e2e_mean_ms or level.in_flight_mean is None or not level.requests_per_s:
        return None
    if level.errored:
        return None
    expected = level.in_flight_mean / (level.e2e_mean_ms / 1e3)
    # Requests straddling the window's edges (up to one wave of them) make a count over the
    # window differ from Little's law by up to in-flight / measured: that much is no transient.
    tolerance = max(STEADY_STATE_TOLERANCE, level.in_flight_mean / max(level.measured_requests, 1))
    if abs(level.requests_per_s / expected - 1) <= tolerance:
        return None
    return (
        f"not a steady state: {level.requests_per_s:.2f} req/s measured, but "
        f"{level.in_flight_mean:.1f} in flight over a {level.e2e_mean_ms / 1e3:.2f} s mean "
        f"latency is {expected:.2f} req/s (Little's law, ±{tolerance:.0%} for "
        f"{level.measured_requests} requests measured): the window held a burst, not the "
        "server's rate — run the level count-bounded (no --seconds) or longer"
    )


def run_problems(run: Run, scenario: Scenario, targets: GatePlan, label: str) -> list[str]:
    """Everything that keeps a run's levels from being what they meant — the plan's traffic,
    the load applied, each level's steady state — for a run the verdict does not judge (the
    shared-document scenario): its figures are reported as not measured, not as measured."""
    problems = shape_problems(run, scenario, targets, label)
    problems += load_problems(run, targets, label, scenario.name)
    for level, bound in zip(run.levels, run.bounds, strict=False):
        if level.successful and (problem := steady_state_problem(level, bound)):
            problems.append(f"{problem} ({label} {scenario.name})")
    return problems


def steady_state_problem(level: LevelMetrics, bound: LevelBound) -> str | None:
    """A level that did not run as it was bounded: a count-bounded one must have finished every
    request it was to send (a time guard that stopped it first cut a slowed or stalled server
    short), and every level must have measured its steady-state count."""
    planned, processed = level.planned_requests, level.processed_requests
    if planned and processed is not None and (processed < planned or level.cancelled_requests):
        return (
            f"concurrency {level.concurrency} finished "
            f"{processed - level.cancelled_requests} of the {planned} requests it was to send "
            f"({level.cancelled_requests} cancelled): a limit stopped it before its count "
            f"({bound.describe()}) — the server slowed or stalled mid-level, so what was "
            "measured is not the steady state the level meant"
        )
    if level.measured_requests >= bound.required_requests:
        return None
    return (
        f"concurrency {level.concurrency} measured {level.measured_requests} requests after "
        f"warm-up, fewer than the {bound.required_requests} a steady state needs "
        f"({bound.describe()}): a window this short measures the ramp, not the server"
    )


def evaluate(
    levels_run: Run | None,
    targets: GatePlan,
    scenario: Scenario,
    search_run: Run | None = None,
    label: str = "optimized",
) -> Verdict:
    """The verdict on one endpoint: refusals first, then the checks."""
    refusals: list[str] = []
    for run in (levels_run, search_run):
        if run is not None:
            refusals += shape_problems(run, scenario, targets, label)
            refusals += load_problems(run, targets, label, scenario.name)
    level = gate_level(levels_run.levels, targets.concurrency) if levels_run else None
    bound = None
    if level is None or level.successful == 0:
        refusals.append("no successful requests were measured at the planned concurrency")
    else:
        bound = _bound_of(levels_run, level, targets)
        problem = steady_state_problem(level, bound)
        if problem:
            refusals.append(problem)
    capacity = capacity_search(search_run, targets) if search_run else None
    if search_run is not None and capacity is not None:
        if not capacity.probes:
            refusals.append("the goodput search measured no probe")
        elif capacity.best is not None:
            problem = steady_state_problem(
                capacity.best, level_bound(targets, capacity.best.concurrency or 1)
            )
            if problem:
                refusals.append("capacity search: " + problem)
        if problem := undecided_capacity(capacity, targets):
            refusals.append(problem)
    if refusals:
        return Verdict(COULD_NOT_MEASURE, "; ".join(refusals), (), level, capacity, bound,
                       tuple(refusals))  # fmt: skip
    assert level is not None
    checks = [
        Check("throughput_rps", level.requests_per_s, f">= {targets.min_throughput_rps:g}",
              level.requests_per_s >= targets.min_throughput_rps),
        Check("ttft_p95_ms", level.ttft_ms.p95, f"<= {targets.ttft_p95_ms:g}",
              level.ttft_ms.p95 <= targets.ttft_p95_ms),
        Check("itl_p95_ms", level.itl_ms.p95, f"<= {targets.itl_p95_ms:g}",
              level.itl_ms.p95 <= targets.itl_p95_ms),
        Check("error_rate", level.error_rate, f"<= {targets.max_error_rate:g}",
              level.error_rate <= targets.max_error_rate),
    ]  # fmt: skip
    if capacity is not None:
        measured = capacity.capacity_requests_per_s
        least, most = targets.capacity_band()
        checks.append(
            Check(
                "capacity_at_slo_rps",
                measured,
                f"within ±{targets.capacity_tolerance:.0%} of the predicted "
                f"{targets.capacity_requests_per_s:.2f} req/s",
                least <= measured <= most,
            )
        )
    failed = [check.name for check in checks if not check.passed]
    if failed:
        return Verdict(FAIL, "failed: " + ", ".join(failed), tuple(checks), level, capacity, bound)
    return Verdict(PASS, "every check passed", tuple(checks), level, capacity, bound)


def _bound_of(run: Run, level: LevelMetrics, targets: GatePlan) -> LevelBound:
    for bound, measured in zip(run.bounds, run.levels, strict=False):
        if measured is level:
            return bound
    return level_bound(targets, level.concurrency or 1)
