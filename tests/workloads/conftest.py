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
