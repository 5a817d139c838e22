"""Quality retention per compression scheme, on a tiny Llama trained here (real deltas).

For each scheme, `leanrag-quantize` compresses the local stack's trained model with the sample
corpus as calibration set, holds out every fifth passage, and has the source and the compressed
model read those passages through each scorer: vLLM (the serving kernels, this machine's build)
and transformers (weights decompressed, activations unquantized). A scorer that cannot run a
scheme is recorded with its error, not left out.

    .venv-workloads/bin/python -m benchmarks.quality.run [--vllm-python .venv-vllm/bin/python]

Writes benchmarks/results/quality.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from workloads.contract import DEFAULT_QUALITY_BUDGETS
from workloads.models import TrainingRecipe, trained_tiny_llama

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
SAMPLE_CORPUS = ROOT / "workloads" / "ingest" / "sample_corpus"
ARCHITECTURE = {
    "num_layers": 2,
    "hidden_size": 256,
    "num_attention_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 64,
    "intermediate_size": 512,
    "vocab_size": 4096,
    "max_context_tokens": 2048,
    "tie_word_embeddings": False,
}  # fmt: skip  (the catalog's tiny-trained-llama; the benchmark imports no infra)


def measure(model: Path, scheme: str, scorer: str, work: Path) -> dict:
    out = work / f"{scheme}-{Path(scorer).name}"
    command = [
        sys.executable, "-m", "workloads.quantize", "--model", str(model), "--output", str(out),
        "--scheme", scheme, "--calibration", str(SAMPLE_CORPUS), "--scorer", scorer,
        # Measure, do not judge: every scheme is recorded whatever it lost.
        "--max-kl", "100", "--min-agreement", "0", "--max-ppl-increase", "100",
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = round(time.monotonic() - started, 1)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"scheme": scheme, "scorer": scorer, "error": " | ".join(lines[-4:]),
                "seconds": seconds}  # fmt: skip
    quality = json.loads((out / "leanrag-quantize.json").read_text())["quality"]
    return {"scheme": scheme, "scorer": scorer, "seconds": seconds, **quality}


def markdown(document: dict) -> str:
    model = document["model"]
    lines = [
        "# Quality retention per compression scheme",
        "",
        f"Model: the local stack's `tiny-trained-llama` (2 layers, 256 hidden, 4,096-token "
        f"byte-level BPE), trained {model['trained']['recipe']['steps']} steps on CPU on "
        f"`pydoc_data.topics` (held-out perplexity {model['trained']['held_out_perplexity']}). "
        f"Calibration: the sample corpus; every fifth passage held out and read by both models "
        f"({document['machine']}, {document['date']}).",
        "",
        f"Reproduce: `{document['command']}`",
        "",
        "| scheme | measured by | passages / tokens | perplexity source → compressed | "
        "KL nats/token | top-1 agreement | default budget (KL / agreement / ppl) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in document["rows"]:
        budget = DEFAULT_QUALITY_BUDGETS[row["scheme"]]
        limits = (
            f"{budget.max_kl_nats} / {budget.min_top1_agreement} / "
            f"+{budget.max_perplexity_increase:.0%}"
        )
        if "error" in row:
            lines.append(
                f"| {row['scheme']} | {row['scorer']} | could not run: {row['error'][:160]} | | "
                f"| | {limits} |"
            )
            continue
        lines.append(
            f"| {row['scheme']} | {row['measured_by']} | {row['passages']} / {row['tokens']} | "
            f"{row['perplexity_source']:.2f} → {row['perplexity_compressed']:.2f} "
            f"({row['perplexity_increase']:+.2%}) | {row['kl_nats_per_token']:.5f} | "
            f"{row['top1_agreement']:.4f} | {limits} |"
        )
    lines += [
        "",
        "KL is computed on the 256 likeliest ids each model lists per position plus the rest "
        "lumped together: a lower bound of the full KL (merging outcomes never increases it). "
        "Perplexities are high because the model read Python's documentation, not this "
        "corpus; the deltas between source and compressed are what the budget judges.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vllm-python", default=str(ROOT / ".venv-vllm" / "bin" / "python"))
    parser.add_argument("--schemes", nargs="*", default=sorted(DEFAULT_QUALITY_BUDGETS))
    args = parser.parse_args()
    cache = ROOT / ".cache" / "models"
    with tempfile.TemporaryDirectory(prefix="leanrag-quality-") as folder:
        work = Path(folder)
        architecture = SimpleNamespace(**ARCHITECTURE)
        info = trained_tiny_llama(work / "model", architecture, TrainingRecipe(), cache)
        rows = [
            measure(work / "model", scheme, scorer, work)
            for scheme in args.schemes
            for scorer in (args.vllm_python, "transformers")
        ]
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} cores, no GPU",
        "command": shlex.join(["python", "-m", "benchmarks.quality.run", *sys.argv[1:]]),
        "model": info,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality.json").write_text(json.dumps(document, indent=2) + "\n")
    (RESULTS / "quality.md").write_text(markdown(document))
    print(markdown(document))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
