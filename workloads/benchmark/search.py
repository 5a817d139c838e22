"""The capacity search: the highest concurrency whose requests meet both latency targets.

GuideLLM 0.8's goodput profile runs every probe in one process, so its per-benchmark request
counts are fixed before the search knows which concurrency each probe gets: every probe must be
sized for the largest it could be (at prod's shape on an H200, 5,232 requests where 1,300-2,600
would do — a 73-minute search). The gate drives the same rule itself (double from the plan's
predicted capacity until a level misses, then bisect; `contract.next_search_streams`), one
count-bounded GuideLLM level per probe, each sized for its own streams and judged on the steady
window the gate places (window.py) rather than GuideLLM's. A probe the gate would refuse to
judge (not the plan's traffic, the load not applied, no steady window) ends the search: what
comes after it would rest on a measurement that does not hold.
"""

from __future__ import annotations

from collections.abc import Callable

from workloads.benchmark.gate import load_problems, shape_problems
from workloads.benchmark.runner import Run, Scenario, joined
from workloads.contract import (
    SEARCH_PROBES,
    TARGET_ATTAINMENT,
    GatePlan,
    next_search_streams,
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
    best: int | None = None
    failing: int | None = None
    streams: int | str = initial
    while isinstance(streams, int) and len(runs) < SEARCH_PROBES:
        run = probe(streams)
        runs.append(run)
        if shape_problems(run, scenario, targets, label) or load_problems(
            run, targets, label, scenario.name
        ):
            break
        attainment = run.levels[0].slo_attainment if run.levels else None
        if attainment is None:
            break
        if attainment >= TARGET_ATTAINMENT:
            best = max(best or 0, streams)
        else:
            failing = streams if failing is None else min(failing, streams)
        streams = next_search_streams(best, failing, initial, ceiling)
    return joined(f"guidellm-{label}-capacity", runs)
