"""Real LLM Compressor on CPU, on a tiny random-weight Llama built in the test."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from infra.catalog import derived_parameter_count
from infra.sizing import weight_bytes
from tests.workloads.conftest import TINY
from workloads.quantize import QuantizeError, QuantizeRequest, quantize
from workloads.quantize.__main__ import main

EXPECTED_FORMAT = {
    "fp8": ("float-quantized", 8),
    "int8-w8a8": ("int-quantized", 8),
    "w4a16": ("pack-quantized", 4),
}


@pytest.fixture(scope="module")
def checkpoints(tiny_model: Path, calibration_file: Path, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        scheme: quantize(
            QuantizeRequest(tiny_model, root / scheme, scheme, calibration=calibration_file)
        ).output_dir
        for scheme in EXPECTED_FORMAT
    }


@pytest.mark.parametrize("scheme", sorted(EXPECTED_FORMAT))
def test_writes_a_compressed_tensors_checkpoint(checkpoints, tiny_model: Path, scheme: str) -> None:
    out = checkpoints[scheme]
    config = json.loads((out / "config.json").read_text())
    quantization = config["quantization_config"]
    assert quantization["quant_method"] == "compressed-tensors"
    group = quantization["config_groups"]["group_0"]
    assert (group["format"], group["weights"]["num_bits"]) == EXPECTED_FORMAT[scheme]
    assert "lm_head" in quantization["ignore"]
    assert (out / "tokenizer.json").is_file()
    manifest = json.loads((out / "leanrag-quantize.json").read_text())
    assert manifest["scheme"] == scheme
    assert manifest["source_model"] == str(tiny_model)
    assert manifest["output_bytes"] < manifest["source_bytes"]
    assert manifest["duration_s"] > 0
    assert manifest["random_weights"] is True
    assert set(manifest["versions"]) == {
        "llmcompressor",
        "compressed-tensors",
        "transformers",
        "torch",
    }
    assert manifest["calibration"]["samples"] == (0 if scheme == "fp8" else 32)


@pytest.mark.parametrize("scheme", sorted(EXPECTED_FORMAT))
def test_size_ratio_matches_the_sizing_model(checkpoints, scheme: str) -> None:
    manifest = json.loads((checkpoints[scheme] / "leanrag-quantize.json").read_text())
    architecture = replace(TINY, parameter_count=derived_parameter_count(TINY))
    predicted = weight_bytes(architecture, scheme) / weight_bytes(architecture, "none")
    assert manifest["size_ratio"] == pytest.approx(predicted, rel=0.05)


def test_same_request_is_skipped(checkpoints, tiny_model: Path, calibration_file: Path) -> None:
    out = checkpoints["w4a16"]
    before = (out / "model.safetensors").stat().st_mtime_ns
    again = quantize(QuantizeRequest(tiny_model, out, "w4a16", calibration=calibration_file))
    assert again.skipped
    assert (out / "model.safetensors").stat().st_mtime_ns == before


def test_different_checkpoint_is_never_overwritten_silently(
    tiny_model: Path, calibration_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ckpt"
    quantize(QuantizeRequest(tiny_model, out, "fp8"))
    with pytest.raises(QuantizeError, match="already holds a fp8 checkpoint"):
        quantize(QuantizeRequest(tiny_model, out, "w4a16", calibration=calibration_file))
    assert json.loads((out / "leanrag-quantize.json").read_text())["scheme"] == "fp8"
    replaced = quantize(
        QuantizeRequest(tiny_model, out, "w4a16", calibration=calibration_file, replace=True)
    )
    assert replaced.manifest["scheme"] == "w4a16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging or backup left


def test_foreign_files_are_not_overwritten(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(QuantizeError, match="not a checkpoint of this tool"):
        quantize(QuantizeRequest(tiny_model, tmp_path, "fp8"))
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_documents_folder_as_calibration(tiny_model: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    paragraphs = "\n\n".join(
        " ".join(f"w{(i * 13 + j) % 1000}" for j in range(20)) for i in range(20)
    )
    (corpus / "handbook.md").write_text(paragraphs)
    result = quantize(
        QuantizeRequest(tiny_model, tmp_path / "out", "int8-w8a8", calibration=corpus)
    )
    assert result.manifest["calibration"]["samples"] == 20


BAD = [
    ("unknown scheme", {"scheme": "int3"}, "choose one of fp8, int8-w8a8, w4a16"),
    ("no calibration", {"scheme": "w4a16", "calibration": None}, "needs calibration data"),
    ("missing calibration", {"calibration": Path("/nonexistent.jsonl")}, "does not exist"),
    ("too small", {"min_calibration_samples": 64}, "too small: 32 samples, need at least 64"),
]


@pytest.mark.parametrize(("changes", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_requests_fail_clearly_and_write_nothing(
    tiny_model: Path, calibration_file: Path, tmp_path: Path, changes: dict, message: str
) -> None:
    request = QuantizeRequest(tiny_model, tmp_path / "out", "w4a16", calibration=calibration_file)
    with pytest.raises(QuantizeError, match=message.replace("(", r"\(")):
        quantize(replace(request, **changes))
    assert list(tmp_path.iterdir()) == []


def test_model_folder_without_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    with pytest.raises(QuantizeError, match=r"has no config\.json"):
        quantize(QuantizeRequest(tmp_path / "model", tmp_path / "out", "fp8"))
    assert not (tmp_path / "out").exists()


def test_malformed_jsonl_names_the_line(tiny_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nnot json\n')
    with pytest.raises(QuantizeError, match=r"bad.jsonl:2"):
        quantize(QuantizeRequest(tiny_model, tmp_path / "out", "w4a16", calibration=bad))


def test_cli_exit_codes(tiny_model: Path, tmp_path: Path, capsys) -> None:
    fp8 = ["--model", str(tiny_model), "--output", str(tmp_path / "o"), "--scheme", "fp8"]
    # The quality check is on by default and needs held-out text of the corpus.
    assert main(fp8) == 2
    assert "--calibration" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main([*fp8, "--no-quality-check"]) == 0
    assert "fp8 checkpoint at" in capsys.readouterr().out
    assert main(["--model", str(tmp_path), "--output", str(tmp_path / "p"), "--scheme", "fp8"]) == 2
    assert "has no config.json" in capsys.readouterr().err
