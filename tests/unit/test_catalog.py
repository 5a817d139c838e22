"""The catalog's published facts agree with the architecture they describe."""

from __future__ import annotations

import pytest

from infra.catalog import ACCELERATORS, MODEL_PRESETS, derived_parameter_count

REQUIRED_PRESETS = {
    "llama-3.1-8b-instruct",
    "llama-3.1-70b-instruct",
    "qwen2.5-14b-instruct",
    "phi-3-mini-128k-instruct",
    "mistral-7b-instruct",
}


def test_the_five_required_presets_exist() -> None:
    assert set(MODEL_PRESETS) >= REQUIRED_PRESETS


@pytest.mark.parametrize("name", sorted(MODEL_PRESETS))
def test_parameter_count_matches_the_architecture(name: str) -> None:
    architecture = MODEL_PRESETS[name].architecture
    derived = derived_parameter_count(architecture)
    # Qwen2.5 carries q/k/v biases (48 layers × 7168) that the bias-free formula leaves out.
    assert abs(derived - architecture.parameter_count) <= 48 * 7168


@pytest.mark.parametrize("name", sorted(MODEL_PRESETS))
def test_attention_geometry_is_consistent(name: str) -> None:
    architecture = MODEL_PRESETS[name].architecture
    assert architecture.num_attention_heads % architecture.num_kv_heads == 0
    assert architecture.num_attention_heads * architecture.head_dim == architecture.hidden_size


def test_only_the_tiny_local_model_is_random() -> None:
    assert [p.name for p in MODEL_PRESETS.values() if p.random_weights] == ["tiny-random-llama"]


def test_fp8_capability_follows_the_hardware_generation() -> None:
    fp8 = {name for name, a in ACCELERATORS.items() if "fp8" in a.quantizations and a.is_gpu}
    assert fp8 == {"H100-80GB", "H200", "L4", "L40S"}
    assert not ACCELERATORS["A10G"].fp8_kv_cache
    assert ACCELERATORS["H100-80GB"].fp8_kv_cache
