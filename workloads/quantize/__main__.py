"""CLI: `leanrag-quantize --model DIR --scheme fp8 --output DIR` (or python -m workloads.quantize).

Exit codes: 0 done or already done (skipped), 2 bad request (message names the fix),
4 the checkpoint is over its quality budget and was not published (message names the metric).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workloads.contract import DEFAULT_QUALITY_BUDGETS, QualityBudget
from workloads.quantize.core import (
    SCHEMES,
    QualityRejected,
    QuantizeError,
    QuantizeRequest,
    quantize,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leanrag-quantize", description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="source model folder")
    parser.add_argument("--output", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--scheme", required=True, choices=SCHEMES)
    parser.add_argument(
        "--calibration", type=Path, help="JSONL ({'text': ...}) or documents folder"
    )
    parser.add_argument("--samples", type=int, default=256, help="calibration samples to use")
    parser.add_argument("--min-samples", type=int, default=16, help="refuse smaller sets")
    parser.add_argument("--max-seq-len", type=int, default=512, help="calibration sample length")
    parser.add_argument("--replace", action="store_true", help="overwrite a different checkpoint")
    quality = parser.add_argument_group(
        "quality", "held-out passages of --calibration read by both models; defaults per scheme"
    )
    quality.add_argument("--max-kl", type=float, help="nats per token, KL(source ‖ compressed)")
    quality.add_argument("--min-agreement", type=float, help="top-1 agreement, 0-1")
    quality.add_argument("--max-ppl-increase", type=float, help="relative, e.g. 0.03")
    quality.add_argument("--quality-passages", type=int, default=32)
    quality.add_argument(
        "--scorer",
        default="auto",
        help="auto (vLLM when importable, else transformers), transformers, or the path of a "
        "Python interpreter with vLLM (the serving kernels)",
    )
    quality.add_argument("--kv-cache-dtype", default="auto", help="as served (vLLM scorer)")
    quality.add_argument(
        "--no-quality-check", action="store_true", help="publish without measuring quality"
    )
    args = parser.parse_args(argv)
    budget = None
    if not args.no_quality_check:
        default = DEFAULT_QUALITY_BUDGETS[args.scheme]
        budget = QualityBudget(
            max_kl_nats=default.max_kl_nats if args.max_kl is None else args.max_kl,
            min_top1_agreement=(
                default.min_top1_agreement if args.min_agreement is None else args.min_agreement
            ),
            max_perplexity_increase=(
                default.max_perplexity_increase
                if args.max_ppl_increase is None
                else args.max_ppl_increase
            ),
        )
    request = QuantizeRequest(
        model_dir=args.model,
        output_dir=args.output,
        scheme=args.scheme,
        calibration=args.calibration,
        calibration_samples=args.samples,
        min_calibration_samples=args.min_samples,
        max_sequence_length=args.max_seq_len,
        replace=args.replace,
        quality_budget=budget,
        quality_passages=args.quality_passages,
        scorer=args.scorer,
        kv_cache_dtype=args.kv_cache_dtype,
    )
    try:
        result = quantize(request)
    except QualityRejected as error:
        print(f"leanrag-quantize: {error}", file=sys.stderr)
        return 4
    except QuantizeError as error:
        print(f"leanrag-quantize: {error}", file=sys.stderr)
        return 2
    manifest = result.manifest
    state = "already done, skipped" if result.skipped else f"done in {manifest['duration_s']} s"
    print(
        f"{args.scheme} checkpoint at {result.output_dir}: {state}; "
        f"{manifest['source_bytes']:,} → {manifest['output_bytes']:,} bytes "
        f"({manifest['size_ratio']:.3f}×)"
    )
    retention = manifest.get("quality", {})
    if retention.get("measured"):
        print(
            f"quality on {retention['passages']} held-out passages ({retention['measured_by']}): "
            f"perplexity {retention['perplexity_source']:.2f} → "
            f"{retention['perplexity_compressed']:.2f}, KL {retention['kl_nats_per_token']:.5f} "
            f"nats/token, top-1 agreement {retention['top1_agreement']:.4f} — within budget"
        )
    print(
        json.dumps(
            {"skipped": result.skipped, "manifest": str(args.output / "leanrag-quantize.json")}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
