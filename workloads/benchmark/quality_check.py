"""The gate's live quality check: replay the quantize Job's held-out passages against the served
endpoint and compare each token's log-probability with what the Job recorded for the
checkpoint it published (`quality-reference.json` beside the checkpoint).

A different checkpoint, a different tokenizer or a KV-cache setting that harms the model moves
these numbers far more than kernels and batch shapes do: the check fails the release.
"""

from __future__ import annotations

import json
import math
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workloads.benchmark.runner import EndpointDown


class QualityReferenceError(ValueError):
    """The reference file is missing or unreadable (the message names it and the fix)."""


@dataclass(frozen=True)
class LiveQuality:
    passages: int
    tokens: int
    # Passages whose token count differs from the Job's (another tokenizer or template).
    token_count_mismatches: int
    mean_abs_delta_nats: float
    perplexity_reference: float
    perplexity_served: float
    tolerance_nats: float
    measured_by: str  # what measured the reference

    @property
    def passed(self) -> bool:
        return self.token_count_mismatches == 0 and self.mean_abs_delta_nats <= self.tolerance_nats


def load_reference(path: Path) -> dict[str, Any]:
    try:
        reference = json.loads(path.read_text())
        passages = reference["passages"]
    except (OSError, ValueError, KeyError) as error:
        raise QualityReferenceError(
            f"quality reference {path} is unreadable ({error}): point --quality-reference at "
            "the quality-reference.json the quantize Job wrote beside the checkpoint"
        ) from None
    if not passages:
        raise QualityReferenceError(f"quality reference {path} holds no passage")
    return reference


def live_quality(
    target: str,
    model: str,
    reference: dict[str, Any],
    tolerance_nats: float,
    insecure: bool = False,
    timeout_s: float = 120.0,
) -> LiveQuality:
    """Score every reference passage on the endpoint (prompt log-probabilities) and compare."""
    mismatches = tokens = 0
    delta_sum = nll_reference = nll_served = 0.0
    for passage in reference["passages"]:
        served = prompt_logprobs(target, model, passage["text"], insecure, timeout_s)
        recorded = passage["token_logprobs"]
        if len(served) != len(recorded):
            mismatches += 1
            continue
        tokens += len(served)
        delta_sum += sum(abs(a - b) for a, b in zip(served, recorded, strict=True))
        nll_reference -= sum(recorded)
        nll_served -= sum(served)
    scored = max(tokens, 1)
    return LiveQuality(
        passages=len(reference["passages"]),
        tokens=tokens,
        token_count_mismatches=mismatches,
        mean_abs_delta_nats=delta_sum / scored if tokens else math.inf,
        perplexity_reference=math.exp(nll_reference / scored),
        perplexity_served=math.exp(nll_served / scored),
        tolerance_nats=tolerance_nats,
        measured_by=str(reference.get("measured_by", "unknown")),
    )


def prompt_logprobs(
    target: str, model: str, text: str, insecure: bool = False, timeout_s: float = 120.0
) -> list[float]:
    """The served model's log-probability of each prompt token after the first (vLLM's
    `prompt_logprobs` extension of /v1/completions)."""
    body = json.dumps(
        {
            "model": model,
            "prompt": text,
            "max_tokens": 1,
            "temperature": 0,
            "prompt_logprobs": 0,
        }
    ).encode()
    request = urllib.request.Request(
        f"{target.rstrip('/')}/v1/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    context = ssl._create_unverified_context() if insecure else None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as reply:
            answer = json.load(reply)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise EndpointDown(f"{target} did not score a quality passage: {error}") from None
    rows = answer["choices"][0].get("prompt_logprobs")
    if not rows:
        raise EndpointDown(
            f"{target} returned no prompt_logprobs: the live quality check needs vLLM's "
            "/v1/completions prompt_logprobs extension"
        )
    # The first token has no prediction; with prompt_logprobs=0 each later position lists
    # only the prompt token itself.
    return [float(next(iter(row.values()))["logprob"]) for row in rows[1:]]
