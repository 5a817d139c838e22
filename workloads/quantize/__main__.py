"""CLI: `leanrag-quantize --model DIR --scheme fp8 --output DIR` (or python -m workloads.quantize).

Exit codes: 0 done or already done (skipped), 2 bad request (message names the fix).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workloads.quantize.core import SCHEMES, QuantizeError, QuantizeRequest, quantize


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
    args = parser.parse_args(argv)
    request = QuantizeRequest(
        model_dir=args.model,
        output_dir=args.output,
        scheme=args.scheme,
        calibration=args.calibration,
        calibration_samples=args.samples,
        min_calibration_samples=args.min_samples,
        max_sequence_length=args.max_seq_len,
        replace=args.replace,
    )
    try:
        result = quantize(request)
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
    print(
        json.dumps(
            {"skipped": result.skipped, "manifest": str(args.output / "leanrag-quantize.json")}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
