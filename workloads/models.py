"""Tiny real-architecture models with random weights, built offline (no hub, no download).

Speed and memory per token follow the architecture; answers are meaningless. Every output
that uses one says so (`random_weights: true` in the model folder's `leanrag.json`).

The tokenizer is a byte-level BPE trained on text that ships with Python itself
(`pydoc_data.topics`, ≈ 465k characters of English), so any text — GuideLLM's synthetic
prompts, retrieved RAG context, documents — has its real length in tokens. A word-level
vocabulary would turn unknown words into `<unk>`, which decodes to nothing: the benchmark's
prompts then reached the server empty.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tokenizers import Tokenizer


class Architecture(Protocol):
    """What a tiny model is built from (the plan's `ModelArchitecture`, or its JSON)."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_context_tokens: int
    tie_word_embeddings: bool


SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
# A chat template so OpenAI-style chat endpoints work against the tiny model.
CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}: {{ message['content'] }}</s>"
    "{% endfor %}{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def training_text() -> str:
    """English text available on every Python installation, with no download."""
    from pydoc_data.topics import topics

    return "\n".join(topics[name] for name in sorted(topics))


def train_bpe_tokenizer(vocab_size: int) -> Tokenizer:
    """A byte-level BPE of exactly `vocab_size` ids (specials first), trained deterministically.

    Every id the model can emit decodes to bytes, and every input text encodes without
    unknown tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([training_text()], trainer)
    if tokenizer.get_vocab_size() != vocab_size:
        raise ValueError(
            f"the BPE training text yields {tokenizer.get_vocab_size()} ids, not the model's "
            f"{vocab_size}: choose a vocab_size between 260 and that"
        )
    return tokenizer


def build_tiny_llama(out_dir: Path, architecture: Architecture, seed: int = 0) -> Path:
    """Write a LlamaForCausalLM with random weights and a byte-level BPE tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_bpe_tokenizer(architecture.vocab_size)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)

    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=architecture.hidden_size,
        intermediate_size=architecture.intermediate_size,
        num_hidden_layers=architecture.num_layers,
        num_attention_heads=architecture.num_attention_heads,
        num_key_value_heads=architecture.num_kv_heads,
        head_dim=architecture.head_dim,
        vocab_size=architecture.vocab_size,
        max_position_embeddings=architecture.max_context_tokens,
        tie_word_embeddings=architecture.tie_word_embeddings,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out_dir)
    (out_dir / "leanrag.json").write_text(
        json.dumps(
            {
                "random_weights": True,
                "tokenizer": "byte-level BPE trained on pydoc_data.topics",
                "architecture": dict(vars(architecture)),
            },
            indent=2,
        )
    )
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """`python -m workloads.models --architecture JSON --out DIR`: build a tiny random-weight
    Llama of that architecture (the fields of the plan's model architecture)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m workloads.models", description=main.__doc__)
    parser.add_argument("--architecture", required=True, help="JSON object of the architecture")
    parser.add_argument("--name", default="tiny model", help="for the message only")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        fields = json.loads(args.architecture)
        architecture = SimpleNamespace(**{k: fields[k] for k in Architecture.__annotations__})
    except (ValueError, TypeError, KeyError) as error:
        needed = ", ".join(Architecture.__annotations__)
        parser.error(f"--architecture: a JSON object with {needed} is needed ({error})")
    build_tiny_llama(args.out, architecture, args.seed)
    print(f"{args.name} (random weights) written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
