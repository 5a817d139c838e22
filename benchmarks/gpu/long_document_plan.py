"""The plan's vLLM settings for the head-of-line run: the prod stack, re-planned for documents of
DOC_TOKENS tokens (the prod stack itself stops at an 8k context) on one GPU, as the run has.
Everything else — model, GPU, FP8 weights and KV cache, the ITL target — is prod's, so the step
budget printed is what `leanrag plan` picks for such a stack.

    .venv/bin/python -m benchmarks.gpu.long_document_plan [--doc-tokens 100000] [--json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from infra.config import validate_stack
from infra.plan import DeploymentPlan, build_plan
from infra.stack_source import STACKS_DIR, raw_from_stack_file

CHAT_STREAMS = 8  # the head-of-line run: 8 chat streams + one document


def long_document_raw(doc_tokens: int, itl_p95_ms: float | None = None) -> dict[str, Any]:
    """Prod's stack config with long documents, a handful of users and a TTFT target that a
    document of that length can meet (its own prefill takes seconds)."""
    raw = raw_from_stack_file(STACKS_DIR / "Pulumi.prod.yaml")
    raw["serving"] = {**raw["serving"], "tensorParallelSize": 1}  # the run has one GPU
    raw["workload"] = {
        **raw["workload"],
        "concurrentUsers": CHAT_STREAMS + 1,
        "contextTokens": doc_tokens,
        "sharedPrefixShare": 0.0,
    }
    slo = {**raw["slo"], "ttftP95Ms": 60_000, "minThroughputRps": 0}
    if itl_p95_ms is not None:
        slo["itlP95Ms"] = itl_p95_ms
    raw["slo"] = slo
    return raw


def long_document_plan(doc_tokens: int, itl_p95_ms: float | None = None) -> DeploymentPlan:
    config = validate_stack(long_document_raw(doc_tokens, itl_p95_ms), "prod, long documents")
    return build_plan(config, "prod-long-documents")


def summary(doc_tokens: int, itl_p95_ms: float | None = None) -> dict[str, Any]:
    """What the head-of-line run needs from the plan, and what the model predicts for it."""
    plan = long_document_plan(doc_tokens, itl_p95_ms)
    replica = plan.sizing.replica
    return {
        "doc_tokens": doc_tokens,
        "itl_p95_ms": plan.gate.itl_p95_ms,
        "max_model_len": replica.knobs.max_model_len,
        "max_num_batched_tokens": replica.knobs.max_num_batched_tokens,
        "predicted_last_chunk_step_ms": round(replica.speed.last_chunk_step_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--doc-tokens", type=int, default=100_000)
    parser.add_argument("--itl-p95-ms", type=float, help="override prod's ITL target")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = summary(args.doc_tokens, args.itl_p95_ms)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
