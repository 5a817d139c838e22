"""Quality retention through vLLM's CUDA kernels on the lent GPU (FP8, INT8 W8A8, W4A16; 16-bit
and FP8 KV cache), for the tiny Llama trained here.

Here (workloads environment): build the inputs into an ignored folder —
    .venv-workloads/bin/python -m benchmarks.gpu.h200.quality prepare gpu-bundle/quality
(the trained model, its three checkpoints compressed with the held-out passages kept out of
calibration, and those passages' token ids). On the GPU machine, after assemble.sh:
    PYTHONPATH=/tmp/site:$PWD python3 -m benchmarks.gpu.h200.quality run gpu-bundle/quality $OUT
Here again, with the returned JSON:
    python -m benchmarks.gpu.h200.quality report quality_h200.json
writes benchmarks/results/quality_h200.{json,md}.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from workloads.quantize import quality

ROOT = Path(__file__).resolve().parents[3]
SCHEMES = ("fp8", "int8-w8a8", "w4a16")
KV_DTYPES = ("auto", "fp8")


def prepare(folder: Path) -> None:
    from transformers import AutoTokenizer

    from benchmarks.quality.run import ARCHITECTURE, SAMPLE_CORPUS
    from workloads.models import TrainingRecipe, trained_tiny_llama

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    architecture = SimpleNamespace(**ARCHITECTURE)
    cache = ROOT / ".cache" / "models"
    trained_tiny_llama(folder / "source", architecture, TrainingRecipe(), cache)
    for scheme in SCHEMES:
        # The quality check (transformers, quick) keeps the held-out passages out of calibration
        # and records them beside the checkpoint.
        subprocess.run(
            [sys.executable, "-m", "workloads.quantize", "--model", str(folder / "source"),
             "--output", str(folder / scheme), "--scheme", scheme, "--calibration",
             str(SAMPLE_CORPUS), "--scorer", "transformers"],
            check=True, capture_output=True,
        )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(folder / "source")
    reference = json.loads((folder / SCHEMES[0] / "quality-reference.json").read_text())
    passages = [
        {"text": p["text"], "ids": tokenizer(p["text"])["input_ids"]} for p in reference["passages"]
    ]
    (folder / "passages.json").write_text(json.dumps(passages))
    print(f"{len(passages)} passages, models in {folder}")


def run(folder: Path, out: Path) -> None:
    passages = json.loads((folder / "passages.json").read_text())
    top_k = quality.top_k_for(4096)
    rows: list[dict] = []
    labels: dict[str, str] = {}
    baseline: list[quality.Scores] = []
    for kv in KV_DTYPES:
        started = time.monotonic()
        try:
            source, labels[kv] = quality.score(
                folder / "source", passages, top_k, sys.executable, kv
            )
        except quality.QualityError as error:
            rows.append({"scheme": "source", "kv_cache_dtype": kv, "error": str(error)[-600:]})
            continue
        if kv != "auto" and baseline:
            rows.append({"scheme": "none (bf16 weights)", "kv_cache_dtype": kv,
                         **quality.compare(baseline, source, top_k, 4096)})  # fmt: skip
        if kv == "auto":
            baseline = source
        for scheme in SCHEMES:
            try:
                compressed, _ = quality.score(folder / scheme, passages, top_k, sys.executable, kv)
            except quality.QualityError as error:
                rows.append({"scheme": scheme, "kv_cache_dtype": kv, "error": str(error)[-600:]})
                continue
            if not baseline:
                continue
            # Against the 16-bit-KV source: what the deployment loses in all.
            rows.append({"scheme": scheme, "kv_cache_dtype": kv,
                         **quality.compare(baseline, compressed, top_k, 4096)})  # fmt: skip
        print(f"kv {kv}: {round(time.monotonic() - started)} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality_h200.json").write_text(
        json.dumps({"measured_by": labels, "passages": len(passages), "rows": rows}, indent=2)
    )
    print(json.dumps(rows, indent=1)[:4000])


def report(path: Path) -> None:
    document = json.loads(path.read_text())
    results = ROOT / "benchmarks" / "results"
    (results / "quality_h200.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        "# Quality retention through vLLM's CUDA kernels (H200)",
        "",
        f"Measured by: {', '.join(sorted(set(document['measured_by'].values())))}; "
        f"{document['passages']} held-out passages of the sample corpus; the local stack's "
        "`tiny-trained-llama` and its three checkpoints (compressed on CPU here, held-out "
        "passages kept out of calibration). Every row compares with the source model served "
        "with a 16-bit KV cache, so the FP8-KV rows show what weights, activations and KV cache "
        "lose together. KL on each model's 256 likeliest ids plus the rest (a lower bound).",
        "",
        "Reproduce: `benchmarks/gpu/h200/quality.py` (prepare here, run on the GPU, report here).",
        "",
        "| scheme | KV cache | tokens | perplexity source → served | KL nats/token | "
        "top-1 agreement |",
        "|---|---|---|---|---|---|",
    ]
    for row in document["rows"]:
        if "error" in row:
            lines.append(
                f"| {row['scheme']} | {row['kv_cache_dtype']} | could not run: "
                f"{row['error'][-200:].replace('|', '/').replace(chr(10), ' ')} | | | |"
            )
            continue
        lines.append(
            f"| {row['scheme']} | {row['kv_cache_dtype']} | {row['tokens']} | "
            f"{row['perplexity_source']:.2f} → {row['perplexity_compressed']:.2f} "
            f"({row['perplexity_increase']:+.2%}) | {row['kl_nats_per_token']:.5f} | "
            f"{row['top1_agreement']:.4f} |"
        )
    (results / "quality_h200.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "prepare":
        prepare(Path(rest[0]))
    elif command == "run":
        run(Path(rest[0]), Path(rest[1]))
    else:
        report(Path(rest[0]))
