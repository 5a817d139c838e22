"""GuideLLM gate: golden parsing of a real report, verdicts, and a real run against a server."""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from workloads.benchmark.__main__ import main
from workloads.benchmark.gate import (
    COULD_NOT_MEASURE,
    FAIL,
    PASS,
    capacity_search,
    evaluate,
    little_problem,
    load_problems,
    steady_state_problem,
    undecided_capacity,
)
from workloads.benchmark.metrics import TIMELINE_COLUMNS, ParseError, parse_report
from workloads.benchmark.report import compare
from workloads.benchmark.runner import (
    Run,
    client_ttfts_s,
    joined,
    levels_profile,
    load_levels,
    scenario_spec,
    scenarios,
)
from workloads.benchmark.search import search_capacity
from workloads.contract import (
    SEARCH_PROBES,
    GatePlan,
    WindowTooShort,
    level_bound,
    min_seconds,
    next_search_streams,
    search_bounds,
    search_growth,
    search_range,
    target_runs,
)

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "guidellm"
GOLDEN = GOLDEN_DIR / "mock-server-concurrent.json"
# Real GuideLLM 0.8.1 runs against vLLM CPU 0.32 serving the tiny trained Llama with its BPE
# tokenizer (2-core machine, vLLM on core 0, GuideLLM on core 1): the planned level (448 prompt
# / 32 output tokens, concurrency 4, count-bounded, ≥ 100 measured) and a goodput search from
# 16 streams (TTFT ≤ 5 s, ITL ≤ 500 ms).
LEVEL = GOLDEN_DIR / "vllm-cpu-rag-level.json"
SEARCH = GOLDEN_DIR / "vllm-cpu-capacity-search.json"
# The same runs with vLLM's threads on both cores, GuideLLM among them: it could not send
# requests on time (3.0 of 4, 9.2 of 16 in flight).
SHARED_CORES_LEVEL = GOLDEN_DIR / "vllm-cpu-rag-level-shared-cores.json"
SHARED_CORES_SEARCH = GOLDEN_DIR / "vllm-cpu-capacity-search-shared-cores.json"
# The product's gate on one H200 at prod's shape (6,400 / 384 tokens, 112 streams): GuideLLM
# raised generation_delay_ttft, yet the load was applied.
H200_RESULTS = GOLDEN_DIR.parents[2] / "benchmarks" / "results" / "gpu_h200_gate"
H200_LEVEL = H200_RESULTS / "guidellm-c112-trimmed.json"
TARGETS = GatePlan(
    ttft_p95_ms=5000, itl_p95_ms=500, min_throughput_rps=0.2, max_error_rate=0.05, concurrency=4,
    prompt_tokens=448, output_tokens=32, shared_prefix_tokens=0, predicted_requests_per_s=10.0,
    predicted_output_tokens_per_s=320.0, capacity_tolerance=0.25, predicted_e2e_ms=400.0,
    capacity_concurrency=16, capacity_requests_per_s=40.0, capacity_limited_by="ttft",
    shape_tolerance=0.05, min_measured_requests=20, cost_per_hour_usd=0.1,
)  # fmt: skip
RAG = scenarios(TARGETS)[0]


def _run(path: Path, targets: GatePlan = TARGETS) -> Run:
    levels = tuple(parse_report(json.loads(path.read_text())))
    bounds = tuple(level_bound(targets, level.concurrency) for level in levels)
    return Run(path.stem, (path,), bounds, levels)


def _changed_level(tmp_path: Path, change: Callable[[dict], object], name: str) -> Path:
    """The golden level's GuideLLM report with `change` applied to its one benchmark, as a file."""
    report = json.loads(LEVEL.read_text())
    change(report["benchmarks"][0])
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(report))
    return path


def test_golden_report_parses_to_the_measured_numbers() -> None:
    levels = parse_report(json.loads(GOLDEN.read_text()))
    assert [level.concurrency for level in levels] == [1, 4]
    four = levels[1]
    assert four.requests_per_s == 18.0
    assert four.output_tokens_per_s == 288.0
    assert four.ttft_ms.p95 == pytest.approx(70.3332, abs=1e-3)
    assert four.itl_ms.p95 == pytest.approx(11.0571, abs=1e-3)
    assert four.e2e_ms.p95 == pytest.approx(223.9788, abs=1e-3)  # seconds converted to ms
    assert (four.successful, four.errored, four.incomplete) == (72, 0, 3)
    assert four.error_rate == 0.0


def test_real_vllm_level_reads_what_reached_the_server() -> None:
    (level,) = parse_report(json.loads(LEVEL.read_text()))
    # 436 sent + the chat template's 11 tokens, as vLLM counted them; 32 out (ignore_eos).
    assert level.prompt_tokens_mean == pytest.approx(447.0)
    assert level.output_tokens_mean == pytest.approx(32.0)
    assert level.concurrency == 4 and level.measured_requests == 161
    assert level.slo_attainment == 1.0 and level.slo_determined_requests == 161
    assert level.in_flight_mean == pytest.approx(3.77, abs=0.01)  # the load was applied


def test_gate_passes_and_fails_on_chosen_targets() -> None:
    level = _run(LEVEL)
    assert evaluate(level, TARGETS, RAG).status == PASS
    tight = evaluate(level, replace(TARGETS, ttft_p95_ms=20, itl_p95_ms=1), RAG)
    assert tight.status == FAIL
    assert {c.name for c in tight.checks if not c.passed} == {"ttft_p95_ms", "itl_p95_ms"}
    assert evaluate(level, replace(TARGETS, min_throughput_rps=50), RAG).status == FAIL


@pytest.mark.parametrize(
    ("planned_prompt", "planned_output", "what"),
    [(6400, 32, "prompt"), (448, 384, "output"), (420, 32, "prompt")],
)
def test_traffic_off_the_plan_is_not_judged(planned_prompt, planned_output, what) -> None:
    targets = replace(TARGETS, prompt_tokens=planned_prompt, output_tokens=planned_output)
    verdict = evaluate(_run(LEVEL, targets), targets, scenarios(targets)[0])
    assert verdict.status == COULD_NOT_MEASURE and verdict.exit_code == 2
    assert verdict.checks == ()
    assert "traffic did not match the plan: measured" in verdict.reason
    assert f"{what} tokens, planned" in verdict.reason


def test_a_mean_on_the_plan_hiding_requests_off_it_is_not_judged(tmp_path: Path) -> None:
    """Half the prompts empty and half twice the plan's length average to the plan's 447
    tokens: a check of the mean alone would judge that traffic; the per-request range does not."""
    assert _run(LEVEL).levels[0].prompt_tokens_range == (447.0, 447.0)

    def half_empty_half_double(benchmark: dict) -> None:
        prompts = benchmark["metrics"]["prompt_token_count"]["successful"]
        assert prompts["mean"] == pytest.approx(447.0)
        prompts["percentiles"] |= {"p001": 0.0, "p01": 0.0, "p99": 894.0, "p999": 894.0}

    mixed = _changed_level(tmp_path, half_empty_half_double, "mixed")
    verdict = evaluate(_run(mixed), TARGETS, RAG)
    assert verdict.status == COULD_NOT_MEASURE and verdict.checks == ()
    assert "prompt tokens per request ranged 0-894 (1st-99th percentile; mean 447)" in (
        verdict.reason
    )
    assert "planned 448 each" in verdict.reason


def test_a_level_whose_load_was_not_applied_is_not_judged() -> None:
    """GuideLLM sharing vLLM's cores kept 3.0 of 4 streams in flight, 92 ms to dispatch each
    request: latencies measured under less load than planned are not judged."""
    (level,) = parse_report(json.loads(SHARED_CORES_LEVEL.read_text()))
    assert level.in_flight_mean == pytest.approx(2.97, abs=0.01)
    assert level.dispatch_delay_ms == pytest.approx(92.0, abs=0.5)
    verdict = evaluate(_run(SHARED_CORES_LEVEL), TARGETS, RAG)
    assert verdict.status == COULD_NOT_MEASURE and verdict.checks == ()
    assert "the planned load was not applied: 3.0 requests in flight on average at " in (
        verdict.reason
    )
    search = evaluate(_run(LEVEL), TARGETS, RAG, _run(SHARED_CORES_SEARCH))
    assert search.status == COULD_NOT_MEASURE
    assert "9.2 requests in flight on average at concurrency 16" in search.reason


