"""Sizing model vs what vLLM reports at start-up on a real GPU (KV-cache tokens, concurrency).

Input: the JSON written on the GPU machine by benchmarks/gpu/kv_capacity.sh (copied to
benchmarks/results/gpu_kv_capacity.json with the device line). Output: a Markdown table in
benchmarks/results/gpu_kv_capacity.md. Run: .venv/bin/python -m benchmarks.gpu.compare_kv_capacity
"""

from __future__ import annotations

import json
from pathlib import Path

from infra.catalog import ACCELERATORS, MODEL_PRESETS
from infra.sizing import ServingKnobs, kv_cache_capacity

RESULTS = Path(__file__).resolve().parents[1] / "results"
MAX_MODEL_LEN = 8192
TOLERANCE = 0.05


def compare(measured: list[dict], gpu: str) -> list[dict]:
    architecture = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
    rows = []
    for run in measured:
        knobs = ServingKnobs(
            quantization="none",
            kv_cache_dtype=run["kv_cache_dtype"],
            gpu_memory_utilization=run["gpu_memory_utilization"],
            tensor_parallel_size=1,
            max_model_len=MAX_MODEL_LEN,
            max_num_batched_tokens=8192,
            max_num_seqs=None,
            enable_prefix_caching=True,
            enable_chunked_prefill=True,
        )
        predicted = kv_cache_capacity(architecture, ACCELERATORS[gpu], knobs).kv_cache_tokens
        error = predicted / run["kv_cache_tokens"] - 1
        rows.append(
            run
            | {
                "predicted_kv_cache_tokens": predicted,
                "predicted_max_concurrency_at_8192": round(predicted / MAX_MODEL_LEN, 2),
                "error": round(error, 4),
                "within_tolerance": abs(error) <= TOLERANCE,
            }
        )
    return rows


def main() -> None:
    source = json.loads((RESULTS / "gpu_kv_capacity.json").read_text())
    rows = compare(source["runs"], source["gpu"])
    lines = [
        "# Sizing model vs vLLM start-up report (KV-cache capacity)",
        "",
        f"Device: {source['device']}. Model: Llama-3.1-8B architecture, bf16 weights "
        "(random, `--load-format dummy`), `--max-model-len 8192`.",
        f"Measured by `{source['command']}`; compared by "
        "`.venv/bin/python -m benchmarks.gpu.compare_kv_capacity`.",
        "",
        "| KV dtype | util | vLLM KV tokens | predicted | error | vLLM max concurrency @8192 |"
        " predicted | within ±5 % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['kv_cache_dtype']} | {row['gpu_memory_utilization']} | "
            f"{row['kv_cache_tokens']:,} | {row['predicted_kv_cache_tokens']:,} | "
            f"{row['error']:+.1%} | {row['max_concurrency_at_8192']} | "
            f"{row['predicted_max_concurrency_at_8192']} | "
            f"{'yes' if row['within_tolerance'] else 'NO'} |"
        )
    (RESULTS / "gpu_kv_capacity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
