"""Tiny real-architecture models with random weights, built offline (no hub, no download).

Speed and memory per token follow the architecture; answers are meaningless. Every output
that uses one says so (`random_weights: true` in the model folder's `leanrag.json`).
"""

from __future__ import annotations

import json
from pathlib import Path

from infra.catalog import ModelArchitecture

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
# A chat template so OpenAI-style chat endpoints work against the tiny model.
CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}: {{ message['content'] }}</s>"
    "{% endfor %}{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def build_tiny_llama(out_dir: Path, architecture: ModelArchitecture, seed: int = 0) -> Path:
    """Write a LlamaForCausalLM with random weights and a whole-vocabulary word tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    # Every id the model can emit decodes to a word: random outputs stay readable text.
    words = SPECIAL_TOKENS + [f"w{i}" for i in range(architecture.vocab_size - len(SPECIAL_TOKENS))]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
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
        json.dumps({"random_weights": True, "architecture": architecture.__dict__}, indent=2)
    )
    return out_dir


def main(argv: list[str] | None = None) -> int:
    """`python -m workloads.models --preset NAME --out DIR`: build a catalog preset's model."""
    import argparse

    from infra.catalog import MODEL_PRESETS

    parser = argparse.ArgumentParser(prog="python -m workloads.models", description=main.__doc__)
    parser.add_argument("--preset", required=True, help="a random-weight preset of the catalog")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    preset = MODEL_PRESETS.get(args.preset)
    if preset is None or not preset.random_weights:
        names = sorted(n for n, p in MODEL_PRESETS.items() if p.random_weights)
        parser.error(f"--preset {args.preset}: use one of {', '.join(names)}")
    build_tiny_llama(args.out, preset.architecture, args.seed)
    print(f"{args.preset} (random weights) written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
