"""How the scheduler simulation costs a step, held against every steady-state gate level on the
H200: per kernel kind (linear layers, then attention, each at its own roofline — what
`infra.sizing.StepCost` does) against one max over the whole step (memory of weights and KV
cache vs all FLOPs — what it did until 2026-12-03), over a grid of the 8-bit compute scale.

    .venv/bin/python -m benchmarks.gpu.h200.step_cost

writes `benchmarks/results/gpu_h200_step_cost.{json,md}`. It reads only committed gate reports
(`summary.levels`, the same steady-state rule as the README's table): nothing here measures.
The 16-bit scale stays the catalog's (stock bf16 decides it, and both ways cost stock's steps
alike: its 8,192-token prefill chunks' attention outweighs its KV reads).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.gpu.h200.summary import (
    GATE,
    RESULTS,
    SHAPES,
    Level,
    knobs_of,
    levels,
    out_path,
    write_results,
)
from infra.catalog import ACCELERATORS, MODEL_PRESETS, Accelerator
from infra.load_model import simulate
from infra.sizing import (
    StepCost,
    Workload,
    _compute_rate_flops,
    attention_flops_per_token,
    kv_cache_bytes_per_token_per_gpu,
    matmul_flops_per_token,
)

GEMM_RATES = RESULTS / "gpu_h200_gemm_rates.json"
ATTENTION_RATES = RESULTS / "gpu_h200_attention_rates.json"
SERVED_PAGE = 16  # vLLM's default KV page, the one every gate level ran but two
SCALES_8BIT = (0.76, 0.78, 0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92)


class WholeStepCost(StepCost):
    """The step as one roofline: all bytes moved (weights, every context's KV cache) against
    all FLOPs (matmuls, attention) — decode attention hides under the prefill's matmuls."""

    def seconds(
        self, decode_tokens: int, decode_context_tokens: int, prefill_chunks: list[tuple[int, int]]
    ) -> float:
        t = self.terms(decode_tokens, decode_context_tokens, prefill_chunks)
        return max(t.weight_reads + t.kv_reads, t.matmuls + t.attention_flops) + t.host


WAYS: dict[str, type[StepCost]] = {"per kernel": StepCost, "whole step": WholeStepCost}

# The traced way (`traced_fit`): the prefill chunk's attention costed at 1/slowdown of the
# model's 16-bit attention rate, on top of the decoding streams' KV reads.
SLOWDOWNS = (1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)


def traced_way(slowdown: float) -> type[StepCost]:
    """A step as vLLM's trace shows it (`profiles/opt-c109`): the linear layers as per kernel
    kind, then one attention kernel whose time is the decoding streams' part (their KV reads,
    or their attention FLOPs) *plus* the prefill chunks' attention at `slowdown` × the model's
    16-bit attention time — not the larger of the two."""

    class Traced(StepCost):
        def seconds(
            self,
            decode_tokens: int,
            decode_context_tokens: int,
            prefill_chunks: list[tuple[int, int]],
        ) -> float:
            t = self.terms(decode_tokens, decode_context_tokens, prefill_chunks)
            decode_flops = self.attention_s_per_context_token * decode_context_tokens
            prefill = (t.attention_flops - decode_flops) * slowdown
            linear = max(t.matmuls, t.weight_reads)
            return linear + max(t.kv_reads, decode_flops) + prefill + t.host

    return Traced


def kernel_rates(kv_dtype: str, path: Path = ATTENTION_RATES) -> dict[str, float]:
    """FA3 on the traced step's mix (`attention_rates.py`, vLLM's 16-token pages): the
    decoding streams' KV read alone (bytes/s), the prefill chunk's attention alone and beside
    the streams (FLOP/s). A layout whose output failed its check is refused."""
    (row,) = [r for r in json.loads(path.read_text())["layouts"]
              if r["kv_dtype"] == kv_dtype and r["page"] == SERVED_PAGE]  # fmt: skip
    if not row["checked"]:
        raise ValueError(f"{path.name}: {kv_dtype}/{SERVED_PAGE} failed its output check")
    return {
        "decode_bytes_per_s": row["decode_tb_per_s"] * 1e12,
        "prefill_flops_per_s": row["prefill_alone_tflops"] * 1e12,
        "prefill_beside_streams_flops_per_s": row["prefill_beside_streams_tflops"] * 1e12,
    }


def kernel_way(decode_bytes_per_s: float, prefill_flops_per_s: float) -> type[StepCost]:
    """The traced way with no free term: a step with an FP8 KV cache costs its linear layers
    as per kernel kind, then its decoding streams' KV reads at `decode_bytes_per_s` (or their
    FLOPs, if longer) *plus* its prefill chunks' attention at `prefill_flops_per_s` — FA3's
    FP8 kernel as timed alone on the traced mix. A 16-bit KV step keeps the model's 16-bit
    rates (the traced way at 1×: stock prefills whole prompts in 8,192-token steps, a shape
    the kernel table does not time)."""
    architecture = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
    fp8_bytes = kv_cache_bytes_per_token_per_gpu(architecture, "fp8", 1)
    flops_per_pair = attention_flops_per_token(architecture, 1)
    sixteen_bit = traced_way(1.0)

    class Kernel(sixteen_bit):  # type: ignore[misc, valid-type]
        def seconds(
            self,
            decode_tokens: int,
            decode_context_tokens: int,
            prefill_chunks: list[tuple[int, int]],
        ) -> float:
            if self.kv_bytes_per_token != fp8_bytes:
                return super().seconds(decode_tokens, decode_context_tokens, prefill_chunks)
            t = self.terms(decode_tokens, decode_context_tokens, prefill_chunks)
            decode_flops = self.attention_s_per_context_token * decode_context_tokens
            kv = t.kv_reads * self.bandwidth / decode_bytes_per_s
            pairs = (t.attention_flops - decode_flops) / self.attention_s_per_context_token
            prefill = pairs * flops_per_pair / prefill_flops_per_s
            return max(t.matmuls, t.weight_reads) + max(kv, decode_flops) + prefill + t.host

    return Kernel


# What the FP8 attention kernel would have to reach, priced by the kernel way at the plan's
# profile and capacity: (label, decode read rate, prefill chunk rate), from the kernel table's
# own rows — the 16-bit KV kernel on the same mix reads 1.5× faster and computes the chunk
# beside the streams 1.8× faster than the FP8 one.
KERNEL_WHAT_IFS: tuple[tuple[str, tuple[str, str], tuple[str, str]], ...] = (
    ("today's FP8 kernel", ("fp8", "decode_bytes_per_s"), ("fp8", "prefill_flops_per_s")),
    ("FP8 decode at the 16-bit kernel's read rate", ("bf16", "decode_bytes_per_s"),
     ("fp8", "prefill_flops_per_s")),
    ("… and the chunk at the 16-bit kernel's rate beside the streams",
     ("bf16", "decode_bytes_per_s"), ("bf16", "prefill_beside_streams_flops_per_s")),
)  # fmt: skip


def ledger(totals: dict[str, float]) -> type[StepCost]:
    """`StepCost` that also adds each step's time, by what bounds each kernel kind, into
    `totals` (and the matmuls' own time, whatever bounds them, as "matmuls at any bound")."""

    class Ledger(StepCost):
        def seconds(
            self,
            decode_tokens: int,
            decode_context_tokens: int,
            prefill_chunks: list[tuple[int, int]],
        ) -> float:
            t = self.terms(decode_tokens, decode_context_tokens, prefill_chunks)
            parts = {
                "matmuls": t.matmuls if t.matmuls >= t.weight_reads else 0.0,
                "weight reads": t.weight_reads if t.weight_reads > t.matmuls else 0.0,
                "KV-cache reads": t.kv_reads if t.kv_reads >= t.attention_flops else 0.0,
                "attention FLOPs": t.attention_flops if t.attention_flops > t.kv_reads else 0.0,
                "host": t.host,
                "matmuls at any bound": t.matmuls,
            }
            for name, seconds in parts.items():
                totals[name] = totals.get(name, 0.0) + seconds
            return super().seconds(decode_tokens, decode_context_tokens, prefill_chunks)

    return Ledger


# (label, server arguments under gpu_h200_gate/, streams)
BREAKDOWNS = [
    ("the 2,048-token profile at its boundary", "prod-shape-bracket/opt-c127/server.args", 112),
    ("stock vLLM at its boundary", "prod-shape-bracket/stock-c74/server.args", 74),
]


def breakdown(server: Path, concurrency: int) -> dict[str, Any]:
    """Where one replica's time goes in the simulated steady state at prod's shape, and the
    rate its matmuls alone allow (everything else free) — each lever's ceiling."""
    totals: dict[str, float] = {}
    workload = SHAPES["rag"]["workload"]
    architecture = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
    knobs = knobs_of(server)
    point = simulate(architecture, ACCELERATORS["H200"], knobs, workload, concurrency,
                     step_cost=ledger(totals))  # fmt: skip
    totals.pop("matmuls at any bound")
    elapsed = sum(totals.values())
    # One request's matmuls (every prompt and output token) at the fitted rate, nothing else.
    per_request_flops = (workload.prompt_tokens + workload.output_tokens) * (
        matmul_flops_per_token(architecture)
    )
    rate = _compute_rate_flops(ACCELERATORS["H200"], knobs.quantization, 1)
    return {
        "concurrency": concurrency,
        "requests_per_s": point.requests_per_s,
        "shares": {name: seconds / elapsed for name, seconds in totals.items()},
        "matmul_only_requests_per_s": rate / per_request_flops,
        "roofline_requests_per_s": roofline_requests_per_s(workload),
    }


def kernel_ceilings(workload: Workload, rates: Path = GEMM_RATES) -> dict[str, Any]:
    """The FP8 GEMMs alone as measured on the H200 (`gemm_rates.py`: vLLM's kernel, each
    linear timed on its own), FLOP-weighted over a decoder layer's four linears, per token
    count M — and the request rate if one request's matmuls ran at that rate with nothing else
    in the step — against the rate the whole-step fit gives a matmul in serving."""
    architecture = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
    h200 = ACCELERATORS["H200"]
    per_request = (workload.prompt_tokens + workload.output_tokens) * matmul_flops_per_token(
        architecture
    )
    measured = json.loads(rates.read_text())
    by_m: dict[int, list[dict[str, Any]]] = {}
    for row in measured["linears"]:
        by_m.setdefault(row["m"], []).append(row)
    fitted = _compute_rate_flops(h200, "fp8", 1)
    ceilings = []
    # Below 2,048 tokens each call's launch gap dominates (gpu_h200_gemm_rates.md): not a rate.
    for m, rows in sorted(by_m.items()):
        if m < 2048:
            continue
        flops = sum(2 * r["m"] * r["k"] * r["n"] for r in rows)
        rate = flops / (sum(r["fp8_gemm_ms"] for r in rows) / 1e3)
        ceilings.append({"tokens": m, "gemm_tflops": rate / 1e12,
                         "gemm_only_requests_per_s": rate / per_request})  # fmt: skip
    return {
        "device": measured["device"],
        "fitted_tflops": fitted / 1e12,
        "fitted_only_requests_per_s": fitted / per_request,
        "ceilings": ceilings,
    }


PROFILE = GATE / "profiles" / "opt-c109"


def traced_step(profile: Path = PROFILE) -> dict[str, Any]:
    """vLLM's own trace of a steady step at the plan's capacity (`profile.sh`,
    `kernel_profile.py`): each kernel kind's milliseconds a step, and the FP8 GEMMs' rate in
    serving — the decoder layers' matmul FLOPs (the 16-bit LM head apart) of a full step budget
    over their traced time; the queue never emptied during the trace, so steps ran at the
    budget or just under it (the rate is an upper bound)."""
    architecture = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
    summary = json.loads((profile / "kernels.json").read_text())
    budget = knobs_of(profile / "server.args").max_num_batched_tokens
    lm_head = 2 * architecture.vocab_size * architecture.hidden_size
    gemm_s = summary["kinds"]["GEMM, FP8"]["ms_per_step"] / 1e3
    return {
        "profile": str(profile.relative_to(GATE)),
        "steps": summary["steps"],
        "step_ms": summary["step_ms"],
        "gpu_busy_share": summary["gpu_busy_share"],
        "ms_per_step": {k: row["ms_per_step"] for k, row in summary["kinds"].items()},
        "share": {k: row["share_of_gpu_time"] for k, row in summary["kinds"].items()},
        "gemm_tflops": (matmul_flops_per_token(architecture) - lm_head) * budget / gemm_s / 1e12,
        "step_budget": budget,
    }


def roofline_requests_per_s(workload: Workload) -> float:
    """One request's FLOPs at the H200 datasheet's dense peaks: matmuls at FP8 (1,979 TFLOP/s),
    attention at bf16 (989): every prompt token attends to those before it, every output token
    to the prompt and the outputs before it."""
    architecture = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
    h200 = ACCELERATORS["H200"]
    prompt, output = workload.prompt_tokens, workload.output_tokens
    matmuls = (prompt + output) * matmul_flops_per_token(architecture)
    attention = attention_flops_per_token(architecture, prompt / 2) * prompt + (
        attention_flops_per_token(architecture, prompt + output / 2) * output
    )
    assert h200.fp8_tflops is not None
    return 1 / (matmuls / (h200.fp8_tflops * 1e12) + attention / (h200.bf16_tflops * 1e12))


GOAL_SHARE_OF_ROOFLINE = 0.60  # issue #16's goal at prod's shape


def kv_read_bound(workload: Workload, kv_cache_dtype: str = "fp8") -> dict[str, float]:
    """The roofline with one request's unavoidable bytes run after its FLOPs, as vLLM runs a
    step's attention after its linear layers: the FLOPs at the datasheet peaks
    (`roofline_requests_per_s`), then its own KV cache read once per output token at the
    HBM's datasheet bandwidth (every decode step reads each stream's whole context; the
    weights, read once a step for every stream, are left out as if the batch were unbounded —
    so this bounds the rate from above). `peak_share_needed`: the share of both peaks that
    kernels run this way must reach on average for the issue's goal share of the roofline."""
    architecture = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
    h200 = ACCELERATORS["H200"]
    prompt, output = workload.prompt_tokens, workload.output_tokens
    flops_s = 1 / roofline_requests_per_s(workload)
    context_reads = sum(prompt + t for t in range(output))
    kv_bytes = context_reads * kv_cache_bytes_per_token_per_gpu(architecture, kv_cache_dtype, 1)
    kv_s = kv_bytes / (h200.memory_bandwidth_gb_s * 1e9)
    return {
        "flops_ms": flops_s * 1e3,
        "kv_bytes_gb": kv_bytes / 1e9,
        "kv_ms": kv_s * 1e3,
        "requests_per_s": 1 / (flops_s + kv_s),
        "share_of_roofline": flops_s / (flops_s + kv_s),
        "peak_share_needed": GOAL_SHARE_OF_ROOFLINE * (flops_s + kv_s) / flops_s,
    }


def errors(
    measured: list[Level], accelerator: Accelerator, way: type[StepCost], gate: Path = GATE
) -> list[dict[str, Any]]:
    architecture = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
    rows = []
    for lv in measured:
        point = simulate(architecture, accelerator, knobs_of(gate / lv.server),
                         SHAPES[lv.shape]["workload"], lv.concurrency, step_cost=way)  # fmt: skip
        rows.append({
            "shape": lv.shape, "profile": lv.profile, "report": lv.report,
            "concurrency": lv.concurrency,
            "requests_per_s": lv.requests_per_s, "model_requests_per_s": point.requests_per_s,
            "itl_p95_ms": lv.itl_p95_ms, "model_itl_p95_ms": point.itl_p95_ms,
            "requests_per_s_error": point.requests_per_s / lv.requests_per_s - 1,
            "itl_p95_error": point.itl_p95_ms / lv.itl_p95_ms - 1,
        })  # fmt: skip
    return rows


def score(rows: list[dict[str, Any]]) -> dict[str, float]:
    both = [abs(r[k]) for r in rows for k in ("requests_per_s_error", "itl_p95_error")]
    rag = [abs(r[k]) for r in rows if r["shape"] == "rag"
           for k in ("requests_per_s_error", "itl_p95_error")]  # fmt: skip
    return {"mean_abs_error": statistics.fmean(both), "max_abs_error": max(both),
            "rag_max_abs_error": max(rag)}  # fmt: skip


def pinned_to_trace(traced: dict[str, Any]) -> Accelerator:
    """The H200 with its 8-bit scale pinned to the trace's non-attention time a token (GEMMs,
    fused pointwise kernels, KV writes, sampling: the linear-layer term of the model covers
    them all, and charges every token the LM head)."""
    h200 = ACCELERATORS["H200"]
    architecture = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
    linear_ms = sum(ms for kind, ms in traced["ms_per_step"].items() if kind != "attention")
    rate = matmul_flops_per_token(architecture) / (linear_ms / 1e3 / traced["step_budget"])
    scale = rate / _compute_rate_flops(replace(h200, compute_scale_8bit=1.0), "fp8", 1)
    return replace(h200, compute_scale_8bit=round(scale, 3))


def group(shape: str, profile: str) -> str:
    return f"{shape}, {profile.split(' (')[0]}"  # a lever's run counts with its profile


def kernel_fit(measured: list[Level], traced: dict[str, Any], gate: Path = GATE) -> dict[str, Any]:
    """The kernel way against every level, by shape and profile — every term measured (the
    linear layers pinned to the trace, attention at FA3's rates timed alone), nothing fitted
    to the levels — and what faster FP8 attention would buy at the plan's capacity."""
    pinned = pinned_to_trace(traced)
    rates = {dtype: kernel_rates(dtype) for dtype in ("fp8", "bf16")}
    way = kernel_way(rates["fp8"]["decode_bytes_per_s"], rates["fp8"]["prefill_flops_per_s"])
    rows = errors(measured, pinned, way, gate)
    by_group: dict[str, list[float]] = {}
    for row in rows:
        err = (abs(row["requests_per_s_error"]) + abs(row["itl_p95_error"])) / 2
        by_group.setdefault(group(row["shape"], row["profile"]), []).append(err)
    architecture = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
    # The plan's profile at its capacity, where it was traced (`profiles/opt-c109`).
    plan = next(lv for lv in measured
                if lv.profile.startswith("optimized (1,792") and lv.concurrency == 109)  # fmt: skip
    what_ifs = []
    for label, (decode_kv, decode_key), (chunk_kv, chunk_key) in KERNEL_WHAT_IFS:
        decode, chunk = rates[decode_kv][decode_key], rates[chunk_kv][chunk_key]
        point = simulate(architecture, pinned, knobs_of(gate / plan.server),
                         SHAPES["rag"]["workload"], plan.concurrency,
                         step_cost=kernel_way(decode, chunk))  # fmt: skip
        what_ifs.append({
            "what": label, "decode_tb_per_s": decode / 1e12, "prefill_tflops": chunk / 1e12,
            "requests_per_s": point.requests_per_s, "itl_p95_ms": point.itl_p95_ms,
            "ttft_p95_ms": point.ttft_p95_ms,
        })  # fmt: skip
    at_plan = [
        r["requests_per_s_error"]
        for r in rows
        if r["profile"] == plan.profile and r["concurrency"] == plan.concurrency
    ]
    return {
        "compute_scale_8bit": pinned.compute_scale_8bit,
        "model_read_tb_per_s": StepCost.of(
            architecture, pinned, knobs_of(gate / plan.server)
        ).bandwidth
        / 1e12,
        "fp8_rates": rates["fp8"],
        "bf16_rates": rates["bf16"],
        "streams": plan.concurrency,
        "plan_requests_per_s_error": statistics.fmean(at_plan),
        "levels": {key: len(errs) for key, errs in by_group.items()},
        "mean_abs_error": {key: statistics.fmean(errs) for key, errs in by_group.items()},
        "rows": rows,
        "what_ifs": what_ifs,
    }


def traced_fit(measured: list[Level], traced: dict[str, Any], gate: Path = GATE) -> dict[str, Any]:
    """The traced way against every level, by shape and profile: the 8-bit scale pinned to the
    trace (`pinned_to_trace`), the prefill attention's slowdown over SLOWDOWNS. An exploration,
    not the model: which slowdown each group of levels wants says whether one attention term
    can serve them all."""
    pinned = pinned_to_trace(traced)
    totals: dict[str, dict[float, float]] = {}
    counts: dict[str, int] = {}
    for lv in measured:
        counts[group(lv.shape, lv.profile)] = counts.get(group(lv.shape, lv.profile), 0) + 1
    for slowdown in SLOWDOWNS:
        for row in errors(measured, pinned, traced_way(slowdown), gate):
            err = (abs(row["requests_per_s_error"]) + abs(row["itl_p95_error"])) / 2
            by_slowdown = totals.setdefault(group(row["shape"], row["profile"]), {})
            by_slowdown[slowdown] = by_slowdown.get(slowdown, 0.0) + err
    mean = {key: {f: total / counts[key] for f, total in row.items()}
            for key, row in totals.items()}  # fmt: skip
    return {
        "compute_scale_8bit": pinned.compute_scale_8bit,
        "levels": counts,
        "mean_abs_error": mean,
        "best_slowdown": {key: min(row, key=row.__getitem__) for key, row in mean.items()},
    }


def compare(gate: Path = GATE) -> dict[str, Any]:
    measured = [lv for lv in levels(gate) if lv.refused is None]
    traced = traced_step()
    h200 = ACCELERATORS["H200"]
    grid, rows = [], {}
    for name, way in WAYS.items():
        for scale in SCALES_8BIT:
            rows[name, scale] = errors(measured, replace(h200, compute_scale_8bit=scale), way, gate)
            grid.append({"way": name, "compute_scale_8bit": scale, **score(rows[name, scale])})
    best = {name: min((g for g in grid if g["way"] == name), key=lambda g: g["mean_abs_error"])
            for name in WAYS}  # fmt: skip
    return {
        "levels": len(measured),
        "compute_scale": h200.compute_scale,
        "catalog_compute_scale_8bit": h200.compute_scale_8bit,
        "grid": grid,
        "best": best,
        "breakdowns": {
            label: breakdown(gate / server, streams) for label, server, streams in BREAKDOWNS
        },
        "kernel_ceilings": kernel_ceilings(SHAPES["rag"]["workload"]),
        "kv_read_bound": kv_read_bound(SHAPES["rag"]["workload"]),
        "traced_step": traced,
        "traced_fit": traced_fit(measured, traced, gate),
        "kernel_fit": kernel_fit(measured, traced, gate),
        # Both ways at their own best scale, level by level.
        "at_best": {name: rows[name, b["compute_scale_8bit"]] for name, b in best.items()},
    }


def markdown(result: dict[str, Any]) -> str:
    best = result["best"]
    lines = [
        "# Costing a step: per kernel kind vs one max over the step (H200 gate levels)",
        "",
        "Generated by `.venv/bin/python -m benchmarks.gpu.h200.step_cost` from the "
        f"{result['levels']} steady-state levels of `gpu_h200_gate/` (vLLM 0.25.1, GuideLLM 0.8.1, "
        "one H200; the levels `gpu_h200_summary.md` counts). 16-bit compute scale "
        f"{result['compute_scale']} (the catalog's); the catalog's 8-bit scale is "
        f"{result['catalog_compute_scale_8bit']}.",
        "",
        "| way | 8-bit scale | mean abs error (req/s and ITL p95) | max | max at prod's shape |",
        "|---|---|---|---|---|",
    ]
    for g in result["grid"]:
        mark = " **(best)**" if g == best[g["way"]] else ""
        lines.append(f"| {g['way']} | {g['compute_scale_8bit']:.2f}{mark} | "
                     f"{g['mean_abs_error']:.1%} | {g['max_abs_error']:.1%} | "
                     f"{g['rag_max_abs_error']:.1%} |")  # fmt: skip
    lines += [
        "",
        "Each way at its best scale, level by level (measured → model):",
        "",
        "| shape | profile | report | streams | req/s: per kernel | req/s: whole step "
        "| ITL p95 ms: per kernel | ITL p95 ms: whole step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    kernel, whole = result["at_best"]["per kernel"], result["at_best"]["whole step"]
    for k, w in zip(kernel, whole, strict=True):
        lines.append(
            f"| {k['shape']} | {k['profile']} | `{k['report']}` | {k['concurrency']} | "
            f"{k['requests_per_s']:.2f} → {k['model_requests_per_s']:.2f} "
            f"({k['requests_per_s_error']:+.1%}) | {w['model_requests_per_s']:.2f} "
            f"({w['requests_per_s_error']:+.1%}) | {k['itl_p95_ms']:.1f} → "
            f"{k['model_itl_p95_ms']:.1f} ({k['itl_p95_error']:+.1%}) | "
            f"{w['model_itl_p95_ms']:.1f} ({w['itl_p95_error']:+.1%}) |"
        )
    lines += [
        "",
        "Where a replica's time goes at prod's shape (6,400 / 384), simulated steady state with "
        "the catalog's scales — each step's time by what bounds each of its kernel kinds; "
        "*matmuls alone* is the rate if everything but the matmuls were free, against the "
        "datasheet roofline of one request's FLOPs (matmuls at FP8, attention at bf16 peak: "
        f"{next(iter(result['breakdowns'].values()))['roofline_requests_per_s']:.1f} req/s):",
        "",
        "| run | streams | req/s | matmuls | KV-cache reads | attention FLOPs | weight reads "
        "| host | matmuls alone, req/s (of the roofline) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, b in result["breakdowns"].items():
        share = b["shares"]
        lines.append(
            f"| {label} | {b['concurrency']} | {b['requests_per_s']:.2f} | "
            + " | ".join(f"{share.get(k, 0.0):.0%}" for k in
                         ("matmuls", "KV-cache reads", "attention FLOPs", "weight reads", "host"))
            + f" | {b['matmul_only_requests_per_s']:.2f} "
            f"({b['matmul_only_requests_per_s'] / b['roofline_requests_per_s']:.0%}) |"
        )  # fmt: skip
    k = result["kernel_ceilings"]
    roofline = next(iter(result["breakdowns"].values()))["roofline_requests_per_s"]
    lines += [
        "",
        f"The matmuls' own ceiling, measured ({k['device']}, `gpu_h200_gemm_rates.json`: vLLM's "
        "FP8 GEMM, each linear timed alone, FLOP-weighted over a decoder layer's four): a "
        "request's matmuls at that rate with nothing else in the step, against the rate the "
        "whole-step fit gives a matmul in serving (the catalog's FP8 rate × scale):",
        "",
        "| matmul rate | TFLOP/s | prod's shape, matmuls alone: req/s (of the roofline) |",
        "|---|---|---|",
    ]
    for c in k["ceilings"]:
        alone = c["gemm_only_requests_per_s"]
        lines.append(
            f"| GEMM alone, {c['tokens']:,} tokens | {c['gemm_tflops']:,.0f} | "
            f"{alone:.2f} ({alone / roofline:.0%}) |"
        )
    lines += [
        f"| whole-step fit (in serving) | {k['fitted_tflops']:,.0f} | "
        f"{k['fitted_only_requests_per_s']:.2f} "
        f"({k['fitted_only_requests_per_s'] / roofline:.0%}) |",
        "",
        "At their own 2,048-token rate the GEMMs take "
        f"{k['fitted_tflops'] / k['ceilings'][0]['gemm_tflops']:.0%} of the per-token time the "
        "fit charges a matmul in serving; the rest is what the fit folds into it.",
        "",
    ]
    b = result["kv_read_bound"]
    h200 = ACCELERATORS["H200"]
    assert h200.fp8_tflops is not None
    fp8 = result["kernel_fit"]["fp8_rates"]
    measured = (
        f"the GEMMs at {result['traced_step']['gemm_tflops'] / h200.fp8_tflops:.0%} of the FP8 "
        "peak in serving, the "
        f"FP8 KV decode at {fp8['decode_bytes_per_s'] / (h200.memory_bandwidth_gb_s * 1e9):.0%} "
        f"of the bandwidth and the chunk's attention at "
        f"{fp8['prefill_flops_per_s'] / (h200.bf16_tflops * 1e12):.0%} of the bf16 peak alone"
    )
    lines += [
        f"With its KV reads after its FLOPs (as vLLM runs a step's attention after its linear "
        f"layers), a request at prod's shape reads its own FP8 KV cache once per output token: "
        f"{b['kv_bytes_gb']:.0f} GB, {b['kv_ms']:.1f} ms at the datasheet's "
        f"{h200.memory_bandwidth_gb_s / 1e3:.1f} TB/s, after "
        f"{b['flops_ms']:.1f} ms of FLOPs at the peaks — at most {b['requests_per_s']:.1f} req/s, "
        f"{b['share_of_roofline']:.0%} of the roofline, with every kernel at its peak and the "
        f"weights free. {GOAL_SHARE_OF_ROOFLINE:.0%} of the roofline this way needs both kinds "
        f"of kernel at {b['peak_share_needed']:.0%} of their peaks on average (measured: "
        f"{measured}), or the KV reads hidden under the matmuls.",
        "",
    ]

    t = result["traced_step"]
    ms = t["ms_per_step"]
    lines += [
        f"What that rest is, traced (`gpu_h200_gate/{t['profile']}`: vLLM's torch profiler over "
        f"{t['steps']:.0f} steady steps of the plan's profile at its capacity, 109 streams; "
        f"{t['step_ms']:.1f} ms a step, the GPU busy {t['gpu_busy_share']:.0%} of it):",
        "",
        "| kernel kind | ms a step | share of the GPU's time |",
        "|---|---|---|",
        *(f"| {kind} | {ms[kind]:.2f} | {t['share'][kind]:.1%} |" for kind in ms
          if t["share"][kind] >= 0.005),
        "",
        f"The FP8 GEMMs run ≈ {t['gemm_tflops']:,.0f} TFLOP/s in serving (at most: the step "
        "budget's tokens over their traced time): not the fit's "
        f"{k['fitted_tflops']:,.0f}, and above their rate measured alone on random data "
        f"({k['ceilings'][0]['gemm_tflops']:,.0f} at 2,048 tokens; the served dummy weights are "
        "narrow values, and a GEMM's clock follows its data's power draw). The rest "
        "is attention: the decoding streams' KV reads and the prefill chunk's attention run in "
        "one FlashAttention kernel whose time is their sum, while the per-kernel costing takes "
        "the larger of the two (the KV reads) and its fitted matmul rate absorbs the other. The "
        "totals hold (every level above), the account does not: a lever on the attention kernel "
        "is the one this model cannot price, and the largest share of a step to win.",
        "",
    ]  # fmt: skip
    f = result["traced_fit"]
    lines += [
        "Costed as traced instead — the linear layers at the trace's non-attention time a token "
        f"(8-bit scale {f['compute_scale_8bit']}), the decoding streams' KV reads, *plus* the "
        "prefill chunks' attention at the model's 16-bit attention time × a slowdown — each "
        "group of levels wants its own slowdown (mean abs error of req/s and ITL p95):",
        "",
        "| levels | count | best slowdown | error there | error at 1× |",
        "|---|---|---|---|---|",
        *(
            f"| {key} | {f['levels'][key]} | {f['best_slowdown'][key]:g}× | "
            f"{row[f['best_slowdown'][key]]:.1%} | {row[1.0]:.1%} |"
            for key, row in f["mean_abs_error"].items()
        ),
        "",
        "Stock's prefill runs in whole waves of 8,192-token steps and its attention at the "
        "model's rate; the plan's profile prefills a 1,792-token chunk inside every step beside "
        "≈ 100 decoding streams. Read as one slowdown on the chunk this says 2.5-5×; the kernel "
        "table below says where the time really is.",
        "",
    ]
    k = result["kernel_fit"]
    fp8 = k["fp8_rates"]
    lines += [
        "**Costed at the attention kernel's own rates** (`gpu_h200_attention_rates.md`: vLLM's "
        "FlashAttention-3 timed alone on the traced step's mix, output checked against a plain "
        "attention): with an FP8 KV cache the decoding streams' KV reads run at "
        f"{fp8['decode_bytes_per_s'] / 1e12:.2f} TB/s — not the "
        f"{k['model_read_tb_per_s']:.2f} TB/s the model gives any KV read (the 16-bit KV "
        f"kernel reaches {k['bf16_rates']['decode_bytes_per_s'] / 1e12:.2f} on the same mix) — "
        f"and the prefill chunk's attention at {fp8['prefill_flops_per_s'] / 1e12:.0f} TFLOP/s. "
        "With those two rates, the linear layers pinned to the trace as above and the 16-bit KV "
        "steps at the model's own rates, nothing is left to fit, and every group of levels lands "
        f"within {max(k['mean_abs_error'].values()):.1%} (mean abs error of req/s and ITL p95):",
        "",
        "| levels | count | mean abs error |",
        "|---|---|---|",
        *(f"| {key} | {k['levels'][key]} | {err:.1%} |"
          for key, err in k["mean_abs_error"].items()),
        "",
        "So the plan's attention is mostly its decoding streams' FP8 KV reads, at two thirds "
        "of the read rate the 16-bit kernel reaches, and the chunk's attention at a sixth of "
        "the FP8 peak. (A reading of FA3's tile sizes, not a measurement: a decode step's four "
        "query rows per KV head fill a 128-row tile, so the kernel issues ≈ 256 matmul FLOPs "
        "a byte of FP8 KV — 128 of 16-bit — and the FP8 path, which also transposes V in "
        "shared memory, runs out of compute before memory.) What faster FP8 attention would "
        f"buy, priced this way at the plan's profile and {k['streams']} streams (where this "
        f"way's req/s is {k['plan_requests_per_s_error']:+.1%} from the gate's, on average):",
        "",
        "| FP8 attention | decode KV read TB/s | prefill chunk TFLOP/s | req/s | ITL p95 ms "
        "| TTFT p95 ms |",
        "|---|---|---|---|---|---|",
        *(f"| {w['what']} | {w['decode_tb_per_s']:.2f} | {w['prefill_tflops']:.0f} | "
          f"{w['requests_per_s']:.2f} | {w['itl_p95_ms']:.1f} | {w['ttft_p95_ms']:.0f} |"
          for w in k["what_ifs"]),
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    out = out_path(__doc__, "gpu_h200_step_cost")
    result = compare()
    write_results(out, result, markdown(result))
    print(markdown(result).split("Each way")[0])


if __name__ == "__main__":
    main()
