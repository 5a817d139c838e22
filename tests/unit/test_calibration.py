"""Speed probe → accelerator: the fit recovers a machine's figures from what GuideLLM would
measure on it, and the capacity it then predicts is that machine's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from infra.calibration import CalibrationError, SpeedProbe, calibrate
from infra.catalog import ACCELERATORS, MODEL_PRESETS
from infra.load_model import capacity_at_slo, simulate
from infra.sizing import ServingKnobs, Workload

CPU = ACCELERATORS["cpu"]
TINY = MODEL_PRESETS["tiny-random-llama"].architecture
KNOBS = ServingKnobs("fp8", "auto", 0.9, 1, 512, 2048, 1024, True, True)
RAG = Workload(4, 64, 384, 32, 0.0)
# "Another machine of the same kind": slower host, faster compute than the catalog says.
MACHINE = replace(CPU, step_overhead_ms=3.1, sequence_overhead_ms=0.42, bf16_tflops=0.05)


def probe_of(machine, loaded: int = 16) -> SpeedProbe:
    lone = simulate(TINY, machine, KNOBS, RAG, 1)
    busy = simulate(TINY, machine, KNOBS, RAG, loaded)
    return SpeedProbe(RAG.prompt_tokens, lone.ttft_p50_ms, lone.itl_p50_ms, loaded,
                      busy.itl_p50_ms)  # fmt: skip


def test_the_fit_recovers_the_machines_figures() -> None:
    fitted = calibrate(CPU, TINY, KNOBS, probe_of(MACHINE), RAG)
    assert fitted.step_overhead_ms == pytest.approx(3.1, rel=0.1)
    assert fitted.sequence_overhead_ms == pytest.approx(0.42, rel=0.15)
    assert fitted.bf16_tflops == pytest.approx(0.05, rel=0.15)
    assert "speed probe" in fitted.note


def test_the_calibrated_plan_predicts_the_machines_capacity() -> None:
    fitted = calibrate(CPU, TINY, KNOBS, probe_of(MACHINE), RAG)
    truth = capacity_at_slo(TINY, MACHINE, KNOBS, RAG, 1000, 30, ceiling=512)
    predicted = capacity_at_slo(TINY, fitted, KNOBS, RAG, 1000, 30, ceiling=512)
    catalog = capacity_at_slo(TINY, CPU, KNOBS, RAG, 1000, 30, ceiling=512)
    assert predicted.point.requests_per_s == pytest.approx(truth.point.requests_per_s, rel=0.1)
    # Without the probe the catalog's figures would be off by more than the gate's tolerance.
    assert abs(catalog.point.requests_per_s / truth.point.requests_per_s - 1) > 0.25


def test_a_probe_that_measured_nothing_is_refused() -> None:
    with pytest.raises(CalibrationError, match="nothing usable"):
        calibrate(CPU, TINY, KNOBS, SpeedProbe(448, 0.0, 2.0, 16, 10.0), RAG)
