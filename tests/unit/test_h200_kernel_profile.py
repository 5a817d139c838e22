"""The kernel profile's reading of a torch-profiler trace (Chrome trace format, as vLLM's
worker writes it): kinds by kernel name, busy time as the union of overlapping kernels, steps
from attention launches, and a trace without GPU kernels refused."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from benchmarks.gpu.h200.kernel_profile import (
    ProfileError,
    kind_of,
    load_trace,
    markdown,
    per_step,
    summarize,
)

FP8_GEMM = "void cutlass::device_kernel<vllm::cutlass_3x_gemm_sm90_fp8<cutlass::float_e4m3_t>>"
ATTENTION = "void flash::FlashAttnFwdSm90<flash::CollectiveMainloopFwdSm90<2, cute::float_e4m3_t>>"
KV_WRITE = "void vllm::reshape_and_cache_flash_kernel<__nv_bfloat16, unsigned char, 1>"
QUANT = "void vllm::dynamic_per_token_scaled_fp8_quant_kernel<c10::BFloat16>"
INDUCTOR = "triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_0"
LM_HEAD = "nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NTN"
COMBINE = "void cutlass::device_kernel<flash::FlashAttnFwdCombine<cute::tuple<cute::C<8>>>>"


def kernel(name: str, ts: float, dur: float, cat: str = "kernel") -> dict[str, object]:
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "pid": 0, "tid": 7}


def test_kinds_follow_the_first_matching_rule_in_order() -> None:
    assert kind_of(FP8_GEMM, "kernel") == "GEMM, FP8"
    assert kind_of(ATTENTION, "kernel") == "attention"  # its e4m3 does not make it a GEMM
    assert kind_of(KV_WRITE, "kernel") == "KV-cache write"  # "flash" in its name
    assert kind_of(QUANT, "kernel") == "activation quantization"  # "fp8" in its name
    assert kind_of(INDUCTOR, "kernel").startswith("fused pointwise")
    assert kind_of(LM_HEAD, "kernel") == "GEMM, 16-bit"
    assert kind_of("Memcpy HtoD (Pinned -> Device)", "gpu_memcpy") == "memcpy / memset"
    assert kind_of("some_new_kernel", "kernel") == "other"


def test_two_steps_of_two_layers_summed_by_kind_with_overlap_and_gaps(tmp_path: Path) -> None:
    events: list[dict[str, object]] = []
    t = 0.0
    for _step in range(2):
        for _layer in range(2):
            # FlashAttention 3's split-KV combine: an attention launch that is not a step's
            for name, dur in ((INDUCTOR, 5), (FP8_GEMM, 20), (KV_WRITE, 2), (ATTENTION, 12),
                              (COMBINE, 1)):  # fmt: skip
                events.append(kernel(name, t, dur))
                t += dur
        events.append(kernel(LM_HEAD, t, 10))
        t += 10 + 30  # 30 µs with nothing on the GPU: the host between steps
    events.append(kernel("Memset (Device)", 3.0, 4.0, cat="gpu_memset"))  # overlaps a kernel
    events.append({"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 999})
    trace = tmp_path / "worker.pt.trace.json.gz"
    with gzip.open(trace, "wt") as handle:
        json.dump({"traceEvents": events}, handle)

    summary = summarize(load_trace(trace), layers=2)
    assert summary["steps"] == 2.0
    assert summary["span_ms"] == pytest.approx(0.21)  # 2 steps of 90 µs, 30 µs between
    assert summary["gpu_busy_share"] == pytest.approx(180 / 210)  # the memset hides in a kernel
    kinds = summary["kinds"]
    assert next(iter(kinds)) == "GEMM, FP8"
    assert kinds["GEMM, FP8"]["ms_per_step"] == pytest.approx(0.040)
    assert kinds["GEMM, FP8"]["share_of_gpu_time"] == pytest.approx(80 / 184)
    assert kinds["attention"]["launches"] == 8  # 4 of them combines: still 2 steps
    assert kinds["memcpy / memset"]["launches"] == 1
    assert summary["top_kernels"][0]["name"] == FP8_GEMM
    assert "| GEMM, FP8 | 43.5% | 0.04 | 4 |" in markdown(summary, "t")
    # A summary written before (kernels.json) re-derives the same steps and per-step times.
    saved = json.loads(json.dumps(summary | {"steps": 99.0}))
    for row in saved["kinds"].values():
        del row["ms_per_step"]
    again = per_step(saved, layers=2)
    assert again["steps"] == 2.0
    for kind, row in summary["kinds"].items():
        assert again["kinds"][kind]["ms_per_step"] == pytest.approx(row["ms_per_step"])


def test_a_trace_without_gpu_kernels_is_refused(tmp_path: Path) -> None:
    trace = tmp_path / "cpu-only.pt.trace.json"
    trace.write_text(json.dumps([{"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0}]))
    with pytest.raises(ProfileError, match="no GPU kernels"):
        summarize(load_trace(trace), layers=32)


def test_a_trace_without_an_attention_kernel_counts_no_steps(tmp_path: Path) -> None:
    trace = tmp_path / "gemms.pt.trace.json"
    trace.write_text(json.dumps([kernel(FP8_GEMM, 0, 20), kernel(INDUCTOR, 20, 5)]))
    summary = summarize(load_trace(trace), layers=32)
    assert summary["steps"] is None and summary["step_ms"] is None
    assert summary["kinds"]["GEMM, FP8"]["ms_per_step"] is None
    assert summary["kinds"]["GEMM, FP8"]["share_of_gpu_time"] == pytest.approx(0.8)
    text = markdown(summary, "t")
    assert "steps unknown (no attention kernel in the trace to count them by)" in text
    assert "| GEMM, FP8 | 80.0% | — | 1 |" in text
    json.loads(json.dumps(summary), parse_constant=pytest.fail)  # no NaN in kernels.json
