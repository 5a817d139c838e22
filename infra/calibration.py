"""Speed probe → accelerator figures: the plan predicts from what this machine measured.

A catalog can hold a GPU's datasheet, not a CPU host's speed: two machines "of the same kind"
differ, and what else runs there (the load generator itself) takes a share. So the local stack
measures before it predicts: a short, count-bounded GuideLLM run of the plan's own traffic at
one stream and at a loaded level, and fits the three figures the scheduler simulation uses:

- the fixed host cost of an engine step (the lone request's inter-token latency, less its
  roofline time),
- the host cost per running sequence (how much the loaded level's inter-token latency grew
  beyond its roofline growth),
- the compute rate (the lone request's time to first token over its prompt's roofline work).

The capacity at the SLO is then predicted by `load_model` at concurrencies the probe did not
run, and the gate measures it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from infra.catalog import Accelerator, ModelArchitecture
from infra.load_model import LoadPoint, simulate
from infra.sizing import ServingKnobs, Workload

# Floors that keep a noisy probe from producing a free host or infinite compute.
MIN_STEP_OVERHEAD_MS = 0.05
MIN_SEQUENCE_OVERHEAD_MS = 0.0
FIT_ROUNDS = 4
BISECTION_STEPS = 20
PROBE_SIMULATED_REQUESTS = 60


class CalibrationError(ValueError):
    """The probe cannot calibrate anything (nothing measured, or impossible figures)."""


@dataclass(frozen=True)
class SpeedProbe:
    """Medians measured by the probe at one stream and at `loaded_concurrency` streams."""

    prompt_tokens: int
    lone_ttft_ms: float
    lone_itl_ms: float
    loaded_concurrency: int
    loaded_itl_ms: float


def calibrate(
    accelerator: Accelerator,
    architecture: ModelArchitecture,
    knobs: ServingKnobs,
    probe: SpeedProbe,
    workload: Workload,
) -> Accelerator:
    """The accelerator with its host overheads and compute rate fitted to the probe, through
    the same scheduler simulation that predicts the capacity (its medians against the probe's).

    One stream decodes alone, so its inter-token latency fixes the per-step host cost once the
    per-sequence cost is known; its TTFT then fixes the compute rate; the loaded level's
    inter-token latency (decode steps and the prefill chunks between them) fixes the
    per-sequence cost. A few rounds settle all three.
    """
    if min(probe.lone_ttft_ms, probe.lone_itl_ms, probe.loaded_itl_ms) <= 0:
        raise CalibrationError(f"the speed probe measured nothing usable: {probe}")
    shape = replace(workload, question_tokens=0, context_tokens=probe.prompt_tokens)
    fixed, per_sequence, scale = accelerator.step_overhead_ms, accelerator.sequence_overhead_ms, 1.0

    def device(fixed_ms: float, sequence_ms: float, compute_scale: float) -> Accelerator:
        return replace(
            accelerator,
            step_overhead_ms=fixed_ms,
            sequence_overhead_ms=sequence_ms,
            bf16_tflops=accelerator.bf16_tflops * compute_scale,
            fp8_tflops=_scaled(accelerator.fp8_tflops, compute_scale),
            int8_tops=_scaled(accelerator.int8_tops, compute_scale),
        )

    def lone(d: Accelerator) -> LoadPoint:
        return simulate(architecture, d, knobs, shape, 1, PROBE_SIMULATED_REQUESTS)

    for _ in range(FIT_ROUNDS):
        # 1. the lone decode step: roofline + fixed + one sequence.
        roofline = lone(device(0.0, 0.0, scale)).itl_p50_ms
        fixed = max(probe.lone_itl_ms - roofline - per_sequence, MIN_STEP_OVERHEAD_MS)
        # 2. the lone prompt: its host steps are known now; compute takes the rest.
        host_only = lone(device(fixed, per_sequence, 1e9)).ttft_p50_ms
        modelled = lone(device(0.0, 0.0, scale)).ttft_p50_ms
        compute = max(probe.lone_ttft_ms - host_only, 0.01 * modelled)
        scale *= modelled / compute
        # 3. the loaded level: the per-sequence cost that gives its median inter-token latency.
        low, high = 0.0, probe.loaded_itl_ms
        for _ in range(BISECTION_STEPS):
            middle = (low + high) / 2
            loaded = simulate(
                architecture, device(fixed, middle, scale), knobs, shape,
                probe.loaded_concurrency, PROBE_SIMULATED_REQUESTS,
            )  # fmt: skip
            low, high = (middle, high) if loaded.itl_p50_ms < probe.loaded_itl_ms else (low, middle)
        per_sequence = max((low + high) / 2, MIN_SEQUENCE_OVERHEAD_MS)
    fitted = device(round(fixed, 3), round(per_sequence, 4), scale)
    return replace(
        fitted,
        note=(
            f"measured by the speed probe: step {fixed:.2f} ms + {per_sequence:.3f} ms per "
            f"sequence, compute ×{scale:.3g} the catalog's"
        ),
    )


def _scaled(rate: float | None, scale: float) -> float | None:
    return rate * scale if rate else rate
