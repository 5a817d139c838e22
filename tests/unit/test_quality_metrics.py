"""The quality-retention arithmetic: KL on top-k lists, perplexity, agreement, the budget."""

from __future__ import annotations

import math
import random

import pytest

from workloads.contract import DEFAULT_QUALITY_BUDGETS, QualityBudget
from workloads.quantize.quality import Scores, coarse_kl, compare


def distribution(rng: random.Random, size: int, sharpness: float = 3.0) -> dict[int, float]:
    logits = [rng.gauss(0, sharpness) for _ in range(size)]
    top = max(logits)
    norm = top + math.log(sum(math.exp(x - top) for x in logits))
    return {token: x - norm for token, x in enumerate(logits)}


def exact_kl(p: dict[int, float], q: dict[int, float]) -> float:
    return sum(math.exp(p[t]) * (p[t] - q[t]) for t in p)


def top(logprobs: dict[int, float], k: int) -> dict[int, float]:
    return dict(sorted(logprobs.items(), key=lambda item: -item[1])[:k])


def test_kl_is_exact_on_whole_distributions_and_a_lower_bound_on_top_k() -> None:
    rng = random.Random(7)
    for _ in range(50):
        p = distribution(rng, 64)
        q = {t: lp + rng.gauss(0, 0.3) for t, lp in p.items()}
        norm = math.log(sum(math.exp(v) for v in q.values()))
        q = {t: v - norm for t, v in q.items()}
        exact = exact_kl(p, q)
        assert coarse_kl(p, q) == pytest.approx(exact, rel=1e-9, abs=1e-12)
        truncated = coarse_kl(top(p, 8), top(q, 8))
        assert 0 <= truncated <= exact + 1e-12


def test_identical_models_retain_everything_and_a_worse_one_shows_it() -> None:
    rng = random.Random(3)
    dists = [distribution(rng, 32) for _ in range(40)]
    following = [max(d, key=d.__getitem__) for d in dists]  # each model's likeliest token
    same = Scores([d[t] for d, t in zip(dists, following, strict=True)], dists)
    metrics = compare([same], [same], top_k=32, vocab=32)
    assert metrics["kl_nats_per_token"] == 0
    assert metrics["top1_agreement"] == 1
    assert metrics["perplexity_increase"] == 0
    assert metrics["kl_exact"] and metrics["tokens"] == 40

    # Flatten every distribution: the compressed model is less sure of everything.
    flat = []
    for d in dists:
        scaled = {t: 0.5 * v for t, v in d.items()}
        norm = math.log(sum(math.exp(v) for v in scaled.values()))
        flat.append({t: v - norm for t, v in scaled.items()})
    worse = Scores([d[t] for d, t in zip(flat, following, strict=True)], flat)
    metrics = compare([same], [worse], top_k=32, vocab=32)
    assert metrics["kl_nats_per_token"] > 0.05
    assert metrics["top1_agreement"] == 1  # flattening keeps the argmax
    assert metrics["perplexity_compressed"] > metrics["perplexity_source"]
    assert not compare([same], [worse], top_k=8, vocab=32)["kl_exact"]


def test_budget_violations_name_each_metric() -> None:
    budget = QualityBudget(max_kl_nats=0.01, min_top1_agreement=0.95, max_perplexity_increase=0.02)
    within = {"kl_nats_per_token": 0.005, "top1_agreement": 0.97, "perplexity_increase": 0.01}
    assert budget.violations(within) == []
    over = {"kl_nats_per_token": 0.02, "top1_agreement": 0.9, "perplexity_increase": 0.05}
    found = budget.violations(over)
    assert [v.split()[0] for v in found] == [
        "kl_nats_per_token",
        "top1_agreement",
        "perplexity_increase",
    ]
    assert "0.01" in found[0] and "0.95" in found[1] and "2.00%" in found[2]


def test_every_scheme_has_a_budget_and_4_bit_weights_get_the_widest() -> None:
    assert set(DEFAULT_QUALITY_BUDGETS) == {"fp8", "int8-w8a8", "w4a16"}
    w4 = DEFAULT_QUALITY_BUDGETS["w4a16"]
    for scheme in ("fp8", "int8-w8a8"):
        assert DEFAULT_QUALITY_BUDGETS[scheme].max_kl_nats <= w4.max_kl_nats
        assert DEFAULT_QUALITY_BUDGETS[scheme].min_top1_agreement >= w4.min_top1_agreement
