"""The H200 variant of prod, planned at prod's RAG shape and at 2048/256, as the GPU runs use it.

For each shape and profile (optimized = the plan's vLLM arguments, stock = vLLM's defaults on
the same GPU) it writes the gate plan of ONE replica (`GatePlan.one_replica`: the lent machine
has one GPU) and the server arguments, into `--out` (default `gpu-bundle/run`):

    .venv/bin/python -m benchmarks.gpu.h200.plans [--out DIR]

`<shape>-<profile>.json` is what `python -m workloads.benchmark --plan` reads on the device;
`<shape>-<profile>.args` is what `benchmarks/gpu/h200/serve.sh` starts vLLM with;
`<shape>-<profile>-rag-only.json` is the same plan without the shared-document scenario, for
repeats of the headline (uncached) level within one call's device time.
`rag-optimized-<lever>.args` (+ `.variant`) is the plan's profile with one serving lever added
(`levers`), measured against it at the same streams; `rag-<profile>-profiled.args` the same
arguments with vLLM's torch profiler ready for `profile.sh` (`profiler_args`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from infra.config import validate_stack
from infra.plan import DeploymentPlan, baseline_gate, build_plan
from infra.stack_source import find_stacks_dir, raw_from_stack_file, stack_file
from workloads.contract import GatePlan

# (question, retrieved context, output) tokens: prod's own RAG shape, and the shape the
# earlier calibration used.
SHAPES = {"rag": (256, 6144, 384), "chat": (256, 1792, 256)}
MODEL_DIR = "gpu-bundle/llama8b-bpe"


def h200_config(shape: str) -> Any:
    """prod's stack file, moved to H200 nodes, at one of SHAPES."""
    raw = raw_from_stack_file(stack_file("prod", find_stacks_dir()))
    question, context, output = SHAPES[shape]
    raw["gpuPool"] = raw["gpuPool"] | {"gpu": "H200", "instanceType": "p5en.48xlarge"}
    raw["serving"] = raw["serving"] | {"minReplicas": 1}
    raw["workload"] = raw["workload"] | {
        "questionTokens": question,
        "contextTokens": context,
        "outputTokens": output,
    }
    return validate_stack(raw, f"prod on H200 ({shape})")


def server_args(plan: DeploymentPlan, profile: str) -> list[str]:
    """vLLM's arguments for the dummy-weight model: `--quantization fp8` stands for the FP8
    checkpoint the quantize Job would write (random weights cannot be compressed)."""
    vllm = plan.vllm if profile == "optimized" else plan.baseline_vllm
    args = ["--model", MODEL_DIR, "--served-model-name", "m", *vllm.server_args()]
    if plan.model.quantization == "fp8" and profile == "optimized":
        args += ["--quantization", "fp8"]
    return args


# vLLM's torch profiler, for profile.sh: it traces PROFILE_STEPS engine steps after
# /start_profile and stops itself (GPU kernels only: no Python stacks, no front end).
PROFILE_DIR = "/tmp/vllm-profile"
PROFILE_STEPS = 30


def profiler_args() -> list[str]:
    config = {
        "profiler": "torch",
        "torch_profiler_dir": PROFILE_DIR,
        "torch_profiler_with_stack": False,
        "torch_profiler_dump_cuda_time_total": False,
        "ignore_frontend": True,
        "max_iterations": PROFILE_STEPS,
    }
    # One word (serve.sh splits the args file on blanks): compact JSON, no spaces.
    return ["--profiler-config", json.dumps(config, separators=(",", ":"))]