def test_guidellms_generation_delay_warning_is_not_a_held_back_load() -> None:
    """On the H200 GuideLLM flagged generation_delay_ttft (6 ms per request against a 404 ms
    TTFT), yet 111.97 of 112 streams were in flight: the level is judged."""
    (level,) = parse_report(json.loads(H200_LEVEL.read_text()))
    assert "generation_delay_ttft" in level.warnings
    assert level.concurrency == 112
    assert level.in_flight_mean == pytest.approx(111.97, abs=0.01)
    run = Run("h200", (H200_LEVEL,), (level_bound(TARGETS, 112),), (level,))
    assert load_problems(run, TARGETS) == []


H200_STOCK_SECONDS = H200_RESULTS / "guidellm-stock-c58-trimmed.json"


def test_a_rate_that_littles_law_does_not_reproduce_is_not_judged() -> None:
    """Throughput must equal requests in flight ÷ mean latency (within 7.5 %, or one wave of
    the measured requests for a short level). The H200's count-bounded level at 112 streams
    agrees within 1 %; the same level with its rate a third higher (a burst counted inside the
    window) is refused; the stock run made with --seconds 100 (first wave inside a 12.5-s
    warm-up) is 9 % off — within the one-wave noise of its 330 requests at 58 streams, so the
    check alone does not catch it: the --seconds pre-check below does."""
    (steady,) = parse_report(json.loads(H200_LEVEL.read_text()))
    assert little_problem(steady) is None
    burst = replace(steady, requests_per_s=steady.requests_per_s * 1.3)
    problem = little_problem(burst)
    assert problem is not None and "not a steady state" in problem and "Little's law" in problem
    run = Run("burst", (H200_LEVEL,), (level_bound(TARGETS, 112),), (burst,))
    assert any("not a steady state" in p for p in load_problems(run, TARGETS))
    assert little_problem(replace(burst, errored=3)) is None  # the error-rate check judges it
    (timed,) = parse_report(json.loads(H200_STOCK_SECONDS.read_text()))
    assert timed.requests_per_s * (timed.e2e_mean_ms / 1e3) / timed.in_flight_mean == (
        pytest.approx(1.093, abs=0.005)
    )
    assert little_problem(timed) is None
    for level in parse_report(json.loads(LEVEL.read_text())):
        assert little_problem(level) is None


