"""Prompt log-probabilities through vLLM's own kernels (stdlib + vLLM only: it runs in the
serving image or the vLLM environment, not the quantize one).

`python vllm_scores.py --model DIR --request R.json --output S.json [--kv-cache-dtype fp8]`
R.json: {"passages": [[token ids], ...], "top_k": k}. S.json: per passage, the log-probability
of each token after the first and the top-k log-probabilities at each of those positions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--request", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--kv-cache-dtype", default="auto")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    args = parser.parse_args()
    with open(args.request) as handle:
        request = json.load(handle)
    passages, top_k = request["passages"], int(request["top_k"])

    import vllm
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(
        model=args.model,
        max_logprobs=top_k,
        kv_cache_dtype=args.kv_cache_dtype,
        max_model_len=max(len(p) for p in passages) + 8,
        enable_prefix_caching=False,
        seed=0,
        # One batch of prompts: CUDA graphs and compilation would only add start-up time.
        enforce_eager=True,
        gpu_memory_utilization=args.gpu_memory_utilization,
    )
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in passages],
        SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=top_k),
        use_tqdm=False,
    )
    scores = []
    for ids, output in zip(passages, outputs, strict=True):
        positions = output.prompt_logprobs[1:]  # the first token has no prediction
        scores.append(
            {
                "token_logprobs": [
                    row[token].logprob for row, token in zip(positions, ids[1:], strict=True)
                ],
                "top": [{str(t): lp.logprob for t, lp in row.items()} for row in positions],
            }
        )
    device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            device = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    with open(args.output, "w") as handle:
        json.dump(
            {
                "vllm": vllm.__version__,
                "device": f"{device} ({platform.machine()})",
                "scores": scores,
            },
            handle,
        )
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # vLLM's CPU build aborts in its own teardown at interpreter exit ("terminate called
    # without an active exception", SIGABRT) after the work is done and written: leave now.
    os._exit(code)