def levers(plan: DeploymentPlan) -> dict[str, tuple[str, list[str]]]:
    """Serving levers measured against the plan's own profile at prod's shape: name → (what
    the run calls itself, the arguments added to the optimized server's). vLLM 0.25.1 captures
    CUDA graphs up to min(2 × max-num-seqs, 512) tokens, so the plan's mixed prefill-decode
    steps (the whole step budget) run their pieces eagerly; capturing up to the budget replays
    them (`--max-cudagraph-capture-size`: sizes every 16 tokens from 256 up to it). Measured
    on the H200 (2026-12-04, 109 streams, `prod-shape-repeats/cg1792-c109-r1`): 5.40 req/s
    against the plan's own 5.63-5.73 — slower, so the plan's arguments leave it out; written
    still, so the run can be reproduced."""
    budget = plan.vllm.max_num_batched_tokens
    return {
        "cudagraph": (
            f"CUDA graphs to {budget:,} tokens",
            ["--max-cudagraph-capture-size", str(budget)],
        ),
        # The plan's FP8 KV cache against vLLM's 16-bit one (the last --kv-cache-dtype wins):
        # measured 2026-12-04 at 109 streams (`prod-shape-repeats/kv16-c109-r1`), 4.75 req/s,
        # ITL p95 55.8 ms — the model, before the run, 4.64 and 57.3. FP8 KV stays.
        "kv16": ("16-bit KV cache", ["--kv-cache-dtype", "auto"]),
        # Attention levers (2026-12-04: the trace puts half a step in FA3's mixed launch;
        # `attention_rates.py` times that launch alone per page size and KV precision):
        # 128-token KV pages (FA3 loads 16-bit K/V by TMA only when a page holds whole
        # 128-key tiles; FP8's tile is 224 keys, which no vLLM page size holds), the same
        # with a 16-bit KV cache, and vLLM's Triton attention in place of FA3. Measured at 109
        # streams: 128-token pages 5.60 and 5.62 req/s (`prod-shape-repeats/page128-c109-*`,
        # no gain over the plan's 5.63-5.73); Triton's level outran its call (one log window:
        # half FA3's prefill rate). Both left out; the 16-bit one in 128-token pages not run.
        "page128": ("128-token KV pages", ["--block-size", "128"]),
        "kv16page128": (
            "16-bit KV cache in 128-token pages",
            ["--kv-cache-dtype", "auto", "--block-size", "128"],
        ),
        "triton": ("Triton attention", ["--attention-backend", "TRITON_ATTN"]),
        # FlashInfer (the streams on its decode kernel, the chunk on its prefill kernel),
        # compiled on the machine at first use: carry gpu-bundle/fi (serve.sh sources
        # flashinfer.sh). Not run yet.
        "flashinfer": ("FlashInfer attention", ["--attention-backend", "FLASHINFER"]),
    }


# vLLM's API server is one Python process that tokenizes every prompt and streams every token
# of every request: at the plan's 2048/256 capacity (256 streams, ≈ 5,300 tokens/s) it spent
# 0.71-0.82 CPU-seconds a second of load (`server_metrics.api_server_cpu_share`), and some
# first tokens reach the client a step after vLLM had them (`first_token_after_vllm`: ≥ 14-18 %
# of stock's requests at prod's shape). More API server processes (vLLM balances requests over
# them; its 10-s log lines stop, its /metrics stays) say whether the frontend holds the TTFT
# tail or the rate back. Written for every server of both shapes. Measured for stock at 112
# streams of 2048/256 on an H100 (2026-12-05, `gpu_h100_frontend.md`): no gain; the plan's
# profile at 256, where the frontend is busier, is queued for an H200 session.
FRONTEND_LEVERS = {"api2": ("2 API server processes", ["--api-server-count", "2"])}


def write(out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    for shape in SHAPES:
        config = h200_config(shape)
        plan = build_plan(config, f"prod-h200-{shape}")
        gates: dict[str, GatePlan] = {
            "optimized": plan.gate,
            "stock": baseline_gate(plan, config),
        }
        for profile, gate in gates.items():
            name = f"{shape}-{profile}"
            document = {
                "stack": plan.stack,
                "profile": profile,
                "replicas_planned": plan.sizing.replicas,
                "gate": dataclasses.asdict(gate.one_replica()),
                # serve.sh starts vLLM with --load-format dummy: the gate's report says so.
                "model": {"name": plan.model.name, "random_weights": True},
            }
            (out / f"{name}.json").write_text(json.dumps(document, indent=2, sort_keys=True))
            rag_only = document | {"gate": document["gate"] | {"shared_prefix_tokens": 0}}
            (out / f"{name}-rag-only.json").write_text(
                json.dumps(rag_only, indent=2, sort_keys=True)
            )
            (out / f"{name}.args").write_text(" ".join(server_args(plan, profile)) + "\n")
            if shape == "rag":  # profile.sh's server: the same arguments, traced on demand
                args = [*server_args(plan, profile), *profiler_args()]
                (out / f"{name}-profiled.args").write_text(" ".join(args) + "\n")
            # serve.sh files `.variant` beside the args; gate.sh names each run with it.
            written = dict(FRONTEND_LEVERS)
            if shape == "rag" and profile == "optimized":
                written |= levers(plan)
            for lever, (variant, extra) in written.items():
                args = [*server_args(plan, profile), *extra]
                (out / f"{name}-{lever}.args").write_text(" ".join(args) + "\n")
                (out / f"{name}-{lever}.variant").write_text(variant + "\n")
            one = gate.one_replica()
            summary[name] = {
                "replicas": plan.sizing.replicas,
                "gpus": plan.sizing.gpus,
                "per_replica_load": one.concurrency,
                "capacity_concurrency": one.capacity_concurrency,
                "capacity_requests_per_s": round(one.capacity_requests_per_s, 2),
                "limited_by": one.capacity_limited_by,
                "problems": [p.what for p in plan.problems],
            }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-bundle/run"))
    summary = write(parser.parse_args().out)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
