"""The GPU runs' BPE tokenizer (benchmarks/gpu/make_bpe_tokenizer.py) must serve chat
completions: the gate sends them, and vLLM answers 400 to every one when the tokenizer has no
chat template (a whole H200 level errored that way)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from workloads.benchmark.runner import chat_template_tokens

REPO = Path(__file__).resolve().parents[2]
PYTHON = os.environ.get("LEANRAG_LLAMA_STACK_PYTHON")  # the env that ships cl100k_base offline
pytestmark = pytest.mark.skipif(
    not PYTHON, reason="LEANRAG_LLAMA_STACK_PYTHON not set (make test sets it)"
)
SOURCE_TEMPLATE = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}"


def _build(tmp_path: Path, source_config: dict | None) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"vocab_size": 100_352}))
    if source_config is not None:
        (model / "tokenizer_config.json").write_text(json.dumps(source_config))
    out = tmp_path / "bpe"
    subprocess.run(
        [PYTHON, "-m", "benchmarks.gpu.make_bpe_tokenizer", str(model), str(out)],
        cwd=REPO, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out


def test_the_source_models_chat_template_is_kept(tmp_path: Path) -> None:
    out = _build(tmp_path, {"chat_template": SOURCE_TEMPLATE})
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template == SOURCE_TEMPLATE
    assert len(tokenizer) == 100_352  # cl100k_base padded to the model's vocabulary
    assert chat_template_tokens(str(out)) > 0


def test_a_model_without_a_chat_template_gets_a_plain_one(tmp_path: Path) -> None:
    out = _build(tmp_path, None)
    text = AutoTokenizer.from_pretrained(out).apply_chat_template(
        [{"role": "user", "content": "hello"}], add_generation_prompt=True, tokenize=False
    )
    assert text == "<s>user: hello\nassistant:"
    assert chat_template_tokens(str(out)) > 0
