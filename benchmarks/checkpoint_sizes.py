"""Checkpoint size per compression scheme against bf16, measured with real LLM Compressor.

Builds mid-size random-weight Llama models (8 layers × 1024 hidden), compresses each with
FP8 dynamic, INT8 W8A8 and W4A16, and records bytes on disk next to the sizing model's
prediction. The embedding and LM head stay 16-bit under every scheme, so the ratio depends on
their share of the parameters: one model ties them (a small share), one does not.

Run (in the workloads environment): .venv-workloads/bin/python -m benchmarks.checkpoint_sizes
Writes benchmarks/results/checkpoint_sizes.{json,md}.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from infra.catalog import ModelArchitecture, derived_parameter_count, embedding_parameter_count
from infra.sizing import weight_bytes
from workloads.models import build_tiny_llama
from workloads.quantize import SCHEMES, QuantizeRequest, quantize

RESULTS = Path(__file__).parent / "results"
TARGETS = {"fp8": 0.55, "w4a16": 0.30}
BASE = ModelArchitecture(
    num_layers=8, hidden_size=1024, num_attention_heads=16, num_kv_heads=4, head_dim=64,
    intermediate_size=3584, vocab_size=4096, max_context_tokens=2048, parameter_count=0,
)  # fmt: skip
MODELS = {
    "8x1024, tied embeddings": replace(BASE, tie_word_embeddings=True),
    "8x1024, untied embeddings": BASE,
}


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _calibration(path: Path, samples: int = 32, words: int = 192) -> Path:
    lines = [
        json.dumps({"text": " ".join(f"w{(i * 131 + j * 17) % 4000}" for j in range(words))})
        for i in range(samples)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run() -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        calibration = _calibration(root / "calibration.jsonl")
        for label, architecture in MODELS.items():
            architecture = replace(
                architecture, parameter_count=derived_parameter_count(architecture)
            )
            model_dir = build_tiny_llama(
                root / label.replace(" ", "_").replace(",", ""), architecture
            )
            for scheme in SCHEMES:
                started = time.monotonic()
                result = quantize(
                    QuantizeRequest(
                        model_dir,
                        root / f"{model_dir.name}-{scheme}",
                        scheme,
                        calibration=calibration,
                        max_sequence_length=256,
                    )
                )
                manifest = result.manifest
                predicted = weight_bytes(architecture, scheme) / weight_bytes(architecture, "none")
                rows.append(
                    {
                        "model": label,
                        "parameters": architecture.parameter_count,
                        "embedding_share": round(
                            embedding_parameter_count(architecture) / architecture.parameter_count,
                            4,
                        ),
                        "scheme": scheme,
                        "bf16_bytes": manifest["source_bytes"],
                        "compressed_bytes": manifest["output_bytes"],
                        "ratio": manifest["size_ratio"],
                        "predicted_ratio": round(predicted, 4),
                        "target_ratio": TARGETS.get(scheme),
                        "meets_target": (
                            manifest["size_ratio"] <= TARGETS[scheme] if scheme in TARGETS else None
                        ),
                        "seconds": round(time.monotonic() - started, 1),
                    }
                )
                versions = manifest["versions"]
    return {
        "benchmark": "checkpoint size per scheme vs bf16",
        "device": f"CPU: {_cpu()}",
        "versions": versions,
        "command": ".venv-workloads/bin/python -m benchmarks.checkpoint_sizes",
        "calibration": "32 synthetic samples × 256 tokens (random-weight models)",
        "rows": rows,
    }


def markdown(report: dict) -> str:
    lines = [
        "# Checkpoint size per scheme (measured)",
        "",
        f"Device: {report['device']}. Libraries: "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items())
        + ".",
        f"Reproduce: `{report['command']}`. Calibration: {report['calibration']}.",
        "",
        "| model | params | embedding share | scheme | bf16 bytes | compressed bytes | ratio | "
        "predicted | target | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        target = (
            "—"
            if row["target_ratio"] is None
            else (f"≤ {row['target_ratio']} {'met' if row['meets_target'] else 'MISSED'}")
        )
        lines.append(
            f"| {row['model']} | {row['parameters']:,} | {row['embedding_share']:.1%} | "
            f"{row['scheme']} | {row['bf16_bytes']:,} | {row['compressed_bytes']:,} | "
            f"{row['ratio']:.3f} | {row['predicted_ratio']:.3f} | {target} | {row['seconds']} |"
        )
    lines += [
        "",
        "Embedding and LM head stay 16-bit under every scheme (LLM Compressor targets "
        "Linear layers and the recipes keep `lm_head`), so the smaller their share, the "
        "closer the ratio gets to the bits per weight (8/16 = 0.5, 4.125/16 ≈ 0.26).",
        "",
        "Seconds are wall time on the 2-core CPU machine, measured while other jobs shared it: "
        "sizes are the result here, not speed.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    report = run()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "checkpoint_sizes.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "checkpoint_sizes.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
