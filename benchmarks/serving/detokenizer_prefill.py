"""How long the first streamed token of a long prompt takes to detokenize in vLLM's API server.

vLLM (0.25.1, and every release since its "native prefill" detokenizer) primes each request's
`tokenizers.decoders.DecodeStream` with the *whole* prompt (`DecodeStream(ids=prompt_ids)`); the
first `step()` then decodes the whole prompt once, on the API server's event loop, while every
other stream on that server waits. This measures that first step against what the stack's vLLM
plugin (`workloads/vllm_plugin`) does instead — choose the prompt's tail window, prime with it,
step — for prompts of several lengths, with a byte-level BPE tokenizer (Llama 3's kind)
trained here on the sample corpus, or a given tokenizer.json.

    .venv-workloads/bin/python -m benchmarks.serving.detokenizer_prefill [--tokenizer FILE]
        [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from workloads.vllm_plugin.leanrag_vllm_plugin import DEFAULT_PRIME_TOKENS, prime_window

CORPUS = Path(__file__).resolve().parents[2] / "workloads" / "ingest" / "sample_corpus"


def corpus_texts() -> list[str]:
    """The sample corpus's Markdown documents (the text both tokenizers and prompts come from)."""
    return [p.read_text(errors="ignore") for p in sorted(CORPUS.rglob("*.md"))]


def byte_level_bpe(vocab_size: int = 8000, special_tokens: list[str] | None = None) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens or [],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus_texts(), trainer=trainer)
    return tokenizer


def first_step_seconds(
    tokenizer: Tokenizer, prompt: list[int], token: int, repeats: int, plugin: bool
) -> float:
    """Median time to the first streamed text: vLLM's whole-prompt stream, or the plugin's
    (its window choice included: it runs on the same event loop)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        primed = prime_window(tokenizer, prompt, True, DEFAULT_PRIME_TOKENS) if plugin else prompt
        stream = decoders.DecodeStream(ids=primed, skip_special_tokens=True)
        stream.step(tokenizer, token)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(lengths: list[int], repeats: int, tokenizer_file: Path | None = None) -> dict:
    if tokenizer_file:
        tokenizer, name = Tokenizer.from_file(str(tokenizer_file)), str(tokenizer_file)
    else:
        tokenizer = byte_level_bpe()
        name = f"byte-level BPE, vocab {tokenizer.get_vocab_size()}, trained on {CORPUS.name}"
    text = " ".join(corpus_texts())
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    rng = random.Random(0)
    rows = []
    for length in lengths:
        prompt = (ids * (length // len(ids) + 1))[:length]
        token = rng.choice(ids)
        whole = first_step_seconds(tokenizer, prompt, token, repeats, plugin=False)
        tail = first_step_seconds(tokenizer, prompt, token, repeats, plugin=True)
        rows.append({
            "prompt_tokens": length,
            "first_step_whole_prompt_ms": round(whole * 1e3, 3),
            "first_step_plugin_ms": round(tail * 1e3, 4),
        })  # fmt: skip
    return {
        "what": "DecodeStream first step after priming with the prompt (vLLM's detokenizer)",
        "tokenizers": tokenizers.__version__,
        "tokenizer": name,
        "cpu": platform.processor() or platform.machine(),
        "repeats": repeats,
        "plugin_prime_tokens": DEFAULT_PRIME_TOKENS,
        "rows": rows,
        "command": "python -m benchmarks.serving.detokenizer_prefill",
    }


def markdown(runs: list[dict]) -> str:
    lines = [
        "# vLLM's detokenizer on a long prompt: the first streamed token",
        "",
        "`tokenizers.decoders.DecodeStream` primed with the whole prompt (what vLLM 0.25.1's "
        "`FastIncrementalDetokenizer` does) vs the stack's vLLM plugin (window of the last "
        f"{runs[0]['plugin_prime_tokens']}+ tokens chosen, primed, stepped): time to the first "
        "streamed text, median of "
        f"{runs[0]['repeats']}, tokenizers {runs[0]['tokenizers']}, CPU {runs[0]['cpu']} "
        "(the 2-core dev machine, idle). vLLM runs this on the API server's event loop.",
        "",
        "| tokenizer | prompt tokens | whole prompt (ms) | plugin (ms) |",
        "| --- | --- | --- | --- |",
    ]
    for run in runs:
        for row in run["rows"]:
            lines.append(
                f"| {run['tokenizer']} | {row['prompt_tokens']:,} | "
                f"{row['first_step_whole_prompt_ms']} | {row['first_step_plugin_ms']} |"
            )
    lines += ["", "Commands: " + "; ".join(f"`{run['command']}`" for run in runs), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192, 32768, 100_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokenizer", type=Path, help="a tokenizer.json (default: train one)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--report", type=Path, nargs="+", help="JSON results → Markdown table")
    args = parser.parse_args()
    if args.report:
        print(markdown([json.loads(path.read_text()) for path in args.report]))
        return
    result = measure(args.lengths, args.repeats, args.tokenizer)
    if args.tokenizer:
        result["command"] += f" --tokenizer {args.tokenizer}"
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
