"""The GPU proof script runs what the plan decides: its optimized profile is the prod plan's
vLLM arguments, its long-document context the long-document plan's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from benchmarks.gpu.long_document_plan import long_document_plan
from infra.plan import build_plan
from infra.stack_source import load_stack

PROOF = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu" / "proof.sh"


def _bash_array(name: str) -> list[str]:
    match = re.search(rf"^{name}=\((.*?)\)", PROOF.read_text(), re.S | re.M)
    assert match, f"{name}=(...) not found in {PROOF}"
    return shlex.split(match.group(1))


def _options(args: list[str]) -> dict[str, str | bool]:
    options: dict[str, str | bool] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            following = args[i + 1] if i + 1 < len(args) else "--"
            options[arg] = True if following.startswith("--") else following
    return options


def test_optimized_profile_is_the_prod_plan() -> None:
    config = load_stack("prod")
    plan_args = _options(build_plan(config, "prod").vllm.server_args())
    script = _options(_bash_array("OPTIMIZED"))
    assert script.pop("--quantization") == config.serving.quantization
    for flag in (
        "--kv-cache-dtype",
        "--gpu-memory-utilization",
        "--max-num-seqs",
        "--max-num-batched-tokens",
    ):
        assert script[flag] == plan_args[flag], flag
    for flag in ("--enable-prefix-caching", "--enable-chunked-prefill"):
        assert script[flag] is True and plan_args[flag] is True, flag
    # The context is the RAG shape's (2048 in / 256 out), set per run, not the plan's.
    assert set(script) <= set(plan_args)


def test_long_document_context_is_the_long_document_plan() -> None:
    match = re.search(r"^LONG_DOC_LEN=(\d+)", PROOF.read_text(), re.M)
    assert match
    plan = long_document_plan(100_000)
    assert int(match.group(1)) == plan.sizing.replica.knobs.max_model_len
    assert plan.sizing.replica.knobs.tensor_parallel_size == 1  # the run has one GPU