def test_seconds_shorter_than_a_requests_warm_up_are_refused_before_any_load(
    tmp_path: Path,
) -> None:
    targets = replace(TARGETS, predicted_e2e_ms=15_600.0)  # prod's shape on the H200
    assert min_seconds(targets) == 125  # warm-up: an eighth of the level
    with pytest.raises(WindowTooShort, match=r"--seconds 100 is too short.*--seconds 125"):
        level_bound(targets, 86, 100)
    assert level_bound(targets, 86, 125).bounded_by == "seconds"
    plan = tmp_path / "plan.json"
    gate = {name: getattr(targets, name) for name in targets.__dataclass_fields__}
    plan.write_text(json.dumps({"stack": "t", "gate": gate}))
    # No endpoint answers at this target: the refusal comes first, before any request.
    code = main(["--plan", str(plan), "--target", "http://127.0.0.1:9", "--seconds", "100",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    assert not (tmp_path / "out").exists()


def test_within_five_percent_the_shape_is_the_plans() -> None:
    # 447 measured vs 430 planned is 4.0 % off: judged.
    targets = replace(TARGETS, prompt_tokens=430)
    assert evaluate(_run(LEVEL, targets), targets, scenarios(targets)[0]).status == PASS


def test_too_few_requests_for_a_steady_state_are_not_judged() -> None:
    targets = replace(TARGETS, min_measured_requests=200)
    verdict = evaluate(_run(LEVEL, targets), targets, RAG)
    assert verdict.status == COULD_NOT_MEASURE
    assert "measured 161 requests after warm-up, fewer than the 200" in verdict.reason


def test_a_count_bounded_level_cut_short_by_its_time_guard_is_not_judged(tmp_path: Path) -> None:
    """The level was to send 216 requests; its time guard stopped it after 150, 6 of them
    cancelled in flight. Its window may still hold enough requests, but not the run it meant."""
    (level,) = _run(LEVEL).levels
    assert (level.planned_requests, level.processed_requests, level.cancelled_requests) == (
        216,
        216,
        0,
    )

    def stopped_at_150(benchmark: dict) -> None:
        benchmark["scheduler_state"] |= {"processed_requests": 150, "cancelled_requests": 6}

    cut = _changed_level(tmp_path, stopped_at_150, "cut")
    verdict = evaluate(_run(cut), TARGETS, RAG)
    assert verdict.status == COULD_NOT_MEASURE and verdict.checks == ()
    assert "concurrency 4 finished 144 of the 216 requests it was to send (6 cancelled)" in (
        verdict.reason
    )

    # A time-bounded level (--seconds) ends by its clock, cancelling what is in flight: no count
    # to finish, so nothing to refuse here.
    def timed_out_at_150(benchmark: dict) -> None:
        stopped_at_150(benchmark)
        benchmark["scheduler_state"]["progress"]["total_requests"] = None

    (timed,) = _run(_changed_level(tmp_path, timed_out_at_150, "timed")).levels
    assert timed.planned_requests is None
    assert steady_state_problem(timed, level_bound(TARGETS, 4)) is None


def test_no_successful_requests_cannot_be_measured() -> None:
    run = _run(LEVEL)
    empty = replace(run, levels=(replace(run.levels[0], successful=0, errored=9),))
    verdict = evaluate(empty, TARGETS, RAG)
    assert verdict.status == COULD_NOT_MEASURE
    assert verdict.exit_code == 2
    assert evaluate(None, TARGETS, RAG).exit_code == 2


def test_level_bounds_follow_the_plan() -> None:
    bound = level_bound(TARGETS, 4)
    assert bound.bounded_by == "requests"
    assert bound.required_requests == 20  # max(4 × 4, the plan's 20)
    assert bound.total_requests == 2 * 20 + 4 * 4
    # 3 × its predicted duration (56 requests at 4 / 0.4 s) plus start-up.
    assert bound.time_limit_s == pytest.approx(3 * 56 / 10 + 120)
    big = level_bound(replace(TARGETS, min_measured_requests=100), 64)
    assert big.required_requests == 256
    # Above the planned concurrency the rate is the planned one: the limit grows with the count.
    assert big.time_limit_s == pytest.approx(3 * (2 * 256 + 256) / 10 + 120)
    timed = level_bound(TARGETS, 4, seconds=30)
    assert (timed.bounded_by, timed.total_requests, timed.time_limit_s) == ("seconds", None, 30)
    assert "time-bounded by --seconds" in timed.describe()


def test_scenario_file_carries_counts_transients_and_objectives(tmp_path: Path) -> None:
    bounds = [level_bound(TARGETS, c) for c in (2, 4)]
    spec = scenario_spec("http://x", RAG, levels_profile((2, 4)), bounds, tmp_path / "o.json",
                         TARGETS, tokenizer="/models/tiny")["spec"]  # fmt: skip
    assert spec["constraints"] == [
        {"kind": "max_requests", "count": [b.total_requests for b in bounds]},
        {"kind": "max_duration", "seconds": [b.time_limit_s for b in bounds]},
    ]
    assert spec["profile"]["warmup"] == {"percent": 1 / 8, "mode": "requests"}
    assert spec["metrics"]["slo"] == {"ttft_ms": 5000, "tpot_ms": 500}
    assert spec["data"] == [{"kind": "synthetic_text", "prompt_tokens": 448, "output_tokens": 32}]
    assert spec["tokenizer"]["model"] == "/models/tiny"
    assert search_range(TARGETS) == (16, 64)
    # Each file its own seed (GuideLLM's default 42 repeats every run's prompts), written down.
    seeds = {
        scenario_spec("http://x", RAG, levels_profile((2,)), bounds, tmp_path / "o.json",
                      TARGETS)["spec"]["seed"]["value"]
        for _ in range(8)
    }  # fmt: skip
    assert len(seeds) == 8
    replayed = scenario_spec("http://x", RAG, levels_profile((2,)), bounds, tmp_path / "o.json",
                             TARGETS, seed=7)["spec"]  # fmt: skip
    assert replayed["seed"] == {"kind": "static", "value": 7}


def test_guidellm_sends_other_prompts_under_another_seed(tiny_model, tmp_path: Path) -> None:
    """GuideLLM's own synthetic data (what the scenario's `data` asks for): one seed gives the
    same prompts every run — what a server's prefix cache can serve again — another gives
    others. The scenario's `seed` is a field GuideLLM's own argument schema takes."""
    from guidellm.data.deserializers.synthetic import SyntheticTextDataset
    from guidellm.schemas.benchmark.entrypoints import BenchmarkScenario
    from guidellm.schemas.data import SyntheticTextDataArgs
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)  # BPE: prompts of their real length
    config = SyntheticTextDataArgs(prompt_tokens=64, output_tokens=8)

    def prompts(seed: int) -> list[str]:
        rows = iter(SyntheticTextDataset(config, tokenizer, random_seed=seed))
        return [str(next(rows)) for _ in range(4)]

    assert len(set(prompts(42))) == 4 and all('"text_column":[""]' not in p for p in prompts(42))
    assert prompts(42) == prompts(42)
    assert not set(prompts(42)) & set(prompts(43_000))
    spec = scenario_spec("http://x", RAG, levels_profile((2,)), [level_bound(TARGETS, 2)],
                         tmp_path / "o.json", TARGETS, seed=1234)  # fmt: skip
    scenario_file = tmp_path / "rag.scenario.json"
    scenario_file.write_text(json.dumps(spec))
    assert BenchmarkScenario.create(scenario_file).spec.seed.value == 1234  # as `guidellm run`


def _probe_at(capacity: int, sent: list[int] | None = None, targets: GatePlan = TARGETS):
    """A server whose requests all meet the objectives up to `capacity` streams, none above:
    each probe is the golden level at those streams (steady, the plan's traffic, applied)."""
    (golden,) = _run(LEVEL).levels

    def probe(streams: int) -> Run:
        if sent is not None:
            sent.append(streams)
        level = replace(golden, concurrency=streams, in_flight_mean=float(streams),
                        requests_per_s=streams / (golden.e2e_mean_ms / 1e3),  # Little's law
                        slo_attainment=1.0 if streams <= capacity else 0.5)  # fmt: skip
        return Run(f"c{streams}", (Path(f"c{streams}.json"),), (level_bound(targets, streams),),
                   (level,))  # fmt: skip

    return probe


@pytest.mark.parametrize(
    ("tolerance", "capacity", "probes", "reason"),
    [
        # A plan without a capacity tolerance: GuideLLM's rule — from the predicted 16, double
        # until a level misses, then bisect to 10 % of the best.
        (0.0, 20, [16, 32, 24, 20, 22], "converged"),
        (0.0, 16, [16, 32, 24, 20, 18, 17], "converged"),
        (0.0, 33, [16, 32, 64, 48, 40, 36], "max_probes_exhausted"),  # 34 would be next
        (0.0, 100, [16, 32, 64], "max_streams_reached"),  # ≥ 4 × the prediction: a lower bound
        (0.0, 3, [16, 8, 4, 2, 3], "converged"),  # the first level misses: halve toward one
        (0.0, 0, [16, 8, 4, 2, 1], "objectives_unmet_at_minimum"),
        # The plan's ±25 %: steps of 25 % up (rounded up) or down (rounded down), then bisect.
        (0.25, 20, [16, 20, 25, 22], "converged"),
        (0.25, 16, [16, 20, 18, 17], "converged"),
        (0.25, 33, [16, 20, 25, 32, 40, 36], "max_probes_exhausted"),
        # Three times the prediction: the search stops at 50 streams passing, a lower bound
        # already outside the ±25 % the capacity check allows.
        (0.25, 100, [16, 20, 25, 32, 40, 50], "max_probes_exhausted"),
        (0.25, 14, [16, 12, 14, 15], "converged"),  # just under: found in four probes
        (0.25, 3, [16, 12, 9, 7, 5, 4], "max_probes_exhausted"),  # far under: none passes
    ],
)
def test_the_capacity_search_probes_one_level_at_a_time_by_guidellms_rule(
    tolerance: float, capacity: int, probes: list[int], reason: str
) -> None:
    targets = replace(TARGETS, capacity_tolerance=tolerance)
    sent: list[int] = []
    run = search_capacity(_probe_at(capacity, sent), targets, RAG)
    assert sent == probes and len(sent) <= SEARCH_PROBES
    assert [level.concurrency for level in run.levels] == probes
    # No probe above the bound the gate Job's deadline allows for it.
    largest = search_bounds(targets, SEARCH_PROBES)
    assert all(streams <= bound.concurrency for streams, bound in zip(sent, largest, strict=False))
    scored = capacity_search(run, targets)
    assert scored.stop_reason == reason
    assert [p.streams for p in scored.probes] == probes
    passing = [streams for streams in probes if streams <= capacity]
    assert (scored.best.concurrency if scored.best else None) == max(passing, default=None)
    assert "count-bounded at its own streams" in scored.describe()
    assert ("doubling" if tolerance == 0 else "stepping up by 25%") in scored.describe()


@pytest.mark.parametrize(
    ("predicted_over_best", "probes", "status"),
    [
        # 16 passed, 19 missed: the capacity lies between their rates (19's is 1.19× 16's).
        (1.10, (16, 19), PASS),  # the whole bracket within ±15 % of the prediction
        (1.20, (16, 19), COULD_NOT_MEASURE),  # the bracket straddles the prediction's -15 %
        (2.00, (16, 19), FAIL),  # the whole bracket under it: the plan over-promised
        (0.50, (16, 19), FAIL),  # the whole bracket over it: the plan under-promised
        (1.00, (16,), COULD_NOT_MEASURE),  # still stepping up: no upper bound
    ],
)
def test_a_search_cut_short_judges_its_capacity_only_where_its_bracket_decides(
    predicted_over_best: float, probes: tuple[int, ...], status: str
) -> None:
    """A search that ended before its rule stopped (a refused probe, or reports that end, as on
    the H200 on 2026-12-05) knows the capacity only between its highest passing probe's rate
    and its lowest failing one's: the gate judges the capacity check where that whole bracket
    lies on one side of the plan's ±15 %, and otherwise refuses, naming the bracket and the
    probe not run. A search its rule stopped is judged as before."""
    probe = _probe_at(17)
    runs = [probe(streams) for streams in probes]
    best_rate = runs[0].levels[0].requests_per_s
    plan = replace(TARGETS, capacity_tolerance=0.15,
                   capacity_requests_per_s=best_rate * predicted_over_best)  # fmt: skip
    search = joined("optimized", runs)
    verdict = evaluate(_run(LEVEL, plan), plan, scenarios(plan)[0], search)
    assert verdict.status == status, verdict.reason
    capacity = capacity_search(search, plan)
    assert capacity.unrun_streams == (17 if len(probes) == 2 else 19)
    # Not 'max_probes_exhausted', which it said before for any search cut short.
    assert capacity.stop_reason == (
        f"ended before its rule stopped (next probe, {capacity.unrun_streams} streams, not run)"
    )
    problem = undecided_capacity(capacity, plan)
    assert (problem is not None) == (status == COULD_NOT_MEASURE)
    if problem:
        assert f"its next probe, {capacity.unrun_streams} streams, was not run" in problem
        assert problem in verdict.reason
    else:
        (check,) = [c for c in verdict.checks if c.name == "capacity_at_slo_rps"]
        assert check.passed == (status == PASS)
    finished = capacity_search(search_capacity(_probe_at(17), plan, RAG), plan)
    assert finished.unrun_streams is None and finished.stop_reason == "converged"
    assert undecided_capacity(finished, plan) is None


def test_the_h200_search_cut_short_is_judged_on_its_bracket(tmp_path: Path) -> None:
    """The committed H200 search at prod's shape (2026-12-05), judged again from its reports:
    109 streams passed and 126 missed at the same 5.64 req/s (saturated), so the capacity lies
    at 5.64 whatever 117 would have said — within ±15 % of the plan's 5.80, judged and
    passed; the report says the search ended early, which probe it did not run, and the
    bracket it judged on."""
    h200 = GOLDEN_DIR.parents[2] / "benchmarks/results/gpu_h200_gate"
    run = h200 / "prod-shape-search/opt-search-r1"
    probes = [run / f"guidellm-optimized-capacity-c{n}-trimmed.json" for n in (109, 126)]
    code = main(["--plan", str(run / "plan.json"), "--target", "http://127.0.0.1:8000",
                 "--one-replica", "--from-report", str(run / "guidellm-optimized-rag-trimmed.json"),
                 "--from-search", *map(str, probes), "--out", str(tmp_path)])  # fmt: skip
    gate = json.loads((tmp_path / "gate.json").read_text())
    assert code == 0 and gate["verdict"] == PASS
    measured = gate["capacity_at_slo"]["measured"]
    assert measured["unrun_streams"] == 117
    assert measured["best"]["requests_per_s"] == pytest.approx(5.64, abs=0.01)
    report = (tmp_path / "gate.md").read_text()
    assert report.count("between 5.64 req/s") == 1
    assert "ended before its rule stopped (next probe, 117 streams, not run)" in report
    # Stamped when GuideLLM started the planned level, not when it was judged.
    report = json.loads((run / "guidellm-optimized-rag-trimmed.json").read_text())
    started = report["benchmarks"][0]["scheduler_state"]["start_time"]
    assert gate["measured_at"] == datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
    assert gate["measured_at"].startswith("2026-12-05T04:") and gate["judged_at"] > "2026-12-05T05"
    # The committed verdict is this one.
    committed = json.loads((run / "gate.json").read_text())
    assert committed["checks"] == gate["checks"]
    assert committed["measured_at"] == gate["measured_at"]


def test_the_searchs_probes_and_deadline_shrink_with_a_calibrated_tolerance() -> None:
    """At prod's shape on the H200 the plan predicts 109 streams and allows ±15 %: its probes
    step 109 → 126 → …, where GuideLLM's doubling spends its second probe at 218 streams; the
    largest bounds the gate Job's deadline allows for shrink to match."""
    plan = replace(TARGETS, capacity_concurrency=109, capacity_tolerance=0.15)
    assert search_growth(plan) == pytest.approx(1.15)
    assert search_growth(replace(plan, capacity_tolerance=0.0)) == 2.0
    assert search_growth(replace(plan, capacity_tolerance=100.0)) == 2.0  # never past doubling
    stepped = [b.concurrency for b in search_bounds(plan, SEARCH_PROBES)]
    doubled = [b.concurrency for b in search_bounds(replace(plan, capacity_tolerance=0.0),
                                                    SEARCH_PROBES)]  # fmt: skip
    assert stepped == [109, 126, 145, 167, 193, 222]
    assert doubled == [109, 218, 436, 436, 436, 436]
    assert next_search_streams(109, None, 109, 436, 1.15) == 126
    assert next_search_streams(None, 109, 109, 436, 1.15) == 94


def test_the_search_rule_is_guidellms_goodput_rule() -> None:
    """`next_search_streams` against GuideLLM 0.8.1's own goodput profile, state by state."""
    from guidellm.benchmark.profiles.goodput import GoodputProfile
    from guidellm.schemas.benchmark.profiles.goodput import GoodputProfileArgs

    args = GoodputProfileArgs(initial_streams=16, max_streams=64, tolerance=0.1, max_probes=99)
    compared = 0
    for best in (None, 1, 8, 16, 20, 30, 64):
        for failing in (None, 1, 2, 17, 18, 22, 32, 40, 64):
            if best is not None and failing is not None and failing <= best:
                continue
            profile = GoodputProfile(args, random_seed=0, constraints=None)
            profile.search.best_passing_streams = best
            profile.search.lowest_failing_streams = failing
            profile._advance()
            ours = next_search_streams(best, failing, 16, 64)
            theirs = profile._next_streams if profile._next_streams is not None else (
                profile.search.stop_reason)  # fmt: skip
            assert ours == theirs, (best, failing)
            compared += 1
    assert compared > 40


def test_a_probe_the_gate_would_refuse_ends_the_search() -> None:
    """Load not applied at the first probe: nothing after it would rest on a measurement."""
    sent: list[int] = []
    applied = _probe_at(100, sent)

    def starved(streams: int) -> Run:
        run = applied(streams)
        level = replace(run.levels[0], in_flight_mean=streams / 2)
        return replace(run, levels=(level,))

    run = search_capacity(starved, TARGETS, RAG)
    assert sent == [16]
    verdict = evaluate(_run(LEVEL), TARGETS, RAG, run)
    assert verdict.status == COULD_NOT_MEASURE
    assert "8.0 requests in flight on average at concurrency 16" in verdict.reason


def test_capacity_search_is_scored_as_guidellm_scores_it() -> None:
    search = capacity_search(_run(SEARCH), TARGETS)
    assert [p.streams for p in search.probes] == [16, 32, 64]
    assert all(p.passed for p in search.probes)
    # 161, 306 and 699 requests all within both targets: 100 % tells from 95 % at 95 %
    # confidence (34 requests, in an earlier run, could not).
    assert [p.resolved for p in search.probes] == [True, True, True]
    assert search.best.concurrency == 64 and search.stop_reason == "max_streams_reached"
    assert search.capacity_requests_per_s == pytest.approx(49.23, abs=0.01)
    assert "16 (100%) → 32 (100%) → 64 (100%)" in search.describe()


def test_capacity_at_the_slo_is_checked_against_the_prediction() -> None:
    level, search = _run(LEVEL), _run(SEARCH)
    assert evaluate(level, TARGETS, RAG, search).status == PASS
    off = evaluate(level, replace(TARGETS, capacity_requests_per_s=20.0), RAG, search)
    assert off.status == FAIL
    assert [c.name for c in off.checks if not c.passed] == ["capacity_at_slo_rps"]


def test_a_capacity_probe_without_its_steady_state_is_not_judged() -> None:
    targets = replace(TARGETS, min_measured_requests=800)
    verdict = evaluate(_run(LEVEL), TARGETS, RAG, _run(SEARCH, targets))
    assert verdict.status == PASS  # the level's own bound is the plan's (20)
    verdict = evaluate(_run(LEVEL), targets, RAG, _run(SEARCH, targets))
    assert verdict.status == COULD_NOT_MEASURE
    assert "capacity search: concurrency 64 measured 699 requests" in verdict.reason


def test_not_a_guidellm_report_is_refused() -> None:
    with pytest.raises(ParseError):
        parse_report({"benchmarks": [{"metrics": {}}]})


def test_before_after_ratios() -> None:
    level = _run(LEVEL)
    slow = replace(level, levels=(replace(level.levels[0], requests_per_s=2.0),))
    comparison = compare(evaluate(level, TARGETS, RAG), evaluate(slow, TARGETS, RAG))
    ratio = level.levels[0].requests_per_s / 2.0
    assert comparison.throughput_ratio == pytest.approx(ratio)
    assert comparison.cost_per_request_ratio == pytest.approx(1 / ratio)


def test_scenarios_follow_the_workload_profile() -> None:
    shared = scenarios(replace(TARGETS, prompt_tokens=4200, shared_prefix_tokens=4000))
    assert [s.name for s in shared] == ["rag", "shared-document"]
    assert (shared[1].prefix_tokens, shared[1].prompt_tokens) == (4000, 200)
    assert shared[1].planned_prompt_tokens == 4200
    assert load_levels(16) == (16,)
    # The chat template's tokens come off GuideLLM's prompt: the server sees the plan's length.
    (rag,) = scenarios(TARGETS, template_tokens=12)
    assert (rag.prompt_tokens, rag.planned_prompt_tokens) == (436, 448)


def test_chat_template_tokens_are_counted_from_the_tokenizer(tiny_model, word_tokenizer, tmp_path):
    from transformers import AutoTokenizer

    from workloads.benchmark.runner import chat_template_tokens

    overhead = chat_template_tokens(str(tiny_model))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    message = "What does the Heron gateway log?"
    body = len(tokenizer(message, add_special_tokens=False)["input_ids"])
    templated = tokenizer.apply_chat_template(
        [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=True
    )
    ids = templated["input_ids"] if hasattr(templated, "keys") else templated
    # BPE may merge one token across the template's edge.
    assert overhead > 0 and abs(overhead - (len(ids) - body)) <= 1
    plain = AutoTokenizer.from_pretrained(word_tokenizer)
    plain.chat_template = None
    plain.save_pretrained(tmp_path / "plain")
    (tmp_path / "plain" / "chat_template.jinja").unlink(missing_ok=True)
    assert chat_template_tokens(str(tmp_path / "plain")) == 0
    assert chat_template_tokens(None) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_from_report_judges_a_real_report_and_writes_the_report(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    gate = asdict(TARGETS)
    plan.write_text(json.dumps({"stack": "t", "gate": gate, "model": {"random_weights": True}}))
    args = ["--plan", str(plan), "--target", "unused", "--from-report", str(LEVEL)]
    assert main([*args, "--out", str(tmp_path / "a"), "--from-search", str(SEARCH)]) == 0
    report = json.loads((tmp_path / "a" / "gate.json").read_text())
    assert report["capacity_at_slo"]["measured_cost"]["capacity_requests_per_s"] == (
        pytest.approx(49.23, abs=0.01)
    )
    markdown = (tmp_path / "a" / "gate.md").read_text()
    assert "# Deployment gate: **PASS**" in markdown and "How the search decided" in markdown
    assert (tmp_path / "a" / "gate.png").read_bytes()[:4] == b"\x89PNG"
    gate["ttft_p95_ms"] = 10
    plan.write_text(json.dumps({"gate": gate}))
    assert main([*args, "--out", str(tmp_path / "b")]) == 1
    report = json.loads((tmp_path / "b" / "gate.json").read_text())
    assert [c["name"] for c in report["checks"] if not c["passed"]] == ["ttft_p95_ms"]


def test_a_stock_plans_run_is_reported_as_stock(tmp_path: Path) -> None:
    """The H200 calibration judges stock vLLM against its own plan: the report names the run
    stock (not optimized), and readers find the target's run either way."""
    plan = tmp_path / "plan.json"
    gate = asdict(TARGETS)
    args = ["--target", "unused", "--from-report", str(LEVEL), "--plan", str(plan)]
    plan.write_text(json.dumps({"gate": gate, "profile": "stock"}))
    assert main([*args, "--out", str(tmp_path / "stock")]) == 0
    report = json.loads((tmp_path / "stock" / "gate.json").read_text())
    assert report["profile"] == "stock" and list(report["runs"]) == ["stock"]
    assert target_runs(report)["rag"]["levels"][0]["concurrency"] == 4
    assert "| stock | rag | 4 |" in (tmp_path / "stock" / "gate.md").read_text()
    # A plan without a profile is the optimized serving; a report written before the profile
    # was recorded reads as before.
    plan.write_text(json.dumps({"gate": gate}))
    assert main([*args, "--out", str(tmp_path / "opt")]) == 0
    report = json.loads((tmp_path / "opt" / "gate.json").read_text())
    assert list(report["runs"]) == ["optimized"]
    del report["profile"]
    assert target_runs(report) is report["runs"]["optimized"]


def test_an_unknown_profile_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.json"
    gate = asdict(TARGETS)
    plan.write_text(json.dumps({"gate": gate, "profile": "fast"}))
    args = ["--plan", str(plan), "--target", "unused", "--from-report", str(LEVEL)]
    assert main([*args, "--out", str(tmp_path / "x")]) == 2
    assert "'profile' is 'fast'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_endpoint_down_exits_2(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    gate = asdict(TARGETS)
    plan.write_text(json.dumps({"stack": "t", "gate": gate}))
    code = main(
        ["--plan", str(plan), "--target", f"http://127.0.0.1:{_free_port()}", "--out",
         str(tmp_path / "r")]
    )  # fmt: skip
    assert code == 2
    report = json.loads((tmp_path / "r" / "gate.json").read_text())
    assert report["verdict"] == COULD_NOT_MEASURE
    assert "did not answer" in report["reason"]


@pytest.mark.parametrize("guidellm_failed", [False, True])
def test_a_server_that_dies_during_a_run_is_could_not_measure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, guidellm_failed: bool
) -> None:
    """The endpoint answered before the run and not after it (vLLM killed mid-gate): exit 2
    and a report naming the run — not a "fail" judged on the errors the dying server left. Both
    ways GuideLLM has ended on a killed server (finished with errored requests, or exited 1)
    give the server's death as the reason."""
    import workloads.benchmark.__main__ as gate_main
    from workloads.benchmark.runner import EndpointDown

    answers = iter(["tiny"])

    def check(target: str, timeout_s: float = 10.0, insecure: bool = False) -> str:
        try:
            return next(answers)
        except StopIteration:
            raise EndpointDown(f"{target} did not answer /v1/models: connection refused") from None

    def run(name: str, spec: dict, bounds: list, out_dir: Path) -> Run:
        if guidellm_failed:
            raise EndpointDown(f"guidellm failed (1); see {out_dir / name}.log")
        return _run(LEVEL)  # what GuideLLM reported before the server went away

    monkeypatch.setattr(gate_main, "check_endpoint", check)
    monkeypatch.setattr(gate_main, "probe_chat", lambda *args, **kwargs: None)
    monkeypatch.setattr(gate_main, "run_guidellm", run)
    plan = tmp_path / "plan.json"
    gate = asdict(TARGETS)
    plan.write_text(json.dumps({"stack": "t", "gate": gate}))
    code = main(["--plan", str(plan), "--target", "http://127.0.0.1:9", "--out",
                 str(tmp_path / "r"), "--skip-capacity-search"])  # fmt: skip
    assert code == 2
    report = json.loads((tmp_path / "r" / "gate.json").read_text())
    assert report["verdict"] == COULD_NOT_MEASURE
    assert "stopped answering during guidellm-optimized-rag" in report["reason"]


def _fake_vllm(
    chat_status: int,
    chat_body: dict,
    metrics: dict[str, float] | None = None,
    address: tuple[str, int] = ("127.0.0.1", 0),
    ttft_buckets: dict[float, float] | None = None,
) -> tuple[str, Any]:
    """An HTTP server answering /v1/models and /v1/chat/completions as vLLM does, and /metrics
    with `metrics` (read at each request: a test moves them) in Prometheus' text format, and
    `ttft_buckets` as vLLM's TTFT histogram (bound → cumulative count; +Inf the last)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class FakeVllm(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/metrics" and metrics is not None:
                text = "".join(
                    f'# TYPE {name} counter\n{name}{{engine="0",model_name="m"}} {value}\n'
                    for name, value in metrics.items()
                )
                text += "".join(
                    f'vllm:time_to_first_token_seconds_bucket{{engine="0",'
                    f'le="{"+Inf" if math.isinf(bound) else bound}",model_name="m"}} {count}\n'
                    for bound, count in (ttft_buckets or {}).items()
                )
                self.send_response(200)
                self.send_header("Content-Length", str(len(text.encode())))
                self.end_headers()
                self.wfile.write(text.encode())
                return
            self._answer(200, {"data": [{"id": "m"}]})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._answer(chat_status, chat_body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(address, FakeVllm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://{address[0]}:{server.server_port}", server


def test_a_server_that_refuses_chat_completions_is_named_before_any_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found on the H200: a tokenizer without a chat template made vLLM answer every chat
    completion 400, and the gate sent a whole level (1,344 requests) to report "no successful
    requests". One probe request now names the server's own answer, before any load."""
    import workloads.benchmark.__main__ as gate_main

    def run(*args: object) -> Run:
        raise AssertionError("no level may run against a server that refuses the request kind")

    monkeypatch.setattr(gate_main, "run_guidellm", run)
    message = "default chat template is no longer allowed, and no template was given"
    target, server = _fake_vllm(400, {"error": {"message": message}})
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stack": "t", "gate": asdict(TARGETS)}))
    try:
        code = main(["--plan", str(plan), "--target", target, "--out", str(tmp_path / "r"),
                     "--skip-capacity-search"])  # fmt: skip
    finally:
        server.shutdown()
    assert code == 2
    report = json.loads((tmp_path / "r" / "gate.json").read_text())
    assert report["verdict"] == COULD_NOT_MEASURE
    assert "refused a chat completion" in report["reason"] and "HTTP 400" in report["reason"]
    assert "no template was given" in report["reason"]


def test_a_shared_document_run_off_the_plan_is_reported_as_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verdict judges the RAG run; the shared-document run is only reported — and a reader
    took its req/s for a measurement. Where its traffic is not the plan's (here 60-token prompts
    where the plan says 448: the shared document missing), the report says so beside it."""
    import workloads.benchmark.__main__ as gate_main

    def sixty_token_prompts(benchmark: dict) -> None:
        prompts = benchmark["metrics"]["prompt_token_count"]["successful"]
        prompts["mean"] = 60.0
        prompts["percentiles"] = {k: 60.0 for k in prompts["percentiles"]}

    short = _changed_level(tmp_path, sixty_token_prompts, "short")
    targets = replace(TARGETS, shared_prefix_tokens=400)

    def run(name: str, spec: dict, bounds: list, out: Path) -> Run:
        path = short if "shared-document" in name else LEVEL
        return Run(name, (path,), tuple(bounds), tuple(parse_report(json.loads(path.read_text()))))

    monkeypatch.setattr(gate_main, "run_guidellm", run)
    target, server = _fake_vllm(200, {"choices": [{"message": {"content": "p"}}]})
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stack": "t", "gate": asdict(targets)}))
    try:
        code = main(["--plan", str(plan), "--target", target, "--out", str(tmp_path / "r"),
                     "--skip-capacity-search", "--concurrency", "4"])  # fmt: skip
    finally:
        server.shutdown()
    gate = json.loads((tmp_path / "r" / "gate.json").read_text())
    assert (code, gate["verdict"]) == (0, PASS)  # the RAG run, judged as before
    (problems,) = gate["unjudged_runs"].values()
    assert list(gate["unjudged_runs"]) == ["optimized / shared-document"]
    assert "measured 60 prompt tokens, planned 448 (optimized shared-document" in problems[0]
    markdown = (tmp_path / "r" / "gate.md").read_text()
    assert "**Not measured as meant**" in markdown
    assert "- optimized / shared-document: traffic did not match the plan" in markdown


QUERIES, HITS = "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total"


def _gate_with_cache(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    served: dict[str, float],
    metrics: dict[str, float],
    shared_prefix_tokens: int = 0,
) -> tuple[int, dict]:
    """The gate CLI against a fake vLLM whose /metrics counters move as each scenario's run
    would move them: `served` is the share of its prompt tokens the prefix cache served."""
    import workloads.benchmark.__main__ as gate_main

    def run(name: str, spec: dict, bounds: list, out: Path) -> Run:
        looked_up = 161 * 447.0
        if QUERIES in metrics:
            metrics[QUERIES] += looked_up
        if HITS in metrics:
            metrics[HITS] += looked_up * served["shared-document" if "shared" in name else "rag"]
        return Run(
            name, (LEVEL,), tuple(bounds), tuple(parse_report(json.loads(LEVEL.read_text())))
        )

    monkeypatch.setattr(gate_main, "run_guidellm", run)
    targets = replace(TARGETS, shared_prefix_tokens=shared_prefix_tokens)
    target, server = _fake_vllm(200, {"choices": [{"message": {"content": "p"}}]}, metrics)
    tmp_path.mkdir(parents=True, exist_ok=True)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stack": "t", "gate": asdict(targets)}))
    try:
        code = main(["--plan", str(plan), "--target", target, "--out", str(tmp_path / "r"),
                     "--skip-capacity-search", "--concurrency", "4",
                     "--metrics-url", f"{target}/metrics"])  # fmt: skip
    finally:
        server.shutdown()
    return code, json.loads((tmp_path / "r" / "gate.json").read_text())


def test_an_uncached_run_the_prefix_cache_served_is_not_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The RAG scenario's prompts are unique: a rate measured while vLLM's prefix cache served
    40 % of them is a cached rate, not the capacity the plan states — refused, naming it. With
    0 % served the same run is judged, and the report carries the share it read."""
    metrics = {QUERIES: 1000.0, HITS: 10.0}
    code, gate = _gate_with_cache(tmp_path, monkeypatch, {"rag": 0.4}, metrics)
    assert (code, gate["verdict"]) == (2, COULD_NOT_MEASURE)
    assert (
        "prefix cache served 40.0% of the prompt tokens, where the prompts share 0.0%"
        in (gate["reason"])
    )
    code, gate = _gate_with_cache(tmp_path / "b", monkeypatch, {"rag": 0.0}, metrics)
    assert (code, gate["verdict"]) == (0, PASS)
    assert gate["runs"]["optimized"]["rag"]["prefix_cache_hit_share"] == 0.0


def test_a_shared_document_run_the_cache_did_not_serve_is_not_measured_as_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared document is 400 of each 448-token prompt: a run whose cache served none of
    it (prefix caching off, or the metrics of another replica) measured no caching; one that
    served 85 % of the prompt tokens did."""
    metrics = {QUERIES: 0.0, HITS: 0.0}
    served = {"rag": 0.0, "shared-document": 0.0}
    code, gate = _gate_with_cache(tmp_path, monkeypatch, served, metrics, 400)
    assert (code, gate["verdict"]) == (0, PASS)  # the RAG run, judged as before
    (problems,) = gate["unjudged_runs"].values()
    assert (
        "prefix cache served 0.0% of the prompt tokens, where the shared document is"
        in (problems[0])
    )
    served["shared-document"] = 0.85
    code, gate = _gate_with_cache(tmp_path / "b", monkeypatch, served, metrics, 400)
    assert "unjudged_runs" not in gate
    shared = gate["runs"]["optimized"]["shared-document"]["prefix_cache_hit_share"]
    assert shared == pytest.approx(0.85)


def test_every_replica_behind_a_headless_service_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a cluster --target balances over the replicas, so the gate reads each replica's
    counters through a headless Service (`--metrics-service`: its name resolves to every ready
    replica). Two replicas share the RAG run; the second's cache served 40 % of what it looked
    up: read through the Service (20 % over both) the run is refused, read at the first replica
    alone it passed — what a single address would have hidden."""
    import workloads.benchmark.__main__ as gate_main
    import workloads.benchmark.runner as runner

    first, second = {QUERIES: 0.0, HITS: 0.0}, {QUERIES: 0.0, HITS: 0.0}

    def run(name: str, spec: dict, bounds: list, out: Path) -> Run:
        for metrics, served in ((first, 0.0), (second, 0.4)):
            metrics[QUERIES] += 1000.0
            metrics[HITS] += 1000.0 * served
        return Run(
            name, (LEVEL,), tuple(bounds), tuple(parse_report(json.loads(LEVEL.read_text())))
        )

    monkeypatch.setattr(gate_main, "run_guidellm", run)
    answer = {"choices": [{"message": {"content": "p"}}]}
    target, one = _fake_vllm(200, answer, first)
    port = one.server_port
    _, two = _fake_vllm(200, answer, second, ("127.0.0.2", port))  # all of 127/8 is loopback
    resolved: list[str] = []

    def resolve(host: str, port: int, **kwargs: object) -> list[tuple]:
        resolved.append(host)
        return [(2, 1, 6, "", ("127.0.0.1", port)), (2, 1, 6, "", ("127.0.0.2", port))]

    monkeypatch.setattr(runner, "RESOLVER", resolve)  # the cluster's DNS, standing in
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stack": "t", "gate": asdict(TARGETS)}))
    common = ["--plan", str(plan), "--target", target, "--skip-capacity-search",
              "--concurrency", "4"]  # fmt: skip
    try:
        service = f"http://llm-replicas.test:{port}/metrics"
        code = main([*common, "--out", str(tmp_path / "s"), "--metrics-service", service])
        alone = main([*common, "--out", str(tmp_path / "a"), "--metrics-url", f"{target}/metrics"])
    finally:
        one.shutdown()
        two.shutdown()
    gate = json.loads((tmp_path / "s" / "gate.json").read_text())
    assert resolved and set(resolved) == {"llm-replicas.test"}
    assert (code, gate["verdict"]) == (2, COULD_NOT_MEASURE)
    assert "prefix cache served 20.0% of the prompt tokens" in gate["reason"]
    assert alone == 0


def test_a_replica_found_through_the_service_is_named_by_that_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replica that --metrics-service resolved to and that is not vLLM's (no hits counter)
    is refused naming --metrics-service, not --metrics-url: the option the user must fix."""
    import re

    import workloads.benchmark.runner as runner
    from workloads.benchmark.runner import EndpointDown, metered

    _, server = _fake_vllm(200, {"choices": []}, {QUERIES: 1.0})
    port = server.server_port
    monkeypatch.setattr(runner, "RESOLVER", lambda host, p, **kw: [(2, 1, 6, "", ("127.0.0.1", p))])
    service = f"http://llm-replicas.test:{port}/metrics"
    try:
        with pytest.raises(EndpointDown) as refused:
            metered(lambda: pytest.fail("a run without its cache reading"), None,
                    services=[service])  # fmt: skip
    finally:
        server.shutdown()
    assert re.search(f"carries no {HITS}: --metrics-service must lead to each replica's",
                     str(refused.value))  # fmt: skip
    assert "--metrics-url" not in str(refused.value)


def test_a_headless_service_with_no_ready_replica_cannot_measure() -> None:
    from workloads.benchmark.runner import EndpointDown, replica_urls

    assert replica_urls(
        "https://llm-replicas.ns.svc:8000/metrics",
        lambda host, port, **kw: [(10, 1, 6, "", ("fd00::7", port, 0, 0)),
                                  (2, 1, 6, "", ("10.0.0.5", port))],
    ) == ["https://10.0.0.5:8000/metrics", "https://[fd00::7]:8000/metrics"]  # fmt: skip
    with pytest.raises(EndpointDown, match=r"no replica behind llm-replicas\.ns\.svc is ready"):
        replica_urls("https://llm-replicas.ns.svc:8000/metrics", lambda *a, **kw: [])


def test_metrics_that_are_not_vllms_cannot_measure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, gate = _gate_with_cache(tmp_path, monkeypatch, {"rag": 0.0}, {QUERIES: 5.0})
    assert (code, gate["verdict"]) == (2, COULD_NOT_MEASURE)
    assert (
        f"carries no {HITS}: --metrics-url must name each replica's vLLM /metrics"
        in (gate["reason"])
    )


def test_the_chat_probe_accepts_a_completion_and_refuses_an_empty_answer() -> None:
    from workloads.benchmark.runner import EndpointDown, probe_chat

    target, server = _fake_vllm(200, {"choices": [{"message": {"content": "p"}}]})
    try:
        probe_chat(target, "m")
    finally:
        server.shutdown()
    target, server = _fake_vllm(200, {"object": "chat.completion"})
    try:
        with pytest.raises(EndpointDown, match="without choices"):
            probe_chat(target, "m")
    finally:
        server.shutdown()


def test_result_is_published_to_a_configmap_through_the_api() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from workloads.benchmark.publish import publish_configmap

    seen: list[tuple[str, str, dict, str]] = []

    class FakeApiServer(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.command, self.path, body, self.headers["Authorization"]))
            # The ConfigMap does not exist yet: PUT → 404, then POST creates it.
            self.send_response(404 if self.command == "PUT" else 201)
            self.end_headers()

        do_PUT = do_POST = _handle

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), FakeApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        publish_configmap(
            "leanrag-gate-result",
            {"verdict": "pass", "checks": []},
            f"http://127.0.0.1:{server.server_port}",
            "leanrag-serving",
            "tok",
        )
    finally:
        server.shutdown()
    assert [(m, p) for m, p, _, _ in seen] == [
        ("PUT", "/api/v1/namespaces/leanrag-serving/configmaps/leanrag-gate-result"),
        ("POST", "/api/v1/namespaces/leanrag-serving/configmaps"),
    ]
    body = seen[1][2]
    assert body["data"]["verdict"] == "pass"
    assert json.loads(body["data"]["gate.json"])["verdict"] == "pass"
    assert seen[1][3] == "Bearer tok"


def test_the_plan_file_the_cli_writes_is_what_the_gate_reads() -> None:
    from infra.plan import build_plan
    from infra.report import plan_json
    from infra.stack_source import load_stack
    from workloads.benchmark.gate import targets_from_plan

    plan = build_plan(load_stack("prod"), "prod")
    assert targets_from_plan(json.loads(plan_json(plan))) == plan.gate
    with pytest.raises(KeyError, match="lacks"):
        targets_from_plan({"gate": {"ttft_p95_ms": 1}})
    # A plan written before `replicas` existed reads as one replica.
    older = json.loads(plan_json(plan))
    del older["gate"]["replicas"]
    assert targets_from_plan(older).replicas == 1


def test_one_replica_is_judged_against_its_share() -> None:
    """`--one-replica`: the gate of a 3-replica plan, run on one replica, sends a third of the
    users and expects a third of the throughput and capacity."""
    plan = replace(TARGETS, concurrency=12, capacity_concurrency=48, replicas=3,
                               min_throughput_rps=0.6, capacity_requests_per_s=120.0)  # fmt: skip
    one = plan.one_replica()
    assert (one.concurrency, one.capacity_concurrency, one.replicas) == (4, 16, 1)
    assert one.min_throughput_rps == pytest.approx(0.2)
    assert one.capacity_requests_per_s == pytest.approx(40.0)
    assert one.one_replica() == one


def test_a_hung_run_is_killed_within_its_limit() -> None:
    from workloads.benchmark.runner import _run_bounded

    started = time.monotonic()
    assert _run_bounded(["sh", "-c", "sleep 30 & sleep 30"], limit_s=1) is None
    assert time.monotonic() - started < 10
    done = _run_bounded(["sh", "-c", "echo measured"], limit_s=10)
    assert done is not None and done.returncode == 0 and "measured" in done.stdout


def test_the_gate_never_reports_its_planted_token(
    tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The gate publishes its result with the pod's service-account token; an API server that
    refuses it — and echoes the credential back — must not put the token in the gate's output
    or report."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import workloads.benchmark.__main__ as gate_main

    token = "PLANTED-sa-token-5be0c2"

    class EchoingApiServer(BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            body = f"forbidden for {self.headers['Authorization']}".encode()
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_PUT = do_POST = _refuse

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), EchoingApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setattr(gate_main, "in_cluster", lambda: (api, "leanrag-serving", token, None))
    plan = tmp_path / "plan.json"
    gate = asdict(TARGETS)
    plan.write_text(json.dumps({"stack": "t", "gate": gate, "model": {"random_weights": True}}))
    try:
        code = gate_main.main(
            ["--plan", str(plan), "--target", "unused", "--from-report", str(LEVEL),
             "--out", str(tmp_path / "report"), "--publish-configmap", "leanrag-gate-result"]
        )  # fmt: skip
    finally:
        server.shutdown()
    assert code == 2  # judged, but not published: the Job must not read as a pass
    printed = capsys.readouterr()
    assert "result not published" in printed.err and "HTTP 403" in printed.err
    assert token not in printed.out + printed.err
    reports = [f for f in (tmp_path / "report").rglob("*") if f.is_file()]
    assert reports and not [f for f in reports if token.encode() in f.read_bytes()]


def test_an_overload_level_that_did_not_send_its_offered_rate_is_refused() -> None:
    """benchmarks/overload: open-loop levels are judged only at the rate and traffic offered."""
    from benchmarks.overload.run import sent_problem

    (level,) = _run(LEVEL).levels
    sent = (level.successful + level.errored + level.incomplete) / level.duration_s
    assert sent_problem(level, sent, 448, 0.05) is None
    assert sent_problem(level, sent * 1.05, 448, 0.05) is None
    held_back = sent_problem(level, sent * 1.5, 448, 0.05)
    assert held_back is not None and "could not keep up" in held_back
    assert "planned 6400" in (sent_problem(level, sent, 6400, 0.05) or "")
    mixed = replace(level, prompt_tokens_range=(0.0, 894.0))
    assert "1st-99th percentile 0-894" in (sent_problem(mixed, sent, 448, 0.05) or "")


# vLLM's TTFT histogram bounds (seconds), as its /metrics has them.
VLLM_TTFT_BOUNDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                    5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0, math.inf)  # fmt: skip


def test_histogram_buckets_are_summed_over_engines_and_taken_per_run() -> None:
    """Two engines' TTFT buckets add up per bound; a run's are the second reading less the
    first; a server without the histogram gives none."""
    from workloads.benchmark.runner import ttft_buckets, vllm_metric_totals

    def text(counts: tuple[float, float]) -> str:
        return (
            "".join(
                f'vllm:time_to_first_token_seconds_bucket{{engine="{engine}",le="{le}"}} {n}\n'
                for engine, n in enumerate(counts)
                for le, n in (("0.5", n), ("+Inf", 2 * n))
            )
            + f'{QUERIES}{{engine="0"}} 10.0\n'
        )

    before, after = vllm_metric_totals(text((1, 2))), vllm_metric_totals(text((4, 6)))
    assert before[QUERIES] == 10.0
    assert ttft_buckets(before, after) == ((0.5, 7.0), (math.inf, 14.0))
    assert ttft_buckets({QUERIES: 1.0}, {QUERIES: 2.0}) == ()


def test_metric_totals_read_only_the_named_series_and_skip_nan() -> None:
    """The one /metrics reader (the gate's and the H200 benchmarks'): named series summed over
    label sets, a bucket keyed by its bound, comments, other series and NaN left out."""
    from workloads.benchmark.runner import bucket_key, metric_totals

    text = (
        "# HELP process_cpu_seconds_total Total user and system CPU time\n"
        "process_cpu_seconds_total 12.5\n"
        'x_seconds_count{engine="0"} 3.0\nx_seconds_count{engine="1"} 4.0\n'
        'x_seconds_sum{engine="0"} NaN\nx_seconds_sum{engine="1"} 2.0\n'
        'x_seconds_bucket{engine="0",le="1.0"} 2.0\nx_seconds_bucket{engine="1",le="1.0"} 1.0\n'
        "other_total 9.0\n"
    )
    names = ("process_cpu_seconds_total", "x_seconds_count", "x_seconds_sum", "x_seconds_bucket")
    assert metric_totals(text, names) == {
        "process_cpu_seconds_total": 12.5,
        "x_seconds_count": 7.0,
        "x_seconds_sum": 2.0,
        bucket_key("x_seconds_bucket", 1.0): 3.0,
    }


def _level_with_rows(tmp_path: Path) -> Path:
    """The golden level's report as the gate keeps it (trimmed: its samples dropped), with
    one row per request: 161 requests, TTFT 40-840 ms."""
    report = json.loads(LEVEL.read_text())
    rows = [[i * 0.1, i * 0.1 + 2.0, 40.0 + 5.0 * i, 5.0, 447, 64] for i in range(161)]
    report["benchmarks"][0]["leanrag_requests"] = {
        "origin_time": 0.0, "columns": list(TIMELINE_COLUMNS), "rows": rows}  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "level.json").write_text(json.dumps(report))
    return tmp_path / "level.json"


def _gate_with_first_tokens(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    vllm_ttfts: Callable[[list[float]], list[float]],
) -> dict:
    """The gate CLI against a fake vLLM whose TTFT histogram moves, during the run, by
    `vllm_ttfts(the golden level's client TTFTs)`."""
    import workloads.benchmark.__main__ as gate_main

    level = _level_with_rows(tmp_path)
    golden = Run("g", (level,), (), tuple(parse_report(json.loads(LEVEL.read_text()))),
                 client_ttfts_s=client_ttfts_s(json.loads(level.read_text())))  # fmt: skip
    stamped = vllm_ttfts(list(golden.client_ttfts_s))
    buckets = dict.fromkeys(VLLM_TTFT_BOUNDS, 0.0)
    metrics = {QUERIES: 0.0, HITS: 0.0}

    def run(name: str, spec: dict, bounds: list, out: Path) -> Run:
        metrics[QUERIES] += 1000.0
        for bound in buckets:
            buckets[bound] += sum(t <= bound for t in stamped)
        return Run(name, golden.reports, tuple(bounds), golden.levels,
                   client_ttfts_s=golden.client_ttfts_s)  # fmt: skip

    monkeypatch.setattr(gate_main, "run_guidellm", run)
    answer = {"choices": [{"message": {"content": "p"}}]}
    target, server = _fake_vllm(200, answer, metrics, ttft_buckets=buckets)
    tmp_path.mkdir(parents=True, exist_ok=True)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"stack": "t", "gate": asdict(TARGETS)}))
    try:
        main(["--plan", str(plan), "--target", target, "--out", str(tmp_path / "r"),
              "--skip-capacity-search", "--concurrency", "4",
              "--metrics-url", f"{target}/metrics"])  # fmt: skip
    finally:
        server.shutdown()
    return json.loads((tmp_path / "r" / "gate.json").read_text())


def test_a_searchs_probes_join_their_first_token_counts() -> None:
    """A capacity search's probes are metered one by one: joined, their TTFT histograms add
    bound by bound and their client TTFTs follow each other, so the gate reports the search's
    first-token path over every probe's requests; where a probe went unmetered, none."""
    from workloads.benchmark.report import first_token_path

    inf = math.inf
    a = Run("a", (), (), (), server_ttft_buckets=((0.5, 2.0), (inf, 3.0)),
            client_ttfts_s=(0.2, 0.7, 0.9))  # fmt: skip
    b = Run("b", (), (), (), server_ttft_buckets=((0.5, 1.0), (inf, 2.0)),
            client_ttfts_s=(0.3, 0.8))  # fmt: skip
    both = joined("search", [a, b])
    assert both.server_ttft_buckets == ((0.5, 3.0), (inf, 5.0))
    assert both.client_ttfts_s == (0.2, 0.7, 0.9, 0.3, 0.8)
    path = first_token_path(both)
    assert path is not None and path.requests == 5
    assert (path.vllm_share, path.client_share) == (pytest.approx(0.6), pytest.approx(0.4))
    unmetered = Run("c", (), (), (), client_ttfts_s=(0.1,))
    assert joined("search", [a, unmetered]).server_ttft_buckets == ()
    other_bounds = replace(b, server_ttft_buckets=((1.0, 1.0), (inf, 2.0)))
    assert joined("search", [a, other_bounds]).server_ttft_buckets == ()


def test_first_tokens_the_client_got_later_than_vllm_had_them_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM stamped every first token at half the TTFT the client measured: at the bucket
    bound where the two shares part most, the report says at least that difference of the
    requests reached the client later than vLLM had them (no bound parts them more); where
    vLLM's stamps and the client's agree, the difference is none; where vLLM counted other
    requests than the client's (another run's), nothing is said."""
    gate = _gate_with_first_tokens(tmp_path / "a", monkeypatch, lambda ts: [t / 2 for t in ts])
    path = gate["first_token_paths"]["optimized rag"]
    # Each request's TTFT stays in the trimmed reports' rows, not repeated in gate.json.
    assert "client_ttfts_s" not in gate["runs"]["optimized"]["rag"]
    assert "server_ttft_buckets" in gate["runs"]["optimized"]["rag"]
    client = client_ttfts_s(json.loads((tmp_path / "a" / "level.json").read_text()))
    assert path["requests"] == len(client) == 161
    at = path["bound_s"]
    assert path["vllm_share"] == pytest.approx(sum(t / 2 <= at for t in client) / len(client))
    assert path["client_share"] == pytest.approx(sum(t <= at for t in client) / len(client))
    assert path["late_after_vllm_share"] == pytest.approx(path["vllm_share"] - path["client_share"])
    assert path["late_after_vllm_share"] > 0.2
    for bound in VLLM_TTFT_BOUNDS[:-1]:
        gap = sum(t / 2 <= bound for t in client) - sum(t <= bound for t in client)
        assert gap / len(client) <= path["late_after_vllm_share"] + 1e-9
    markdown = (tmp_path / "a" / "r" / "gate.md").read_text()
    assert "## First tokens: at vLLM and at the client" in markdown
    same = _gate_with_first_tokens(tmp_path / "b", monkeypatch, lambda ts: ts)
    assert same["first_token_paths"]["optimized rag"]["late_after_vllm_share"] == 0.0
    other = _gate_with_first_tokens(tmp_path / "c", monkeypatch, lambda ts: ts + ts)
    assert other["first_token_paths"] == {}
    assert "First tokens" not in (tmp_path / "c" / "r" / "gate.md").read_text()
