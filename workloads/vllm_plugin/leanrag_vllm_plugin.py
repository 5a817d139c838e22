"""Lean RAG's vLLM plugin: a long prompt's first token no longer stalls every other stream.

vLLM (0.25 to at least 0.32) primes each request's incremental detokenizer, a `tokenizers`
`DecodeStream`, with the *whole* prompt. The first `step()` then decodes every prompt token,
on the API server's event loop: a 100k-token document holds up the tokens of every other
stream that process serves for ~0.1-0.3 s (measured on an H100, `benchmarks/results/gpu_proof.md`).

Streaming text only needs the prompt's last few tokens as left context: the primed text is
subtracted from the first delta, and what a token decodes to depends on its neighbours only
(a byte-level or byte-fallback character spans at most 4 tokens, a leading space is decided
by the token before). This plugin primes the stream with the prompt's last
`LEANRAG_DETOKENIZER_PRIME_TOKENS` tokens (default 32; 0 keeps vLLM's behaviour), widening
the window while it would start inside a character or decode to nothing (only special
tokens). The streamed text is the same; `tests/workloads/test_vllm_plugin.py` checks it
against the whole-prompt stream on three tokenizer families and on vLLM's own class.

vLLM loads it in every process through the `vllm.general_plugins` entry point. The stack
ships this file and its package metadata in a ConfigMap on the serving pods' PYTHONPATH
(`infra/builders/serving.py`), so the stock vLLM image is kept. Self-contained on purpose:
standard library, `tokenizers` and vLLM only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

ENV_PRIME_TOKENS = "LEANRAG_DETOKENIZER_PRIME_TOKENS"
DEFAULT_PRIME_TOKENS = 32
REPLACEMENT_CHARACTER = "\ufffd"  # what a tokenizer decodes a cut multi-byte character to

logger = logging.getLogger("vllm.leanrag_vllm_plugin")


def prime_tokens() -> int:
    """The starting window from the environment; 0 turns the plugin off."""
    raw = os.environ.get(ENV_PRIME_TOKENS, str(DEFAULT_PRIME_TOKENS))
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            f"{ENV_PRIME_TOKENS}={raw!r}: expected a whole number of prompt tokens ≥ 0 "
            f"(default {DEFAULT_PRIME_TOKENS}; 0 keeps vLLM's whole-prompt priming)"
        )
    return value


def prime_window(
    tokenizer: Any, prompt_ids: Sequence[int], skip_special_tokens: bool, start: int
) -> list[int]:
    """The shortest tail of the prompt (start, 2×start, …, whole) that is safe to prime with.

    Safe: its text does not begin inside a multi-byte character (a cut byte-level or
    byte-fallback sequence decodes to U+FFFD) and is not empty (a window of special tokens
    only would make the first generated token the start of the text, and Metaspace/Strip
    decoders drop a leading space there). `tokenizer` is a `tokenizers.Tokenizer`.
    """
    size = start
    while size < len(prompt_ids):
        tail = list(prompt_ids[-size:])
        text = tokenizer.decode(tail, skip_special_tokens=skip_special_tokens)
        if text and not text.startswith(REPLACEMENT_CHARACTER):
            return tail
        size *= 2
    return list(prompt_ids)


def register() -> None:
    """vLLM's general-plugin hook: runs once per process (API server, engine, workers)."""
    start = prime_tokens()
    if start == 0:
        logger.info("%s=0: the detokenizer primes with the whole prompt", ENV_PRIME_TOKENS)
        return
    try:
        from vllm.v1.engine import detokenizer
    except ImportError:  # a vLLM without the V1 engine: nothing to patch
        logger.warning("leanrag_vllm_plugin: vllm.v1.engine.detokenizer not found; not applied")
        return
    cls = getattr(detokenizer, "FastIncrementalDetokenizer", None)
    if cls is None or getattr(cls.__init__, "leanrag_prime_tokens", None) is not None:
        return  # not this vLLM's design, or already patched in this process
    vllm_init = cls.__init__

    def __init__(self: Any, tokenizer: Any, request: Any) -> None:
        vllm_init(self, tokenizer, request)
        prompt = request.prompt_token_ids
        if prompt is None or len(prompt) <= start:
            self.primed_prompt_tokens = 0 if prompt is None else len(prompt)
            return
        window = prime_window(self.tokenizer, prompt, self.skip_special_tokens, start)
        # The same construction vLLM uses (looked up on the module, like vLLM does).
        self.stream = detokenizer.tokenizers.decoders.DecodeStream(
            ids=window, skip_special_tokens=self.skip_special_tokens
        )
        self.primed_prompt_tokens = len(window)

    __init__.leanrag_prime_tokens = start  # type: ignore[attr-defined]
    cls.__init__ = __init__
    logger.info(
        "leanrag_vllm_plugin: the detokenizer primes with the prompt's last %d+ tokens", start
    )
