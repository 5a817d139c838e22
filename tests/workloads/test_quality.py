"""Quality retention on a tiny model trained here (real deltas), measured through vLLM's CPU
kernels; the budget refuses a checkpoint; the gate's live check catches a swapped one."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from infra.catalog import MODEL_PRESETS
from infra.local import processes
from infra.local.stack import SAMPLE_CORPUS, model_cache
from workloads.benchmark.__main__ import main as gate_main
from workloads.benchmark.quality_check import live_quality, load_reference
from workloads.contract import DEFAULT_QUALITY_BUDGETS, LIVE_TOLERANCE_NATS
from workloads.models import TrainingRecipe, build_tiny_llama, trained_tiny_llama
from workloads.quantize import QuantizeRequest, quantize
from workloads.quantize.__main__ import main as quantize_main

VLLM_PYTHON = os.environ.get("LEANRAG_VLLM_PYTHON", "")
needs_vllm = pytest.mark.skipif(
    not Path(VLLM_PYTHON).is_file(),
    reason="set LEANRAG_VLLM_PYTHON to the vLLM CPU environment's python (make test does)",
)
ARCHITECTURE = MODEL_PRESETS["tiny-trained-llama"].architecture


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local stack's model: trained once per content hash (minutes), then copied."""
    out = tmp_path_factory.mktemp("trained") / "model"
    info = trained_tiny_llama(out, ARCHITECTURE, TrainingRecipe(), model_cache())
    # Trained means something: far below the 4,096 of a uniform guess on text never seen.
    assert not info["random_weights"]
    assert info["trained"]["held_out_perplexity"] < 400
    return out


@pytest.fixture(scope="module")
def int8(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "checkpoint"
    budget = DEFAULT_QUALITY_BUDGETS["int8-w8a8"]
    request = QuantizeRequest(
        trained, out, "int8-w8a8", calibration=SAMPLE_CORPUS, quality_budget=budget,
        scorer=VLLM_PYTHON or "transformers",
    )  # fmt: skip
    return quantize(request).output_dir


@needs_vllm
def test_quality_is_measured_through_vllm_and_recorded(int8: Path) -> None:
    manifest = json.loads((int8 / "leanrag-quantize.json").read_text())
    quality = manifest["quality"]
    assert quality["measured"] and quality["measured_by"].startswith("vLLM")
    assert quality["passages"] >= 8 and quality["tokens"] > 500
    assert not quality["kl_exact"] and quality["top_k"] == 256  # a lower bound of the KL
    # INT8 weights and activations move the distribution a little, not nothing, not a lot.
    assert 0 < quality["kl_nats_per_token"] < 0.05
    assert 0.9 < quality["top1_agreement"] < 1
    # Out of its training domain (pydoc text vs the enterprise sample corpus), still far below
    # the vocabulary size a guessing model would score.
    assert quality["perplexity_source"] < ARCHITECTURE.vocab_size / 2
    assert quality["violations"] == []
    reference = load_reference(int8 / "quality-reference.json")
    assert len(reference["passages"]) == quality["passages"]
    # Held out: no passage was used to calibrate.
    assert manifest["calibration"]["samples"] > 0


def test_over_budget_checkpoint_is_not_published(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "w4a16"
    code = quantize_main([
        "--model", str(trained), "--output", str(out), "--scheme", "w4a16",
        "--calibration", str(SAMPLE_CORPUS), "--scorer", "transformers",
        "--max-kl", "1e-7",
    ])  # fmt: skip
    assert code == 4
    error = capsys.readouterr().err
    assert "kl_nats_per_token" in error and "not published" in error
    assert "transformers" in error  # the path that measured it is named
    assert not out.exists()  # never published, no half-written folder
    rejected = json.loads((tmp_path / "w4a16.rejected.json").read_text())
    assert rejected["quality"]["violations"]
    assert [p.name for p in tmp_path.iterdir()] == ["w4a16.rejected.json"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(model: Path, log: Path) -> tuple[processes.Server, str]:
    port = _free_port()
    server = processes.start(
        "vllm",
        [VLLM_PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
         "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
         "--max-model-len", "1024", "--max-num-seqs", "4"],
        log,
        env={"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    server.wait_until_ready(f"{url}/health", 600)
    return server, url


@needs_vllm
def test_live_check_passes_the_published_checkpoint_and_fails_a_swapped_one(
    int8: Path, trained: Path, tmp_path: Path
) -> None:
    reference = load_reference(int8 / "quality-reference.json")
    server, url = _serve(int8, tmp_path / "served.log")
    try:
        same = live_quality(url, "tiny", reference, LIVE_TOLERANCE_NATS)
    finally:
        server.stop()
    assert same.passed, same
    assert same.token_count_mismatches == 0
    assert same.mean_abs_delta_nats < LIVE_TOLERANCE_NATS / 4

    # The same architecture and tokenizer with random weights: a wrong checkpoint.
    swapped = build_tiny_llama(tmp_path / "random", ARCHITECTURE)
    server, url = _serve(swapped, tmp_path / "swapped.log")
    plan = {"gate": _gate_plan(), "model": {"random_weights": False}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    try:
        code = gate_main([
            "--plan", str(tmp_path / "plan.json"), "--target", url, "--tokenizer", str(trained),
            "--quality-reference", str(int8 / "quality-reference.json"),
            "--out", str(tmp_path / "gate"), "--skip-capacity-search",
        ])  # fmt: skip
    finally:
        server.stop()
    assert code == 1
    result = json.loads((tmp_path / "gate" / "gate.json").read_text())
    assert result["verdict"] == "fail" and result["exit_code"] == 1
    assert "not the checkpoint the quantize Job measured" in result["reason"]
    report = (tmp_path / "gate" / "gate.md").read_text()
    assert "## Live quality check" in report
    assert result["live_quality"]["mean_abs_delta_nats"] > 10 * LIVE_TOLERANCE_NATS


def _gate_plan() -> dict:
    return {
        "ttft_p95_ms": 1000, "itl_p95_ms": 40, "min_throughput_rps": 0.1, "max_error_rate": 0.05,
        "concurrency": 2, "prompt_tokens": 128, "output_tokens": 16, "shared_prefix_tokens": 0,
        "predicted_requests_per_s": 1.0, "predicted_output_tokens_per_s": 16.0,
        "capacity_tolerance": 0.3, "predicted_e2e_ms": 1000, "capacity_concurrency": 2,
        "capacity_requests_per_s": 1.0, "capacity_limited_by": "itl", "shape_tolerance": 0.05,
        "min_measured_requests": 20, "cost_per_hour_usd": 0.1,
    }  # fmt: skip
