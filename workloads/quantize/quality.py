"""Quality retention of a compressed checkpoint: the source and the compressed model read the
same held-out passages of the user's own corpus; compare their next-token distributions.

Metrics, over every scored position of every passage:
- perplexity of each model, and the compressed model's relative increase;
- mean KL divergence KL(source ‖ compressed) in nats per token;
- top-1 agreement: how often both models rank the same next token first.

Scorers, best first: **vLLM** (the serving kernels, the stack's KV-cache dtype: activation
quantization and the FP8 KV cache are exercised) through `workloads.quantize.vllm_scores` in
an interpreter that has vLLM; **transformers** (weights decompressed to 16 bits, activations
not quantized — it under-states INT8/FP8 activation error; used only where vLLM cannot run and
labelled so). Each scorer returns the top-k log-probabilities per position (k = 256: a whole
vocabulary per token would be tens of millions of values): KL is computed on the coarse
partition {ids both models list} ∪ {the rest}, a lower bound of the full KL that is exact when
k covers the vocabulary.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workloads.contract import QualityBudget

VLLM_SCORES = Path(__file__).with_name("vllm_scores.py")
TOP_K = 256
MIN_PASSAGE_TOKENS = 16
MAX_PASSAGE_TOKENS = 256


class QualityError(Exception):
    """The quality measurement could not run; the message names the component and the fix."""


@dataclass
class Scores:
    """One model's reading of one passage: per scored position (token 1..n-1), the
    log-probability of the token that follows and the top-k log-probabilities."""

    token_logprobs: list[float]
    top: list[dict[int, float]]


def top_k_for(vocab_size: int) -> int:
    return min(vocab_size, TOP_K)


def held_out_passages(
    tokenizer: Any, texts: list[str], max_tokens: int = MAX_PASSAGE_TOKENS
) -> list[dict[str, Any]]:
    """Token ids (as the server tokenizes them: special tokens added) of each held-out text."""
    passages = []
    for text in texts:
        ids = tokenizer(text, truncation=True, max_length=max_tokens)["input_ids"]
        # Decode and encode again: a cut inside a word may tokenize differently on its own,
        # and the gate later sends the text, not the ids.
        text = tokenizer.decode(ids, skip_special_tokens=True)
        ids = tokenizer(text)["input_ids"]
        if len(ids) >= MIN_PASSAGE_TOKENS:
            passages.append({"text": text, "ids": ids})
    return passages


def compare(source: list[Scores], compressed: list[Scores], top_k: int, vocab: int) -> dict:
    """The quality metrics of `compressed` against `source` (same passages, same order)."""
    if len(source) != len(compressed) or not source:
        raise QualityError("quality: source and compressed scores cover different passages")
    tokens = 0
    nll_source = nll_compressed = kl_sum = 0.0
    agree = 0
    for ours, theirs in zip(source, compressed, strict=True):
        if len(ours.token_logprobs) != len(theirs.token_logprobs):
            raise QualityError("quality: a passage was scored at different lengths")
        for position, (p_top, q_top) in enumerate(zip(ours.top, theirs.top, strict=True)):
            tokens += 1
            nll_source -= ours.token_logprobs[position]
            nll_compressed -= theirs.token_logprobs[position]
            kl_sum += coarse_kl(p_top, q_top)
            agree += max(p_top, key=p_top.__getitem__) == max(q_top, key=q_top.__getitem__)
    perplexity_source = math.exp(nll_source / tokens)
    perplexity_compressed = math.exp(nll_compressed / tokens)
    return {
        "passages": len(source),
        "tokens": tokens,
        "perplexity_source": round(perplexity_source, 4),
        "perplexity_compressed": round(perplexity_compressed, 4),
        "perplexity_increase": round(perplexity_compressed / perplexity_source - 1, 6),
        "kl_nats_per_token": round(kl_sum / tokens, 6),
        "top1_agreement": round(agree / tokens, 6),
        "top_k": top_k,
        "kl_exact": top_k >= vocab,
    }


def coarse_kl(p_log: dict[int, float], q_log: dict[int, float]) -> float:
    """KL(p ‖ q) on the partition {each id both list} ∪ {every other id}.

    Exact when both dicts hold the whole vocabulary; a lower bound otherwise (merging
    outcomes never increases KL).
    """
    shared = p_log.keys() & q_log.keys()
    kl = 0.0
    p_rest = q_rest = 1.0
    for token in shared:
        p = math.exp(p_log[token])
        kl += p * (p_log[token] - q_log[token])
        p_rest -= p
        q_rest -= math.exp(q_log[token])
    if p_rest > 1e-9:
        kl += p_rest * math.log(p_rest / max(q_rest, 1e-12))
    return max(kl, 0.0)


def score(
    model_dir: Path,
    passages: list[dict[str, Any]],
    top_k: int,
    scorer: str,
    kv_cache_dtype: str = "auto",
) -> tuple[list[Scores], str]:
    """Scores of `model_dir` on the passages, and a label saying which path measured them.

    `scorer`: `transformers`, or the path of a Python interpreter that has vLLM.
    """
    if scorer == "transformers":
        return _score_with_transformers(model_dir, passages, top_k), (
            "transformers (weights decompressed to 16 bits; activations and KV cache not quantized)"
        )
    return _score_with_vllm(Path(scorer), model_dir, passages, top_k, kv_cache_dtype)


def _score_with_vllm(
    python: Path, model_dir: Path, passages: list[dict], top_k: int, kv_cache_dtype: str
) -> tuple[list[Scores], str]:
    with tempfile.TemporaryDirectory(prefix="leanrag-quality-") as folder:
        request = Path(folder) / "request.json"
        answer = Path(folder) / "scores.json"
        request.write_text(json.dumps({"passages": [p["ids"] for p in passages], "top_k": top_k}))
        command = [
            str(python), str(VLLM_SCORES), "--model", str(model_dir), "--request", str(request),
            "--output", str(answer), "--kv-cache-dtype", kv_cache_dtype,
        ]  # fmt: skip
        env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        log = Path(folder) / "vllm.log"
        returncode = _run_in_own_group(command, env, log, timeout_s=1800)
        if returncode != 0 or not answer.is_file():
            tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-12:])
            raise QualityError(
                f"vLLM could not score {model_dir} (exit {returncode}); its last lines:\n"
                f"{tail}\nFix the model or the vLLM build, or pass --scorer transformers to "
                "measure without the serving kernels (labelled so)"
            )
        result = json.loads(answer.read_text())
    scores = [
        Scores(s["token_logprobs"], [_int_keys(t) for t in s["top"]]) for s in result["scores"]
    ]
    return scores, f"vLLM {result['vllm']} ({result['device']}, kv-cache-dtype {kv_cache_dtype})"


def _run_in_own_group(command: list[str], env: dict[str, str], log: Path, timeout_s: float) -> int:
    """Run the scorer in a process group of its own and kill the group when it returns: vLLM's
    engine processes may outlive the scorer's main process."""
    with log.open("wb") as output:
        try:
            process = subprocess.Popen(
                command, env=env, stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        except OSError as error:
            raise QualityError(f"vLLM scorer ({command[0]}) did not start: {error}") from None
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return -1
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _int_keys(top: dict[str, float]) -> dict[int, float]:
    return {int(token): logprob for token, logprob in top.items()}


def _score_with_transformers(model_dir: Path, passages: list[dict], top_k: int) -> list[Scores]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto").eval()
    scores = []
    with torch.no_grad():
        for passage in passages:
            ids = torch.tensor([passage["ids"]])
            logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
            following = ids[0, 1:]
            values, indices = torch.topk(logprobs, top_k, dim=-1)
            scores.append(
                Scores(
                    token_logprobs=logprobs.gather(1, following[:, None])[:, 0].tolist(),
                    top=[
                        dict(zip(row_ids, row_values, strict=True))
                        for row_ids, row_values in zip(
                            indices.tolist(), values.tolist(), strict=True
                        )
                    ],
                )
            )
    return scores


def reference(passages: list[dict], compressed: list[Scores], label: str) -> dict[str, Any]:
    """What the post-deploy gate replays: each passage's text, its token count and the
    compressed model's log-probability of every token after the first."""
    return {
        "measured_by": label,
        "passages": [
            {"text": p["text"], "tokens": len(p["ids"]), "token_logprobs": s.token_logprobs}
            for p, s in zip(passages, compressed, strict=True)
        ],
    }


def default_scorer() -> str:
    """vLLM in this interpreter when it is installed, else transformers."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "transformers"
    return sys.executable


def budget_dict(budget: QualityBudget | None) -> dict[str, float] | None:
    return asdict(budget) if budget else None
