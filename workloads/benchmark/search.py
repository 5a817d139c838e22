"""The capacity search: the highest concurrency whose requests meet both latency targets.

GuideLLM 0.8's goodput profile runs every probe in one process, so its per-benchmark request
counts are fixed before the search knows which concurrency each probe gets: every probe must be
sized for the largest it could be (at prod's shape on an H200, 5,232 requests where 1,300-2,600
would do — a 73-minute search). The gate drives the same rule itself (step up from the plan's
predicted capacity until a level misses, then bisect; `contract.next_search_streams` — by the
plan's capacity tolerance rather than GuideLLM's doubling, `contract.search_growth`), one
count-bounded GuideLLM level per probe, each sized for its own streams and judged on the steady
window the gate places (window.py) rather than GuideLLM's. A probe the gate would refuse to
judge (not the plan's traffic, the load not applied, no steady window) ends the search: what
comes after it would rest on a measurement that does not hold.
"""

from __future__ import annotations

from collections.abc import Callable

from workloads.benchmark.gate import capacity_search, load_problems, shape_problems
from workloads.benchmark.runner import Run, Scenario, joined
from workloads.contract import (
    SEARCH_PROBES,
    GatePlan,
    next_search_streams,
    search_growth,
    search_range,
)


def search_capacity(
    probe: Callable[[int], Run],
    targets: GatePlan,
    scenario: Scenario,
    label: str = "optimized",
) -> Run:
    """Run probes (`probe(streams)` measures one count-bounded level) until the search stops;
    the probes in the order they ran, as one Run that `gate.capacity_search` scores."""
    initial, ceiling = search_range(targets)
    runs: list[Run] = []
    streams: int | str = initial
    while isinstance(streams, int) and len(runs) < SEARCH_PROBES:
        runs.append(probe(streams))
        if shape_problems(runs[-1], scenario, targets, label) or load_problems(
            runs[-1], targets, label, scenario.name
        ):
            break
        # Scored as the verdict scores it: one rule for passing, in one place.
        scored = capacity_search(joined(label, runs), targets)
        if len(scored.probes) < len(runs):  # a probe without a verdict on its requests
            break
        best = scored.best.concurrency if scored.best else None
        streams = next_search_streams(
            best, scored.lowest_failing_streams, initial, ceiling, search_growth(targets)
        )
    return joined(f"guidellm-{label}-capacity", runs)
