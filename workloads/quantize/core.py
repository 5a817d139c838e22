"""Compress a model with LLM Compressor into a compressed-tensors checkpoint vLLM serves.

Idempotent and safe: the request's fingerprint (scheme, recipe, source model, calibration
set, quality budget) is stored in the output's manifest; the same request again is skipped, a
different checkpoint already at the output is never replaced unless asked, and the new
checkpoint is built in a temporary folder renamed into place only when complete.

Quality: a held-out slice of the calibration documents (never used to calibrate) is read by
the source and the compressed model (`quality.py`); the metrics go into the manifest, and a
checkpoint over the request's quality budget is never published (`QualityRejected`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from workloads.contract import QualityBudget
from workloads.quantize import quality
from workloads.quantize.quality import QualityError
from workloads.templating import render_text

SCHEMES = ("fp8", "int8-w8a8", "w4a16")
NEEDS_CALIBRATION = {"fp8": False, "int8-w8a8": True, "w4a16": True}
MANIFEST = "leanrag-quantize.json"
QUALITY_REFERENCE = "quality-reference.json"  # what the post-deploy gate replays
WEIGHT_SUFFIXES = (".safetensors", ".bin")
# Recipe settings: the LM head stays 16-bit (quality), GPTQ's usual dampening.
RECIPE_SETTINGS = {"ignore": ["lm_head"], "smoothing_strength": 0.8, "dampening_frac": 0.01}


class QuantizeError(Exception):
    """A request that cannot be carried out; the message names the input and the fix."""


class QualityRejected(QuantizeError):
    """The compressed checkpoint lost more quality than the budget allows; not published."""


@dataclass(frozen=True)
class QuantizeRequest:
    model_dir: Path
    output_dir: Path
    scheme: str
    calibration: Path | None = None
    calibration_samples: int = 256
    min_calibration_samples: int = 16
    max_sequence_length: int = 512
    replace: bool = False
    # Quality: None measures nothing (and publishes); otherwise a checkpoint over it is refused.
    quality_budget: QualityBudget | None = None
    quality_passages: int = 32
    scorer: str = "auto"  # auto | transformers | path of a Python interpreter with vLLM
    kv_cache_dtype: str = "auto"  # the serving KV-cache dtype the vLLM scorer uses


@dataclass(frozen=True)
class QuantizeResult:
    output_dir: Path
    skipped: bool
    manifest: dict[str, Any] = field(default_factory=dict)


def recipe_for(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise QuantizeError(f"scheme {scheme!r} is unknown; choose one of {', '.join(SCHEMES)}")
    return render_text(f"recipes/{scheme}.yaml.j2", **RECIPE_SETTINGS)


def quantize(request: QuantizeRequest) -> QuantizeResult:
    """Compress `request.model_dir` with the scheme's recipe into `request.output_dir`."""
    recipe = recipe_for(request.scheme)
    _check_model(request.model_dir)
    texts, held_out = _split_texts(request)
    fingerprint = _fingerprint(request, recipe, texts, held_out)

    existing = _read_manifest(request.output_dir)
    if existing is not None and existing.get("fingerprint") == fingerprint:
        return QuantizeResult(request.output_dir, skipped=True, manifest=existing)
    if request.output_dir.exists() and any(request.output_dir.iterdir()) and not request.replace:
        held = (
            f"a {existing.get('scheme')} checkpoint of {existing.get('source_model')}"
            if existing
            else "files that are not a checkpoint of this tool"
        )
        raise QuantizeError(
            f"{request.output_dir} already holds {held}; choose another output folder, or "
            "pass --replace to overwrite it"
        )

    request.output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{request.output_dir.name}-", dir=request.output_dir.parent)
    )
    try:
        started = time.monotonic()
        _run_oneshot(request, recipe, texts, staging)
        retention = _measure_quality(request, held_out, staging)
        manifest = {
            "scheme": request.scheme,
            "source_model": str(request.model_dir),
            "source_bytes": _weight_bytes(request.model_dir),
            "output_bytes": _weight_bytes(staging),
            "duration_s": round(time.monotonic() - started, 3),
            "calibration": {
                "path": str(request.calibration) if texts else None,
                "samples": len(texts),
                "max_sequence_length": request.max_sequence_length if texts else None,
            },
            "recipe": recipe,
            "random_weights": _random_weights(request.model_dir),
            "versions": _versions(),
            "fingerprint": fingerprint,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "quality": retention,
        }
        manifest["size_ratio"] = round(manifest["output_bytes"] / manifest["source_bytes"], 4)
        if retention.get("violations"):
            rejected = request.output_dir.with_name(f"{request.output_dir.name}.rejected.json")
            rejected.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            raise QualityRejected(
                f"the {request.scheme} checkpoint is over its quality budget and was not "
                f"published: {'; '.join(retention['violations'])} (measured by "
                f"{retention['measured_by']} on {retention['passages']} held-out passages; "
                f"details in {rejected}). Choose a gentler scheme (fp8 or int8-w8a8), more "
                "calibration data, or a larger budget under leanrag:serving.qualityBudget"
            )
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _swap_into_place(staging, request.output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return QuantizeResult(request.output_dir, skipped=False, manifest=manifest)


def _check_model(model_dir: Path) -> None:
    if not (model_dir / "config.json").is_file():
        raise QuantizeError(
            f"{model_dir} has no config.json: point --model at a Hugging Face model folder "
            "(config.json, tokenizer and *.safetensors)"
        )
    if not any(p.suffix in WEIGHT_SUFFIXES for p in model_dir.iterdir()):
        raise QuantizeError(f"{model_dir} holds no weights (*.safetensors): download them first")


def _split_texts(request: QuantizeRequest) -> tuple[list[str], list[str]]:
    """(calibration texts, held-out texts for the quality check): disjoint."""
    needs_texts = NEEDS_CALIBRATION[request.scheme] or request.quality_budget is not None
    if not needs_texts or (request.calibration is None and not NEEDS_CALIBRATION[request.scheme]):
        if request.quality_budget is not None:
            raise QuantizeError(
                "the quality check needs held-out text of your corpus: pass --calibration "
                "(JSONL or a documents folder), or --no-quality-check to publish unmeasured"
            )
        return [], []
    texts = _calibration_texts(request)
    if request.quality_budget is None:
        return _enough(request, texts[: request.calibration_samples]), []
    # Every fifth text, up to the passages wanted, is held out; the rest calibrate.
    held_out = texts[4::5][: request.quality_passages]
    held = set(range(4, 5 * len(held_out), 5))
    rest = [text for index, text in enumerate(texts) if index not in held]
    calibration = rest[: request.calibration_samples] if NEEDS_CALIBRATION[request.scheme] else []
    if NEEDS_CALIBRATION[request.scheme]:
        _enough(request, calibration)
    return calibration, held_out


def _enough(request: QuantizeRequest, texts: list[str]) -> list[str]:
    if len(texts) < request.min_calibration_samples:
        held = " once the quality check's passages are held out" if request.quality_budget else ""
        raise QuantizeError(
            f"calibration set {request.calibration} is too small: {len(texts)} samples, need "
            f"at least {request.min_calibration_samples}{held}; add documents or lower "
            "--min-samples"
        )
    return texts


def _measure_quality(request: QuantizeRequest, held_out: list[str], staging: Path) -> dict:
    if request.quality_budget is None:
        return {"measured": False, "reason": "no quality budget given (--no-quality-check)"}
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(request.model_dir)
    passages = quality.held_out_passages(
        tokenizer, held_out, min(request.max_sequence_length, quality.MAX_PASSAGE_TOKENS)
    )
    if not passages:
        raise QuantizeError(
            f"no held-out passage of {request.calibration} has {quality.MIN_PASSAGE_TOKENS} "
            "tokens or more: the quality check needs longer documents"
        )
    vocab = AutoConfig.from_pretrained(request.model_dir).vocab_size
    top_k = quality.top_k_for(vocab)
    scorer = quality.default_scorer() if request.scorer == "auto" else request.scorer
    try:
        source, label = quality.score(
            request.model_dir, passages, top_k, scorer, request.kv_cache_dtype
        )
        compressed, _ = quality.score(staging, passages, top_k, scorer, request.kv_cache_dtype)
    except QualityError as error:
        raise QuantizeError(str(error)) from None
    metrics = quality.compare(source, compressed, top_k, vocab)
    reference = quality.reference(passages, compressed, label)
    (staging / QUALITY_REFERENCE).write_text(json.dumps(reference) + "\n")
    return {
        "measured": True,
        "measured_by": label,
        **metrics,
        "budget": quality.budget_dict(request.quality_budget),
        "violations": request.quality_budget.violations(metrics),
    }


def _calibration_texts(request: QuantizeRequest) -> list[str]:
    path = request.calibration
    if path is None:
        raise QuantizeError(
            f"{request.scheme} needs calibration data: pass --calibration with a JSONL file "
            '({"text": ...} per line) or a folder of documents (e.g. the corpus you ingest)'
        )
    if not path.exists():
        raise QuantizeError(f"calibration set {path} does not exist")
    if path.is_dir():
        texts = [
            paragraph.strip()
            for document in sorted(path.rglob("*"))
            if document.suffix in (".md", ".txt", ".html") and document.is_file()
            for paragraph in document.read_text(errors="replace").split("\n\n")
            if len(paragraph.split()) >= 8
        ]
    elif path.suffix == ".jsonl":
        texts = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                texts.append(str(json.loads(line)["text"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise QuantizeError(f'{path}:{number}: expected {{"text": ...}} per line') from None
    else:
        raise QuantizeError(f"calibration set {path}: use a .jsonl file or a folder of documents")
    return texts


def _run_oneshot(request: QuantizeRequest, recipe: str, texts: list[str], out: Path) -> None:
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(request.model_dir, dtype="auto")
    tokenizer = AutoTokenizer.from_pretrained(request.model_dir)
    dataset = None
    if texts:
        encoded = tokenizer(texts, truncation=True, max_length=request.max_sequence_length)
        dataset = Dataset.from_dict(
            {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        )
    oneshot(
        model=model,
        tokenizer=tokenizer,
        recipe=recipe,
        dataset=dataset,
        num_calibration_samples=len(texts) or 1,
        max_seq_length=request.max_sequence_length,
        output_dir=str(out),
        log_dir=None,
    )
    config = json.loads((out / "config.json").read_text())
    if "quantization_config" not in config:
        raise QuantizeError("LLM Compressor wrote no quantization_config: the recipe did nothing")
    if (request.model_dir / "leanrag.json").is_file():
        shutil.copy2(request.model_dir / "leanrag.json", out / "leanrag.json")


def _fingerprint(
    request: QuantizeRequest, recipe: str, texts: list[str], held_out: list[str]
) -> str:
    model_dir = request.model_dir
    source = {
        "config": hashlib.sha256((model_dir / "config.json").read_bytes()).hexdigest(),
        # Weights are identified by name and size: hashing tens of GB on every run is not
        # worth it, and a re-download of the same revision has the same names and sizes.
        "weights": sorted(
            (p.name, p.stat().st_size) for p in model_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES
        ),
    }
    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {
                "scheme": request.scheme,
                "recipe": recipe,
                "source": source,
                "max_sequence_length": request.max_sequence_length if texts else None,
                "quality_budget": quality.budget_dict(request.quality_budget),
                "kv_cache_dtype": request.kv_cache_dtype if request.quality_budget else None,
            },
            sort_keys=True,
        ).encode()
    )
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    digest.update(b"held-out")
    for text in held_out:
        digest.update(hashlib.sha256(text.encode()).digest())
    return digest.hexdigest()


def _read_manifest(output_dir: Path) -> dict[str, Any] | None:
    path = output_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _swap_into_place(staging: Path, output_dir: Path) -> None:
    backup = None
    if output_dir.exists():
        backup = output_dir.with_name(f".{output_dir.name}-previous")
        shutil.rmtree(backup, ignore_errors=True)
        output_dir.rename(backup)
    staging.rename(output_dir)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def _weight_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)


def _random_weights(model_dir: Path) -> bool:
    marker = model_dir / "leanrag.json"
    return bool(marker.is_file() and json.loads(marker.read_text()).get("random_weights"))


def _versions() -> dict[str, str]:
    names = ("llmcompressor", "compressed-tensors", "transformers", "torch")
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found
