"""Workload tests run real libraries; they need the workloads environment (make test does it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.catalog import ModelArchitecture

pytest.importorskip("llmcompressor", reason="workloads environment not installed (make test)")

# Small enough for CPU, big enough for GPTQ's 128-weight groups: a real Llama layout.
TINY = ModelArchitecture(
    num_layers=2, hidden_size=256, num_attention_heads=4, num_kv_heads=2, head_dim=64,
    intermediate_size=512, vocab_size=1024, max_context_tokens=1024, parameter_count=0,
)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workloads.models import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama", TINY)


@pytest.fixture(scope="session")
def calibration_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calibration") / "samples.jsonl"
    lines = [
        json.dumps({"text": " ".join(f"w{(i * 37 + j * 11) % 1000}" for j in range(64))})
        for i in range(32)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_word_tokenizer(out_dir: Path, vocab_size: int = 1024) -> Path:
    """The kind of tokenizer the tiny model used to have: a whole-vocabulary word list
    ("w0", "w1", ...). English text encodes to <unk> and decodes to "" — GuideLLM's synthetic
    prompts built with it reach the server empty."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from workloads.models import CHAT_TEMPLATE, SPECIAL_TOKENS

    words = SPECIAL_TOKENS + [f"w{i}" for i in range(vocab_size - len(SPECIAL_TOKENS))]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>",
    )  # fmt: skip
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def word_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_word_tokenizer(tmp_path_factory.mktemp("word-tokenizer"))
