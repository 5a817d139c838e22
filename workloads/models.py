"""Tiny real-architecture models, built offline (no hub, no download).

Two kinds. *Random weights*: speed and memory per token follow the architecture, answers are
meaningless; every output that uses one says so (`random_weights: true` in the model folder's
`leanrag.json`). *Trained*: the same architecture trained for a few minutes on CPU on the
text below (a held-out slice of it measures the result), so quantization's quality deltas
are real; built once per content hash and cached.

The tokenizer is a byte-level BPE trained on text that ships with Python itself
(`pydoc_data.topics`, ≈ 465k characters of English), so any text — GuideLLM's synthetic
prompts, retrieved RAG context, documents — has its real length in tokens. A word-level
vocabulary would turn unknown words into `<unk>`, which decodes to nothing: the benchmark's
prompts then reached the server empty.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Protocol

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


def training_text(held_out: bool | None = None) -> str:
    """English text available on every Python installation, with no download.

    `held_out=False`: the topics a trained model learns from; `True`: every tenth topic (in
    name order), never trained on; `None`: all of it (what the tokenizer is fitted on).
    """
    from pydoc_data.topics import topics

    names = sorted(topics)
    if held_out is not None:
        names = [name for index, name in enumerate(names) if (index % 10 == 0) == held_out]
    return "\n".join(topics[name] for name in names)


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
    _write_tiny_llama(out_dir, architecture, seed)
    return out_dir


@dataclass(frozen=True)
class TrainingRecipe:
    """How a tiny model is trained: deterministic for a given torch build and seed."""

    steps: int = 300
    batch: int = 16
    sequence: int = 128
    learning_rate: float = 3e-3
    warmup_steps: int = 30
    seed: int = 0


def trained_model_key(architecture: Architecture, recipe: TrainingRecipe) -> str:
    """Content hash of everything that decides the trained weights (cache key)."""
    blob = json.dumps(
        {
            "architecture": {k: getattr(architecture, k) for k in Architecture.__annotations__},
            "recipe": asdict(recipe),
            "text": hashlib.sha256(training_text().encode()).hexdigest(),
            "format": 1,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def trained_tiny_llama(
    out_dir: Path, architecture: Architecture, recipe: TrainingRecipe, cache: Path | None = None
) -> dict:
    """A tiny Llama trained on `training_text(held_out=False)`, copied to `out_dir`.

    With `cache`, the model is trained once per content hash (`trained_model_key`) into
    `cache/tiny-trained-<key>` (built in a temporary folder, renamed when complete) and
    copied from there afterwards. Returns the model's `leanrag.json`.
    """
    if cache is None:
        return _train(out_dir, architecture, recipe)
    cached = cache / f"tiny-trained-{trained_model_key(architecture, recipe)}"
    if not (cached / "leanrag.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{cached.name}-", dir=cache))
        try:
            _train(staging, architecture, recipe)
            if not cached.exists():
                staging.rename(cached)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if out_dir.resolve() != cached.resolve():
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(cached, out_dir)
    return json.loads((out_dir / "leanrag.json").read_text())


def _train(out_dir: Path, architecture: Architecture, recipe: TrainingRecipe) -> dict:
    import torch

    started = time.monotonic()
    model, tokenizer = _write_tiny_llama(out_dir, architecture, recipe.seed, save=False)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    train = torch.tensor(tokenizer.encode(training_text(held_out=False)).ids)
    held = torch.tensor(tokenizer.encode(training_text(held_out=True)).ids)
    model = model.float().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)
    for step in range(recipe.steps):
        warm = min(1.0, (step + 1) / recipe.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * step / recipe.steps))
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate * warm * cosine
        last = len(train) - recipe.sequence
        starts = torch.randint(0, last, (recipe.batch,), generator=generator)
        batch = torch.stack([train[int(i) : int(i) + recipe.sequence] for i in starts])
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model = model.eval().to(torch.bfloat16)
    with torch.no_grad():
        windows = held[: (len(held) // recipe.sequence) * recipe.sequence].view(-1, recipe.sequence)
        held_loss = float(model(windows[:64], labels=windows[:64]).loss)
    model.save_pretrained(out_dir)
    info = {
        "random_weights": False,
        "tokenizer": "byte-level BPE trained on pydoc_data.topics",
        "architecture": {k: getattr(architecture, k) for k in Architecture.__annotations__},
        "trained": {
            "text": "pydoc_data.topics (every tenth topic held out)",
            "recipe": asdict(recipe),
            "train_tokens": len(train),
            "final_train_loss": round(float(loss.detach()), 4),
            "held_out_perplexity": round(math.exp(held_loss), 2),
            "seconds": round(time.monotonic() - started, 1),
            "torch": torch.__version__,
            "key": trained_model_key(architecture, recipe),
        },
    }
    (out_dir / "leanrag.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _write_tiny_llama(
    out_dir: Path, architecture: Architecture, seed: int, save: bool = True
) -> tuple[Any, Tokenizer]:
    """A random-init LlamaForCausalLM and its tokenizer; with `save`, written and labelled."""
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
    if not save:
        return model, tokenizer
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
    return model, tokenizer


def main(argv: list[str] | None = None) -> int:
    """`python -m workloads.models --architecture JSON --out DIR [--train]`: build a tiny Llama
    of that architecture (the fields of the plan's model architecture), random weights or
    trained (cached by content hash in --cache)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m workloads.models", description=main.__doc__)
    parser.add_argument("--architecture", required=True, help="JSON object of the architecture")
    parser.add_argument("--name", default="tiny model", help="for the message only")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", action="store_true", help="train it (minutes on CPU)")
    parser.add_argument("--steps", type=int, default=TrainingRecipe.steps)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("LEANRAG_MODEL_CACHE", ".cache/models")),
        help="where trained models are kept by content hash",
    )
    args = parser.parse_args(argv)
    try:
        fields = json.loads(args.architecture)
        architecture = SimpleNamespace(**{k: fields[k] for k in Architecture.__annotations__})
    except (ValueError, TypeError, KeyError) as error:
        needed = ", ".join(Architecture.__annotations__)
        parser.error(f"--architecture: a JSON object with {needed} is needed ({error})")
    if args.train:
        recipe = TrainingRecipe(steps=args.steps, seed=args.seed)
        info = trained_tiny_llama(args.out, architecture, recipe, args.cache)
        trained = info["trained"]
        print(
            f"{args.name} (trained {recipe.steps} steps, held-out perplexity "
            f"{trained['held_out_perplexity']}) written to {args.out}"
        )
        return 0
    build_tiny_llama(args.out, architecture, args.seed)
    print(f"{args.name} (random weights) written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
