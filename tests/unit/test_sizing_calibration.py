"""The sizing model against vLLM runs measured on an H100.

Reference figures: H100 80GB, Llama-3.1-8B architecture with random weights, vLLM 0.25.1,
`vllm bench serve` with 2048 input / 256 output tokens (the workplace's shared GPU notes,
gpu/README.md, measured 2026-11-22). Stock = vLLM defaults (bf16, util 0.9); optimized = FP8
weights + FP8 KV cache, util 0.92, max-num-seqs 256, max-num-batched-tokens 8192.

Tolerances are the model's stated accuracy: KV-cache capacity ±5 %, throughput ±20 %,
ITL p95 ±35 %. The post-deploy gate re-checks capacity on every real deployment.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.gpu.h200.summary import GATE, SCRIPTS, knobs_of
from infra.catalog import ACCELERATORS, MODEL_PRESETS
from infra.load_model import capacity_at_slo, simulate
from infra.plan import build_plan
from infra.sizing import (
    ServingKnobs,
    Workload,
    compute_seconds,
    kv_cache_capacity,
    replica_speed,
    stock_knobs,
    with_knobs,
)
from workloads.contract import target_runs

LLAMA_8B = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
H100 = ACCELERATORS["H100-80GB"]
STOCK = stock_knobs(H100, max_model_len=4096, tensor_parallel_size=1)
OPTIMIZED = with_knobs(
    STOCK,
    quantization="fp8",
    kv_cache_dtype="fp8",
    gpu_memory_utilization=0.92,
    max_num_seqs=256,
    max_num_batched_tokens=8192,
)
RAG_SHAPE = Workload(
    concurrent_users=128,
    question_tokens=0,
    context_tokens=2048,
    output_tokens=256,
    shared_prefix_share=0.0,
)

# (profile, measured KV-cache tokens reported by vLLM at start-up)
MEASURED_KV_TOKENS = [(STOCK, 462_944), (OPTIMIZED, 1_031_216)]
# (profile, concurrency, measured req/s, measured ITL p95 ms)
MEASURED_SPEED = [
    (STOCK, 32, 8.03, 10.3),
    (STOCK, 128, 13.39, 196.0),
    (OPTIMIZED, 32, 12.21, 7.1),
    (OPTIMIZED, 128, 20.33, 128.3),
]


@pytest.mark.parametrize(("knobs", "measured"), MEASURED_KV_TOKENS, ids=["stock", "fp8"])
def test_kv_cache_tokens_within_5_percent(knobs, measured: int) -> None:
    predicted = kv_cache_capacity(LLAMA_8B, H100, knobs).kv_cache_tokens
    assert predicted == pytest.approx(measured, rel=0.05)


@pytest.mark.parametrize(
    ("knobs", "concurrency", "measured_rps", "measured_itl_ms"),
    MEASURED_SPEED,
    ids=["stock-c32", "stock-c128", "fp8-c32", "fp8-c128"],
)
def test_throughput_and_itl_within_stated_accuracy(
    knobs, concurrency: int, measured_rps: float, measured_itl_ms: float
) -> None:
    speed = replica_speed(LLAMA_8B, H100, knobs, RAG_SHAPE, concurrency)
    assert speed.requests_per_s == pytest.approx(measured_rps, rel=0.20)
    assert speed.itl_p95_ms == pytest.approx(measured_itl_ms, rel=0.35)


def test_model_reproduces_the_measured_optimized_speedup() -> None:
    stock = replica_speed(LLAMA_8B, H100, STOCK, RAG_SHAPE, 128).requests_per_s
    optimized = replica_speed(LLAMA_8B, H100, OPTIMIZED, RAG_SHAPE, 128).requests_per_s
    measured_ratio = 20.33 / 13.39
    assert optimized / stock == pytest.approx(measured_ratio, rel=0.20)


def test_the_h100_entry_predicts_the_products_gate_on_an_h100_at_2048_256() -> None:
    """The product's gate on one H100 (2026-12-05, `gpu_h100_frontend/`): stock vLLM at 112
    streams of 2048/256, four count-bounded levels (two with two API server processes: the
    same engine). The catalog's H100 entry, never fitted to a gate run, simulates req/s and
    ITL p95 within 10 % of every run and the KV cache within 5 % of what vLLM reported. TTFT
    is not held: stock's TTFT tail there (p95 1.6-3.2 s, queueing that varies run to run) is
    the model's known gap (0.87 s simulated; `gpu_h100_frontend.md`)."""
    import re

    runs = GATE.parent / "gpu_h100_frontend"
    knobs = knobs_of(runs / "stock-c112-r1" / "server.args")
    point = simulate(LLAMA_8B, H100, knobs, Workload(256, 256, 1792, 256, 0.0), 112)
    predicted_kv = kv_cache_capacity(LLAMA_8B, H100, knobs).kv_cache_tokens
    names = [f"stock{arm}-c112-r{r}" for arm in ("", "-api2") for r in (1, 2)]
    for name in names:
        gate = json.loads((runs / name / "gate.json").read_text())
        (scenario,) = target_runs(gate).values()
        (level,) = scenario["levels"]
        assert level["requests_per_s"] == pytest.approx(point.requests_per_s, rel=0.10), name
        assert level["itl_ms"]["p95"] == pytest.approx(point.itl_p95_ms, rel=0.10), name
        log = (runs / name / "server-config.log").read_text(errors="replace")  # lines cut
        (reported,) = set(re.findall(r"GPU KV cache size: ([\d,]+) tokens", log))
        assert int(reported.replace(",", "")) == pytest.approx(predicted_kv, rel=0.05), name


def test_kv_capacity_matches_vllm_on_a_real_h100() -> None:
    """Committed measurement: vLLM 0.25.1 start-up reports, bf16/FP8 KV × util 0.85/0.92."""
    import json
    from pathlib import Path

    from benchmarks.gpu.compare_kv_capacity import compare

    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    source = json.loads((results / "gpu_kv_capacity.json").read_text())
    rows = compare(source["runs"], source["gpu"])
    assert len(rows) == 4
    assert {(r["kv_cache_dtype"], r["gpu_memory_utilization"]) for r in rows} == {
        ("auto", 0.85),
        ("auto", 0.92),
        ("fp8", 0.85),
        ("fp8", 0.92),
    }
    for row in rows:
        assert abs(row["error"]) <= 0.05, row
        concurrency_error = (
            row["predicted_max_concurrency_at_8192"] / row["max_concurrency_at_8192"] - 1
        )
        assert abs(concurrency_error) <= 0.05, row


def _gpu_proof() -> dict:
    import json
    from pathlib import Path

    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    return json.loads((results / "gpu_proof.json").read_text())


@pytest.mark.parametrize("step", [256, 512, 2560])
def test_last_chunk_step_of_a_long_document_within_20_percent(step: int) -> None:
    """Committed measurement: 100k-token document, 8 chat streams, FP8 weights + KV on an H100;
    the chat streams' median gap over the last tenth of the prefill vs the model's last chunk."""
    run = _gpu_proof()["head_of_line"][f"chunked-{step}"]
    assert run["step_tokens"] == step
    predicted = compute_seconds(LLAMA_8B, H100, "fp8", 1, step, run["document_tokens"])
    assert predicted == pytest.approx(run["late_chunk_step_s"], rel=0.20)


def test_one_step_prefill_of_a_long_document_within_20_percent() -> None:
    run = _gpu_proof()["head_of_line"]["one-step"]
    tokens = run["document_tokens"]
    predicted = compute_seconds(LLAMA_8B, H100, "fp8", 1, tokens, tokens / 2)
    assert predicted == pytest.approx(run["worst_gap_during_document_s"], rel=0.20)


def test_the_long_document_plan_keeps_measured_steps_within_the_itl_target() -> None:
    """The plan's step budget for 100k-token documents, run on the H100: every chunk step the
    chat streams saw up to the document's end stays within prod's ITL target (p99)."""
    from benchmarks.gpu.long_document_plan import summary

    plan = summary(100_000)
    run = _gpu_proof()["head_of_line"][f"chunked-{plan['max_num_batched_tokens']}"]
    assert run["gap_p99_during_document_s"] * 1e3 <= plan["itl_p95_ms"]
    assert run["late_chunk_step_s"] * 1e3 <= plan["itl_p95_ms"]


def test_the_plans_step_with_the_stacks_vllm_plugin_meets_the_worst_gap_target() -> None:
    """Issue #9's target on the committed H100 runs: with the long-document plan's step and
    the plugin the serving pods load, no chat stream waits more than 0.10 s for a token while
    a 100k-token document prefills (both tokenizers, and three more fresh documents)."""
    from benchmarks.gpu.long_document_plan import summary

    step = summary(100_000)["max_num_batched_tokens"]
    proof = _gpu_proof()
    runs = [proof["head_of_line"][f"chunked-{step}{suffix}"] for suffix in ("-plugin",
            "-bpe-plugin")] + [r for k, r in proof["head_of_line_end"].items()
                               if k.endswith("-plugin")]  # fmt: skip
    assert len(runs) >= 5
    for run in runs:
        assert run["step_tokens"] == step
        assert run["worst_gap_during_document_s"] <= 0.10
        assert run["gaps_over_100ms_during_document"] == 0


# --- capacity at the SLO: the scheduler simulation against the product's gate on an H200 ----

H200_GATE = GATE  # the committed gate reports the H200 summary reads
H200_KNOBS = ServingKnobs("fp8", "fp8", 0.92, 1, 8192, 2048, 423, True, True)
PROD_RAG = Workload(256, 256, 6144, 384, 0.0)


def h200_levels() -> dict[int, dict]:
    levels = {}
    for report in sorted(H200_GATE.glob("gate-*.json")):
        document = json.loads(report.read_text())
        assert document["targets"]["prompt_tokens"] == 6400  # the plan's shape, as measured:
        for level in document["runs"]["optimized"]["rag"]["levels"]:
            assert level["prompt_tokens_mean"] == 6400 and level["output_tokens_mean"] == 384
            assert level["measured_requests"] >= 4 * level["concurrency"]
            levels[level["concurrency"]] = level
    return levels


def test_the_h200_runs_are_the_plans_traffic_in_steady_state() -> None:
    assert sorted(h200_levels()) == [16, 32, 64, 96, 112]


@pytest.mark.parametrize("concurrency", [16, 32, 64, 96, 112])
def test_simulation_matches_the_gate_on_the_h200(concurrency: int) -> None:
    measured = h200_levels()[concurrency]
    point = simulate(LLAMA_8B, ACCELERATORS["H200"], H200_KNOBS, PROD_RAG, concurrency)
    assert point.requests_per_s == pytest.approx(measured["requests_per_s"], rel=0.05)
    assert point.itl_p95_ms == pytest.approx(measured["itl_ms"]["p95"], rel=0.15)
    # TTFT p50: the prompt's 2,048-token chunks plus the two steps scheduled ahead of it.
    if concurrency > 16:
        assert point.ttft_p50_ms == pytest.approx(measured["ttft_ms"]["p50"], rel=0.30)


def test_ttft_at_light_load_is_beyond_the_simulation() -> None:
    """The model's known gap, held so that a fix shows: at 16 streams the gate measured a
    longer median TTFT (412 ms) than at 32 and 64 (358, 344 ms); the simulation's TTFT only
    grows with load (269 ms at 16), so it is 35 % short there."""
    levels = h200_levels()
    p50 = {c: levels[c]["ttft_ms"]["p50"] for c in (16, 32, 64)}
    assert p50[16] > p50[32] > p50[64]
    point = simulate(LLAMA_8B, ACCELERATORS["H200"], H200_KNOBS, PROD_RAG, 16)
    assert 0.5 < point.ttft_p50_ms / p50[16] < 0.8


def test_capacity_at_the_slo_on_the_h200_is_where_the_gate_found_it() -> None:
    levels = h200_levels()
    # The highest measured level with TTFT p95 ≤ 2 s and ITL p95 ≤ 50 ms (112 streams).
    within = [c for c, lv in levels.items() if lv["ttft_ms"]["p95"] <= 2000
              and lv["itl_ms"]["p95"] <= 50]  # fmt: skip
    best = levels[max(within)]
    capacity = capacity_at_slo(LLAMA_8B, ACCELERATORS["H200"], H200_KNOBS, PROD_RAG, 2000, 50,
                               ceiling=423)  # fmt: skip
    # Past ≈ 112 streams the 2048-token steps carry all the prefill they can and every extra
    # decoding stream's KV cache is read in every step: ITL p95 crosses 50 ms first (the gate
    # at 127: 52.1 ms, and TTFT p95 2,037 ms, both missed by < 5 %).
    assert capacity.limited_by == "itl"
    assert capacity.point.itl_p95_ms == pytest.approx(best["itl_ms"]["p95"], rel=0.05)
    assert capacity.point.requests_per_s == pytest.approx(best["requests_per_s"], rel=0.15)
    assert capacity.point.concurrency == pytest.approx(max(within), rel=0.15)


# --- the re-planned prod on an H200 (one replica), and stock vLLM, through the same gate -----

STOCK_H200 = stock_knobs(ACCELERATORS["H200"], max_model_len=8192, tensor_parallel_size=1)


def gate_report(name: str) -> dict:
    document = json.loads((H200_GATE / f"{name}.json").read_text())
    (level,) = document["runs"]["optimized"]["rag"]["levels"]
    assert level["prompt_tokens_mean"] == 6400 and level["output_tokens_mean"] == 384
    assert level["measured_requests"] >= 4 * level["concurrency"]
    return document | {"level": level}


def server_knobs(name: str) -> ServingKnobs:
    """The knobs a committed server argument file started vLLM with."""
    return knobs_of(H200_GATE / f"server-{name}.args")


def test_the_stock_profile_is_vllms_defaults_as_the_plan_states_them() -> None:
    assert server_knobs("rag-stock") == STOCK_H200


@pytest.mark.parametrize(
    ("report", "server"),
    [("planned-optimized-c86", "rag-optimized")],
)
def test_simulation_matches_the_gate_for_both_profiles(report: str, server: str) -> None:
    level = gate_report(report)["level"]
    point = simulate(
        LLAMA_8B, ACCELERATORS["H200"], server_knobs(server), PROD_RAG, level["concurrency"]
    )
    assert point.requests_per_s == pytest.approx(level["requests_per_s"], rel=0.06)
    assert point.itl_p95_ms == pytest.approx(level["itl_ms"]["p95"], rel=0.15)


def test_the_replanned_h200_prod_passes_its_gate_at_its_planned_load() -> None:
    report = gate_report("planned-optimized-c86")
    plan = json.loads((H200_GATE / "plan-prod-h200-rag-optimized.json").read_text())["gate"]
    assert report["verdict"] == "pass"
    assert report["level"]["concurrency"] == plan["concurrency"]
    assert report["level"]["ttft_ms"]["p95"] <= plan["ttft_p95_ms"]
    assert report["level"]["itl_ms"]["p95"] <= plan["itl_p95_ms"]


def test_the_plans_capacity_at_the_slo_is_within_15_percent_of_the_gates() -> None:
    """The H200 variant of prod, planned now, against the capacity the gate's levels found."""
    from benchmarks.gpu.h200.plans import h200_config

    plan = build_plan(h200_config("rag"), "prod-h200-rag").gate.one_replica()
    levels = h200_levels()
    within = [c for c, lv in levels.items() if lv["ttft_ms"]["p95"] <= 2000
              and lv["itl_ms"]["p95"] <= 50]  # fmt: skip
    assert plan.capacity_concurrency == pytest.approx(max(within), rel=0.15)
    # The gate itself holds the measured capacity to the issue's ±15 %, not a looser bound.
    assert plan.capacity_tolerance == 0.15
    assert plan.capacity_requests_per_s == pytest.approx(
        levels[max(within)]["requests_per_s"], rel=plan.capacity_tolerance
    )
    # The repeats ran the plan's load per replica (the plan file they read was written before
    # the re-fit: capacity 113 then, 125-127 now, both within 15 % of the 112 measured).
    ran = json.loads((REPEATS / "plan-rag-optimized-rag-only.json").read_text())["gate"]
    assert ran["concurrency"] == plan.concurrency
    assert ran["capacity_concurrency"] == pytest.approx(max(within), rel=0.15)


# --- the bracket at prod's shape (2026-12-03): the plan's capacity, and stock's, gate-measured ---

BRACKET = H200_GATE / "prod-shape-bracket"


def test_the_plans_capacity_at_the_slo_is_the_gates_boundary() -> None:
    """The plan of 2026-12-03 (2048-token steps, max-num-seqs 127; steps costed as one max)
    predicted 127 streams; the gate at 127 missed both targets by < 5 % (TTFT p95 2,037 ms,
    ITL p95 52.1 ms) and met them at 112: the capacity lies in [112, 127). The plan now (steps
    costed per kernel kind) predicts 109 streams on its ITL-fitted 1,792-token steps, and the
    same model puts the measured 2048-token profile level with them: 112 streams."""
    from benchmarks.gpu.h200.plans import h200_config

    planned = build_plan(h200_config("rag"), "prod-h200-rag")
    plan = planned.gate.one_replica()
    ran = json.loads((BRACKET / "opt-c127" / "plan.json").read_text())["gate"]
    assert ran["capacity_concurrency"] == 127
    over = only_level(BRACKET / "opt-c127" / "gate.json", 6400, 384)
    assert over["concurrency"] == 127
    assert over["ttft_ms"]["p95"] > 2000 or over["itl_ms"]["p95"] > 50
    assert over["ttft_ms"]["p95"] <= 1.05 * 2000 and over["itl_ms"]["p95"] <= 1.05 * 50
    met = max(c for c, lv in h200_levels().items()
              if lv["ttft_ms"]["p95"] <= 2000 and lv["itl_ms"]["p95"] <= 50)  # fmt: skip
    assert planned.sizing.replica.knobs.max_num_batched_tokens == 1792
    assert plan.capacity_concurrency == pytest.approx(met, rel=0.05)
    assert plan.capacity_concurrency < over["concurrency"]
    measured_knobs = knobs_of(BRACKET / "opt-c127" / "server.args")
    assert measured_knobs.max_num_batched_tokens == 2048
    measured_profile = capacity_at_slo(LLAMA_8B, ACCELERATORS["H200"], measured_knobs, PROD_RAG,
                                       2000, 50, ceiling=423)  # fmt: skip
    assert measured_profile.point.concurrency == pytest.approx(met, rel=0.05)
    # Past 96 streams the GPU's rate is flat (5.83, 5.85, 5.80 req/s at 96, 112, 127), and so is
    # the simulation's (5.73 at 112, 5.80 at 127): a bigger decode batch gains nothing when
    # every decoding stream's KV cache is read in every step. (Costed as one max per step it
    # gained: 6.19 req/s at 127, 7 % over.)
    point = simulate(LLAMA_8B, ACCELERATORS["H200"], measured_knobs, PROD_RAG, over["concurrency"])
    assert point.requests_per_s == pytest.approx(over["requests_per_s"], rel=0.03)
    assert point.itl_p95_ms == pytest.approx(over["itl_ms"]["p95"], rel=0.03)


def test_the_device_plans_say_their_server_has_random_weights(tmp_path: Path) -> None:
    """serve.sh loads dummy weights; the plans it is gated with must say so, so the gate's
    report does (the reports of 2026-12-02/03 say `random_weights: false`: written before)."""
    from benchmarks.gpu.h200.plans import write

    assert "--load-format dummy" in (SCRIPTS / "serve.sh").read_text()
    write(tmp_path)
    plans = sorted(tmp_path.glob("*.json"))
    assert len(plans) == 8
    assert all(json.loads(p.read_text())["model"]["random_weights"] is True for p in plans)


def test_a_lever_is_the_plans_own_server_plus_one_setting_and_names_itself(tmp_path: Path) -> None:
    """The CUDA-graph lever: the plan's optimized arguments at prod's shape, plus a capture size
    up to its step budget (vLLM 0.25.1 stops at min(2 × max-num-seqs, 512) = 218 for the plan,
    below every mixed step); serve.sh files the `.variant` and gate.sh names the run with it,
    so the summary keeps the lever apart from the plan's own levels."""
    from benchmarks.gpu.h200.plans import write

    write(tmp_path)
    own = (tmp_path / "rag-optimized.args").read_text().split()
    lever = (tmp_path / "rag-optimized-cudagraph.args").read_text().split()
    budget = own[own.index("--max-num-batched-tokens") + 1]
    assert lever == [*own, "--max-cudagraph-capture-size", budget]
    assert int(own[own.index("--max-num-seqs") + 1]) * 2 < int(budget)
    variant = (tmp_path / "rag-optimized-cudagraph.variant").read_text().strip()
    assert variant == f"CUDA graphs to {int(budget):,} tokens"
    assert knobs_of(tmp_path / "rag-optimized-cudagraph.args") == knobs_of(
        tmp_path / "rag-optimized.args"
    )
    assert '"${args_file%.args}.variant"' in (SCRIPTS / "serve.sh").read_text()
    assert 'cp "${state%.args}.variant" "$out/variant"' in (SCRIPTS / "gate.sh").read_text()
    # Its run on the H200 (2026-12-04) was served with exactly these arguments and named so.
    run = REPEATS / "cg1792-c109-r1"
    assert (run / "server.args").read_text().split()[2:] == lever[2:]  # past --model PATH
    assert (run / "variant").read_text().strip() == variant


def test_every_server_has_its_frontend_lever(tmp_path: Path) -> None:
    """More API server processes for each shape's optimized and stock servers: the same
    engine (the model's knobs unchanged), one setting added, named so the summary keeps its
    runs apart from the server's own."""
    from benchmarks.gpu.h200.plans import FRONTEND_LEVERS, write

    write(tmp_path)
    for server in ("rag-optimized", "rag-stock", "chat-optimized", "chat-stock"):
        own = (tmp_path / f"{server}.args").read_text().split()
        for lever, (variant, extra) in FRONTEND_LEVERS.items():
            assert (tmp_path / f"{server}-{lever}.args").read_text().split() == [*own, *extra]
            assert (tmp_path / f"{server}-{lever}.variant").read_text().strip() == variant
            assert knobs_of(tmp_path / f"{server}-{lever}.args") == knobs_of(
                tmp_path / f"{server}.args"
            )
    assert FRONTEND_LEVERS["api2"][1] == ["--api-server-count", "2"]


def test_every_line_the_device_queue_would_run_names_a_server_and_a_plan_written_for_it(
    tmp_path: Path,
) -> None:
    """A queue line that names no written server or plan costs a device call to find out:
    every active line of the committed queue.txt names `<server>.args` and `<plan>.json` that
    plans.py writes, streams as a number or `search`, and a repeat index."""
    from benchmarks.gpu.h200.plans import write

    write(tmp_path)
    lines = [
        line.split()
        for line in (SCRIPTS / "queue.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines, "the committed queue runs nothing"
    for server, plan, label, streams, repeats, *_ in lines:
        assert (tmp_path / f"{server}.args").is_file(), server
        assert (tmp_path / f"{plan}.json").is_file(), plan
        assert label and (streams == "search" or int(streams) > 0) and int(repeats) > 0


def test_two_api_servers_bought_stock_nothing_on_the_h100() -> None:
    """The frontend lever for stock at 112 streams of 2048/256, on one H100 (2026-12-05), each
    arm twice on the same machine: neither the lever's req/s nor its TTFT p95 beats the
    server's own best by more than its runs' spread — no gain, so queue.txt leaves it off. The runs
    are the servers plans.py writes (the lever one setting more) at the plan's traffic."""
    from benchmarks.gpu.h200.plans import FRONTEND_LEVERS

    runs = GATE.parent / "gpu_h100_frontend"

    def level(name: str) -> dict:
        gate = json.loads((runs / name / "gate.json").read_text())
        (scenario,) = target_runs(gate).values()
        (measured,) = scenario["levels"]
        assert measured["concurrency"] == 112
        assert measured["prompt_tokens_mean"] == pytest.approx(2048, rel=0.01)
        return measured

    own = [level(f"stock-c112-r{r}") for r in (1, 2)]
    lever = [level(f"stock-api2-c112-r{r}") for r in (1, 2)]
    rates = [m["requests_per_s"] for m in own]
    tails = [m["ttft_ms"]["p95"] for m in own]
    # No gain: the lever's best rate no higher, its best TTFT tail no lower, than the
    # server's own best moved by its runs' spread.
    assert max(m["requests_per_s"] for m in lever) <= max(rates) + (max(rates) - min(rates))
    assert min(m["ttft_ms"]["p95"] for m in lever) >= min(tails) - (max(tails) - min(tails))
    args = {
        r: (runs / f"stock{r}-c112-r1" / "server.args").read_text().split() for r in ("", "-api2")
    }
    assert args["-api2"] == [*args[""], *FRONTEND_LEVERS["api2"][1]]
    assert "H100" in (runs / "device.txt").read_text()


def test_flashinfer_is_no_lever_where_it_was_timed_beside_fa3() -> None:
    """FlashInfer's kernels on the traced mix, beside FA3's re-timed in the same call on one
    H100 (2026-12-05): its fastest FP8 decode reads under FA3's, so its serving run is not
    made (the H200 README's rule)."""
    from benchmarks.gpu.h200.attention_rates import flashinfer_verdict

    result = json.loads((GATE.parent / "gpu_h100_attention_rates.json").read_text())
    assert "H100" in result["device"]
    verdict = flashinfer_verdict(result)
    assert verdict is not None and "no lever" in verdict
    assert all(r["checked"] for r in result["flashinfer"] + result["layouts"])


def test_the_cuda_graph_lever_measured_slower_so_the_plan_leaves_it_out() -> None:
    """CUDA graphs captured up to the 1,792-token step (109 streams, prod's shape, one run):
    5.40 req/s, ITL p95 48.9 ms, TTFT p95 1.52 s — against the plan's own profile's four runs
    at the same streams, 5.63-5.73 req/s, 46.1-46.9 ms, 1.45-1.49 s: slower on all three, by
    more than the four runs' spread (1.7 %). The plan does not take it."""
    from benchmarks.gpu.h200.plans import h200_config
    from benchmarks.gpu.h200.summary import levels

    runs = [lv for lv in levels() if lv.refused is None and lv.concurrency == 109]
    own = [lv for lv in runs if lv.profile == "optimized (1,792-token steps)"]
    (lever,) = [lv for lv in runs if lv.profile == "optimized (CUDA graphs to 1,792 tokens)"]
    assert len(own) == 4
    slowest = min(lv.requests_per_s for lv in own)
    spread = max(lv.requests_per_s for lv in own) / slowest - 1
    assert lever.requests_per_s < slowest * (1 - spread)
    assert lever.itl_p95_ms > max(lv.itl_p95_ms for lv in own)
    assert lever.ttft_p95_ms > max(lv.ttft_p95_ms for lv in own)
    plan = build_plan(h200_config("rag"), "prod-h200-rag")
    assert "--max-cudagraph-capture-size" not in plan.vllm.server_args()


def test_the_16_bit_kv_lever_was_predicted_before_its_run_and_the_plan_keeps_fp8_kv() -> None:
    """vLLM's 16-bit KV cache in place of the plan's FP8 one, the plan's profile otherwise, at
    its capacity (109 streams; one run): decoding streams read twice the KV bytes, and the
    per-kernel step cost — fitted before the run — put it at 4.64 req/s and ITL p95 57.3 ms;
    measured 4.75 and 55.8 (missed ITL). Below the plan's own three runs there, so the plan
    keeps FP8 KV."""
    from benchmarks.gpu.h200.plans import h200_config
    from benchmarks.gpu.h200.summary import levels

    runs = [lv for lv in levels() if lv.refused is None and lv.concurrency == 109]
    (lever,) = [lv for lv in runs if lv.profile == "optimized (16-bit KV cache)"]
    own = [lv for lv in runs if lv.profile == "optimized (1,792-token steps)"]
    knobs = knobs_of(REPEATS / "kv16-c109-r1" / "server.args")
    assert knobs.kv_cache_dtype == "auto" and knobs.quantization == "fp8"
    point = simulate(LLAMA_8B, ACCELERATORS["H200"], knobs, PROD_RAG, 109)
    assert point.requests_per_s == pytest.approx(lever.requests_per_s, rel=0.05)
    assert point.itl_p95_ms == pytest.approx(lever.itl_p95_ms, rel=0.05)
    assert lever.itl_p95_ms > 50 and lever.requests_per_s < min(lv.requests_per_s for lv in own)
    plan = build_plan(h200_config("rag"), "prod-h200-rag")
    assert plan.vllm.kv_cache_dtype == "fp8"


def test_stock_at_prods_shape_is_where_the_simulation_puts_it() -> None:
    """Stock vLLM (bf16, 8192-token steps) at 74 streams, the plan's stock capacity (ITL-bound),
    count-bounded: both targets met, ITL p95 48.8 ms of 50 — rate and ITL as simulated."""
    knobs = knobs_of(BRACKET / "stock-c74" / "server.args")
    assert knobs == STOCK_H200
    level = only_level(BRACKET / "stock-c74" / "gate.json", 6400, 384)
    capacity = capacity_at_slo(LLAMA_8B, ACCELERATORS["H200"], knobs, PROD_RAG, 2000, 50,
                               ceiling=knobs.max_num_seqs)  # fmt: skip
    assert capacity.limited_by == "itl" and capacity.point.concurrency == level["concurrency"]
    assert level["ttft_ms"]["p95"] <= 2000 and level["itl_ms"]["p95"] <= 50
    point = simulate(LLAMA_8B, ACCELERATORS["H200"], knobs, PROD_RAG, level["concurrency"])
    assert point.requests_per_s == pytest.approx(level["requests_per_s"], rel=0.05)
    assert point.itl_p95_ms == pytest.approx(level["itl_ms"]["p95"], rel=0.05)


# --- 2048/256 on the H200, the model's known gap, and which committed runs are steady states ---

REPEATS = H200_GATE / "prod-shape-repeats"
CHAT = H200_GATE / "chat"
CHAT_SHAPE = Workload(256, 256, 1792, 256, 0.0)


def only_level(report: Path, prompt: int, output: int) -> dict:
    (level,) = target_runs(json.loads(report.read_text()))["rag"]["levels"]
    # The plan's traffic, applied, in steady state — or the run proves nothing.
    assert level["prompt_tokens_mean"] == pytest.approx(prompt, rel=0.01)
    assert level["output_tokens_mean"] == output
    assert level["measured_requests"] >= 4 * level["concurrency"]
    assert level["in_flight_mean"] >= 0.9 * level["concurrency"]
    return level


@pytest.mark.parametrize(
    ("report", "server", "tolerance"),
    # FP8 at 256 streams is the model's largest error on a steady-state level (8 % slow on
    # req/s, ITL p95 10 % high): its 256 decoding streams' KV reads overlap the prefill's
    # matmuls more on the GPU than two kernels run one after the other can
    # (gpu_h200_step_cost.md: costed as one max per step, 3 % and 4 %, but 7 % off at 127
    # streams of prod's shape).
    [("optimized-c256", "server-chat-optimized.args", 0.10),
     ("stock-c112", "server-chat-stock.args", 0.06),
     ("stock-c140", "server-chat-stock.args", 0.06)],
)  # fmt: skip
def test_simulation_matches_the_gate_at_2048_256(
    report: str, server: str, tolerance: float
) -> None:
    level = only_level(CHAT / f"{report}.json", 2048, 256)
    point = simulate(LLAMA_8B, ACCELERATORS["H200"], knobs_of(CHAT / server), CHAT_SHAPE,
                     level["concurrency"])  # fmt: skip
    assert point.requests_per_s == pytest.approx(level["requests_per_s"], rel=tolerance)
    assert point.itl_p95_ms == pytest.approx(level["itl_ms"]["p95"], rel=tolerance)


def test_stock_ttft_tail_at_2048_256_is_beyond_the_simulation() -> None:
    """The model's known gap, held so that a fix shows: stock vLLM's TTFT p95 at 2048/256
    (8192-token steps, 112-140 streams) is 2.4-3.8× the simulated one — its capacity at the
    SLO there is TTFT-bound at or below 112 streams (met there in 1 of 3 runs: TTFT p95 1.97,
    3.12, 2.74 s), the simulation says ITL-bound at 176."""
    knobs = knobs_of(CHAT / "server-chat-stock.args")
    for report in ("stock-c112.json", "stock-c140.json", "stock112-r2/gate.json",
                   "stock112-r3/gate.json"):  # fmt: skip
        level = only_level(CHAT / report, 2048, 256)
        point = simulate(LLAMA_8B, ACCELERATORS["H200"], knobs, CHAT_SHAPE, level["concurrency"])
        assert 2.0 < level["ttft_ms"]["p95"] / point.ttft_p95_ms < 4.0


def test_only_steady_state_levels_count_in_the_h200_summary() -> None:
    """The summary behind the README's table counts the count-bounded levels and refuses every
    level run with --seconds 100-110 (warm-up 12.5-13.8 s, requests 15-20 s: the first wave's
    burst inside the window; GuideLLM's SLO attainment there was 0.81-0.86, 1.0 elsewhere)."""
    from benchmarks.gpu.h200.summary import levels, markdown, summarize

    measured = list(levels())
    refused = {lv.report for lv in measured if lv.refused}
    assert refused == {
        "stock-c58.json",
        *(f"prod-shape-repeats/{run}/gate.json" for run in (
            "opt86-r1", "opt86-r2", "stock58-r1", "stock66-r1", "stock74-r1", "stock74-r2",
            "lever8192-c112")),
    }  # fmt: skip
    assert all("warm-up" in lv.refused for lv in measured if lv.refused)
    summary = summarize()
    capacity = {(c["shape"], c["profile"]): c for c in summary["capacity"]}
    assert capacity[("rag", "optimized")]["streams_within_slo"] == 112
    # The plan's profile at 112, three count-bounded runs: ITL p95 49.1, 49.5 (met), 50.4 ms.
    assert capacity[("rag", "optimized")]["runs"] == 3
    assert capacity[("rag", "optimized")]["runs_met"] == 2
    assert capacity[("rag", "optimized")]["first_level_missing_slo"] == 127
    assert capacity[("rag", "stock")]["streams_within_slo"] == 74
    # Stock at 74, count-bounded three times (2026-12-03, -03, -04): ITL p95 48.8 ms (met),
    # 50.1 ms (missed), 49.7 ms (met). Every run counts, and the table says the level is the
    # boundary rather than "≥ 74".
    assert capacity[("rag", "stock")]["runs"] == 3
    assert capacity[("rag", "stock")]["runs_met"] == 2
    assert capacity[("rag", "stock")]["requests_per_s_min"] == pytest.approx(3.69, abs=0.01)
    assert capacity[("rag", "stock")]["requests_per_s_max"] == pytest.approx(3.78, abs=0.01)
    assert "74 (the boundary: met in 2 of 3 runs)" in markdown(summary)
    assert summary["optimized_over_stock"]["rag"] == pytest.approx(
        5.784 / ((3.780 + 3.691 + 3.728) / 3), rel=0.002
    )
    assert capacity[("chat", "stock")]["first_level_missing_slo"] == 140
    # 2048/256: optimized at 256 streams met in 3 of 3 runs (20.49, 20.69, 20.52 req/s); stock
    # at 112 in 1 of 3 (12.85 met; 12.63 and 12.65 missed TTFT p95): every run counts.
    assert (
        capacity[("chat", "optimized")]["runs"],
        capacity[("chat", "optimized")]["runs_met"],
    ) == (3, 3)
    assert (capacity[("chat", "stock")]["runs"], capacity[("chat", "stock")]["runs_met"]) == (3, 1)
    assert summary["optimized_over_stock"]["chat"] == pytest.approx(
        (20.49 + 20.69 + 20.52) / (12.85 + 12.63 + 12.65), rel=0.002
    )
    # The committed summary is this one (regenerate: python -m benchmarks.gpu.h200.summary).
    committed = json.loads((H200_GATE.parent / "gpu_h200_summary.json").read_text())
    assert committed == json.loads(json.dumps(summary))


def test_the_replanned_prods_capacity_is_what_its_gate_measures_on_the_h200() -> None:
    """Issue #16's done-when, from the committed runs: the plan's current profile (1,792-token
    steps, max-num-seqs 109) promised 5.80 req/s at 109 streams. Four count-bounded runs there
    (four H200s, 2026-12-04 and -05, the last the gate's own capacity search) all met the SLO at
    5.63-5.73 req/s; 125 streams missed it (TTFT p95 4.2 s), so the capacity lies between; its
    planned load, 86 streams, met the SLO three times (5.52, 5.66, 5.57 req/s; ITL p95 43.4,
    38.9, 39.5 ms)."""
    from benchmarks.gpu.h200.summary import summarize

    capacity = {(c["shape"], c["profile"]): c for c in summarize()["capacity"]}
    found = capacity[("rag", "optimized (1,792-token steps)")]
    versus = found["plan_vs_gate"]
    assert (found["streams_within_slo"], found["runs"], found["runs_met"]) == (109, 4, 4)
    assert found["first_level_missing_slo"] == 125
    assert versus["predicted_capacity_streams"] == 109 and versus["tolerance"] == 0.15
    assert versus["within_tolerance"]
    assert versus["measured_over_predicted"] == pytest.approx(5.67 / 5.80, abs=0.005)
    assert (versus["planned_streams"], versus["planned_runs"]) == (86, 3)
    assert versus["planned_runs_met"] == 3
    # Every run within 3 % of the plan's number, and the repeats within 2 % of each other.
    predicted = versus["predicted_capacity_requests_per_s"]
    assert 0.97 * predicted <= found["requests_per_s_min"] <= found["requests_per_s_max"]
    assert found["requests_per_s_max"] <= 1.03 * predicted
    assert found["requests_per_s_max"] / found["requests_per_s_min"] - 1 < 0.02


def test_a_run_that_describes_itself_needs_no_summary_line(tmp_path: Path) -> None:
    """gate.sh files the plan and the server's arguments beside each report: the summary finds
    such a run by itself, takes shape and profile from its plan, and refuses a plan whose
    traffic is no shape it compares."""
    from benchmarks.gpu.h200.summary import NotThePlansTraffic, discovered

    assert ("rag", "stock", "prod-shape-bracket/stock-c74/gate.json",
            "prod-shape-bracket/stock-c74/server.args") in discovered()  # fmt: skip
    run = tmp_path / "new-run"
    shutil.copytree(BRACKET / "stock-c74", run)
    assert discovered(tmp_path) == [("rag", "stock", "new-run/gate.json", "new-run/server.args")]
    (run / "variant").write_text("FlashInfer attention\n")  # a lever's run: kept apart
    assert discovered(tmp_path)[0][1] == "stock (FlashInfer attention)"
    plan = json.loads((run / "plan.json").read_text())
    plan["gate"]["prompt_tokens"] = 4096
    (run / "plan.json").write_text(json.dumps(plan))
    with pytest.raises(NotThePlansTraffic, match="4096 prompt tokens"):
        discovered(tmp_path)
    (run / "server.args").unlink()  # not self-describing: left to RUNS
    assert discovered(tmp_path) == []


def test_the_summary_holds_every_level_to_the_gates_shape_rule(tmp_path: Path) -> None:
    """Token means within the report's shape tolerance are the plan's traffic (the chat
    template moves a prompt's mean by a token: 6,400.8 of 6,400); beyond it the summary refuses
    the report, as the gate would have."""
    from benchmarks.gpu.h200.summary import NotThePlansTraffic, levels

    gate = tmp_path / "gate"
    shutil.copytree(H200_GATE, gate)
    repeat = gate / "prod-shape-repeats" / "opt112-r2" / "gate.json"
    found = [lvl for lvl in levels(gate) if lvl.report.endswith("opt112-r2/gate.json")]
    assert [lvl.concurrency for lvl in found] == [112]
    report = json.loads(repeat.read_text())
    assert report["runs"]["optimized"]["rag"]["levels"][0]["prompt_tokens_mean"] != 6400
    report["runs"]["optimized"]["rag"]["levels"][0]["prompt_tokens_mean"] = 6400 * 1.06
    repeat.write_text(json.dumps(report))
    with pytest.raises(NotThePlansTraffic, match=r"opt112-r2.*±5%"):
        list(levels(gate))


def test_the_summary_holds_each_requests_tokens_where_the_report_keeps_them(
    tmp_path: Path,
) -> None:
    """Reports since 2026-12-04 keep each level's 1st and 99th percentile of tokens per request:
    a mean on the plan's shape made of short and long requests is refused, as the gate would."""
    from benchmarks.gpu.h200.summary import NotThePlansTraffic, levels

    gate = tmp_path / "gate"
    shutil.copytree(H200_GATE, gate)
    report = gate / "prod-shape-repeats" / "stock74-r4" / "gate.json"
    document = json.loads(report.read_text())
    (level,) = document["runs"]["stock"]["rag"]["levels"]
    assert level["prompt_tokens_range"] == [6400.0, 6401.0]
    assert len(list(levels(gate))) == len(list(levels()))
    level["prompt_tokens_range"] = [3200.0, 9600.0]  # the same mean, halves and one-and-a-halves
    report.write_text(json.dumps(document))
    with pytest.raises(NotThePlansTraffic, match=r"stock74-r4.*prompt tokens.*3200"):
        list(levels(gate))


def test_the_uncached_headline_was_served_by_no_prefix_cache(tmp_path: Path) -> None:
    """Every committed run of the rag scenario alone read vLLM's /metrics before and after: its
    prefix cache served none of the prompt tokens it looked up (the 7-token chat template is
    under one KV block), so each rate is uncached capacity. A run whose cache served its
    prompts is refused: its rate would not be the capacity the plan states."""
    from benchmarks.gpu.h200.summary import NotThePlansTraffic, levels, prefix_cache_hit_share

    runs = [p.parent for p in H200_GATE.rglob("metrics-after.txt")]
    assert len(runs) >= 24
    assert {prefix_cache_hit_share(run) for run in runs} == {0.0}
    gate = tmp_path / "gate"
    shutil.copytree(H200_GATE, gate)
    after = gate / "prod-shape-repeats" / "stock74-r4" / "metrics-after.txt"
    text = after.read_text()
    hits = 'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 0.0'
    assert hits in text
    after.write_text(text.replace(hits, hits.replace(" 0.0", " 2.8e+06")))
    assert prefix_cache_hit_share(after.parent) == pytest.approx(2.8e6 / 5_683_944, rel=1e-6)
    with pytest.raises(NotThePlansTraffic, match=r"stock74-r4.*prefix cache served 49\.3%"):
        list(levels(gate))
    (after.parent / "metrics-before.txt").unlink()
    assert prefix_cache_hit_share(after.parent) is None


def test_the_plans_capacity_holds_against_every_run_of_its_boundary() -> None:
    """All count-bounded runs of the 2048-token profile at its boundary (112 streams, prod's
    shape: 5.85, 5.81, 5.70 req/s over two days; ITL p95 49.1, 49.5, 50.4 ms) against the
    capacity the plan states (5.80 req/s on its 1,792-token steps): every run's rate within
    2 % of it, well inside the gate's ±15 % (costed as one max per step the plan said 6.19:
    the slowest run was 8 % under)."""
    from benchmarks.gpu.h200.plans import h200_config
    from benchmarks.gpu.h200.summary import levels

    plan = build_plan(h200_config("rag"), "prod-h200-rag").gate.one_replica()
    runs = [lv for lv in levels() if lv.shape == "rag" and lv.profile == "optimized"
            and lv.refused is None and lv.concurrency == 112]  # fmt: skip
    assert len(runs) == 3
    for run in runs:
        ratio = run.requests_per_s / plan.capacity_requests_per_s
        assert abs(ratio - 1) <= plan.capacity_tolerance, run.report
        assert ratio == pytest.approx(1, abs=0.03), run.report
        assert run.itl_p95_ms == pytest.approx(50, rel=0.05)  # the ITL target is what binds


def test_steps_costed_per_kernel_kind_fit_the_gate_better_than_one_max() -> None:
    """How the simulation costs a step, chosen by the committed gate levels: per kernel kind
    (linear layers, then attention) at its best 8-bit scale — the catalog's — has the smaller
    mean error over every steady-state level. Neither way is within 5 % everywhere at prod's
    shape: the 1,792-token profile at its planned load (86 streams, out of sample) measured
    ITL p95 43.4 ms in its first run where per-kernel costing says 38.3 (-11.7 %) and one max
    per step 39.1 (-9.9 %) — the model's worst miss at prod's shape, inside the gate's ±15 %;
    its second run measured 38.9 (-1.6 %, +0.4 %). The CUDA-graph lever's run counts too: the
    model has no term for it and predicts the plan's own profile, 7 % over what it measured;
    so do the two runs in 128-token KV pages (3 % over) — one max per step, at 4.0 % mean
    over the 34 levels, is the one they push to 4 %. Per kernel kind, the catalog's 8-bit
    scale (0.88) is within a grid step and 0.2 points of mean error of the best (0.86 since
    the gate's own search added three levels of the plan's profile).
    The 16-bit KV lever (run after the fit) tells the two ways apart: per kernel kind its
    doubled KV reads cost what they measured (2-3 %); one max per step hides them under the
    prefill's matmuls and misses it by 25 %."""
    from benchmarks.gpu.h200.step_cost import compare

    result = compare()
    kernel, whole = result["best"]["per kernel"], result["best"]["whole step"]
    assert result["levels"] == 34
    catalog = ACCELERATORS["H200"].compute_scale_8bit
    per_kernel = [row for row in result["grid"] if row["way"] == "per kernel"]
    (at_catalog,) = [row for row in per_kernel if row["compute_scale_8bit"] == catalog]
    # The optimum is flat: the three levels of the gate's own search (2026-12-05) moved the
    # best a grid step under the catalog's 0.88, for 0.2 points of mean error.
    assert abs(kernel["compute_scale_8bit"] - catalog) <= 0.02 + 1e-9
    assert at_catalog["mean_abs_error"] - kernel["mean_abs_error"] < 0.005
    assert at_catalog["mean_abs_error"] < 0.03 < whole["mean_abs_error"] <= 0.045
    assert at_catalog["rag_max_abs_error"] <= 0.12 < 0.2 < whole["rag_max_abs_error"]
    # The committed comparison is this one (regenerate: python -m benchmarks.gpu.h200.step_cost).
    committed = json.loads((H200_GATE.parent / "gpu_h200_step_cost.json").read_text())
    assert committed == json.loads(json.dumps(result))


def test_the_profile_finds_attention_where_the_model_puts_matmuls() -> None:
    """The calibrated model's account of a replica at its boundary (prod's shape) says matmuls
    and the decoding streams' KV-cache reads take nearly all of a step, and its roofline
    arithmetic (15.7 req/s: the README's) stands. vLLM's own trace of 30 steps at the plan's
    capacity (109 streams, `profiles/opt-c109`) says otherwise about what the time is:
    attention is half of the GPU's time, the FP8 GEMMs about a third (≈ 1,450 TFLOP/s, near
    their rate measured alone). The model totals the step right (within 5 % at every
    level of the plan's profile) but folds the prefill chunk's attention — computed at a
    fraction of any peak — into its fitted matmul rate: a lever on the attention kernel is
    the one the model cannot price."""
    from benchmarks.gpu.h200.plans import PROFILE_STEPS
    from benchmarks.gpu.h200.step_cost import BREAKDOWNS, GATE, breakdown

    runs = {label: breakdown(GATE / server, streams) for label, server, streams in BREAKDOWNS}
    plan = runs["the 2,048-token profile at its boundary"]
    assert sum(plan["shares"].values()) == pytest.approx(1.0)
    assert plan["roofline_requests_per_s"] == pytest.approx(15.7, abs=0.05)
    assert plan["shares"]["matmuls"] > 0.7 and plan["shares"]["attention FLOPs"] < 0.05

    profile = json.loads((GATE / "profiles" / "opt-c109" / "kernels.json").read_text())
    assert profile["steps"] == PROFILE_STEPS  # the trace holds the steps vLLM was told to
    assert profile["gpu_busy_share"] > 0.95  # the host is not what a step waits for
    kinds = profile["kinds"]
    assert kinds["attention"]["share_of_gpu_time"] > 0.45
    assert kinds["GEMM, FP8"]["share_of_gpu_time"] < 0.40
    # Attention's time a step, measured, is over twice what the model gives all attention.
    modelled = plan["shares"]["KV-cache reads"] + plan["shares"]["attention FLOPs"]
    assert kinds["attention"]["ms_per_step"] > 2 * modelled * profile["step_ms"]


def test_costed_as_traced_the_mixed_steps_attention_is_slower_than_stocks() -> None:
    """step_cost's exploration: the linear layers pinned to the trace's non-attention time, the
    prefill chunks' attention added at the model's 16-bit attention time × a slowdown. Stock
    (prefill in whole 8,192-token waves) fits at 1×; the plan's profile at prod's shape (a
    1,792-token chunk beside ≈ 100 decoding streams in every step) only at 2× or more, and
    there within 5 %. One attention term does not serve both, which is why the product's
    model keeps the per-kernel costing for now."""
    fit = json.loads((H200_GATE.parent / "gpu_h200_step_cost.json").read_text())["traced_fit"]
    best, error = fit["best_slowdown"], fit["mean_abs_error"]
    assert best["rag, stock"] == best["chat, stock"] == 1.0
    assert best["rag, optimized"] >= 2.0 and best["chat, optimized"] >= 2.0
    assert error["rag, optimized"][str(best["rag, optimized"])] <= 0.05
    assert error["rag, optimized"]["1.0"] > 3 * error["rag, optimized"][str(best["rag, optimized"])]


def test_at_the_attention_kernels_own_rates_every_group_fits_with_nothing_fitted() -> None:
    """step_cost's kernel way: the linear layers pinned to the trace, an FP8 KV step's
    attention at FA3's rates timed alone on the traced mix (`gpu_h200_attention_rates.json`:
    the decoding streams' KV reads ≈ 2.4 TB/s, two thirds of the 16-bit kernel's 3.8; the
    prefill chunk ≈ 340 TFLOP/s), 16-bit KV steps at the model's rates. What the slowdown
    exploration had to fit per group (2.5× for prod's shape, 5× for chat) the measured rates
    give at once: every group within 6 %, where the same way with the model's one read rate
    for every KV precision is off by over 3× that for the plan's profile. Priced this way, even
    an FP8 kernel as fast as the 16-bit one on both parts leaves the plan short of 2× stock."""
    result = json.loads((H200_GATE.parent / "gpu_h200_step_cost.json").read_text())
    k, traced = result["kernel_fit"], result["traced_fit"]
    assert 2.3e12 < k["fp8_rates"]["decode_bytes_per_s"] < 2.7e12
    assert 3.0e14 < k["fp8_rates"]["prefill_flops_per_s"] < 4.0e14
    assert set(k["mean_abs_error"]) == set(traced["mean_abs_error"])
    assert all(err <= 0.06 for err in k["mean_abs_error"].values()), k["mean_abs_error"]
    for key in ("rag, optimized", "chat, optimized"):
        assert traced["mean_abs_error"][key]["1.0"] > 3 * k["mean_abs_error"][key]
    rates = [w["requests_per_s"] for w in k["what_ifs"]]
    assert rates == sorted(rates) and len(rates) == 3
    stock = [
        lv["requests_per_s"]
        for lv in k["rows"]
        if lv["shape"] == "rag" and lv["profile"] == "stock" and lv["concurrency"] == 66
    ]
    assert len(stock) == 2 and rates[-1] < 2 * min(stock)


def test_kernel_rates_refuse_a_layout_whose_output_failed(tmp_path: Path) -> None:
    from benchmarks.gpu.h200.step_cost import kernel_rates

    row = {"kv_dtype": "fp8", "page": 16, "checked": False, "decode_tb_per_s": 2.4,
           "prefill_alone_tflops": 340, "prefill_beside_streams_tflops": 300}  # fmt: skip
    path = tmp_path / "rates.json"
    path.write_text(json.dumps({"layouts": [row]}))
    with pytest.raises(ValueError, match="fp8/16 failed its output check"):
        kernel_rates("fp8", path)
    path.write_text(json.dumps({"layouts": [row | {"checked": True}]}))
    assert kernel_rates("fp8", path)["decode_bytes_per_s"] == pytest.approx(2.4e12)


def test_the_gemms_alone_leave_room_the_serving_step_does_not() -> None:
    """The measured FP8 GEMMs alone (gpu_h200_gemm_rates.json, FLOP-weighted over a layer's
    four linears) would put prod's shape at 73-79 % of the datasheet roofline with nothing else
    in the step; the whole-step fit's matmul rate stops at 49 %: in serving a matmul costs
    ≈ 1.5× its GEMM's time, which is where a faster step would have to come from."""
    from benchmarks.gpu.h200.step_cost import BREAKDOWNS, GATE, SHAPES, breakdown, kernel_ceilings

    roofline = breakdown(GATE / BREAKDOWNS[0][1], BREAKDOWNS[0][2])["roofline_requests_per_s"]
    k = kernel_ceilings(SHAPES["rag"]["workload"])
    assert [c["tokens"] for c in k["ceilings"]] == [2048, 8192]
    at_2048, at_8192 = k["ceilings"]
    assert 1100 < at_2048["gemm_tflops"] < at_8192["gemm_tflops"] < 1300
    assert at_2048["gemm_only_requests_per_s"] > 0.6 * roofline
    assert k["fitted_only_requests_per_s"] < 0.6 * roofline
    assert 0.6 < k["fitted_tflops"] / at_2048["gemm_tflops"] < 0.7


def test_the_goal_share_of_the_roofline_needs_kernels_near_their_peaks() -> None:
    """At prod's shape a request reads its own FP8 KV cache once per output token: 384 reads
    of 6,400-6,783 tokens × 64 KiB (2 × 32 layers × 8 KV heads × 128 × 1 byte) ≈ 166 GB,
    34.6 ms at the H200's 4.8 TB/s. Run after its FLOPs at the peaks (63.7 ms, the README's
    15.7 req/s), as vLLM runs attention after the linear layers, that bounds the rate at
    10.2 req/s, 65 % of the roofline — so 60 % needs the kernels at ≥ 92 % of their peaks on
    average, or the KV reads under the matmuls. The plan's 5.68 req/s is 36 %."""
    from benchmarks.gpu.h200.step_cost import SHAPES, kv_read_bound, roofline_requests_per_s

    workload = SHAPES["rag"]["workload"]
    bound = kv_read_bound(workload)
    reads = sum(range(6400, 6400 + 384))
    assert bound["kv_bytes_gb"] == pytest.approx(reads * 2 * 32 * 8 * 128 / 1e9)
    assert bound["kv_ms"] == pytest.approx(bound["kv_bytes_gb"] / 4800 * 1e3)
    assert bound["flops_ms"] == pytest.approx(1e3 / roofline_requests_per_s(workload))
    assert bound["requests_per_s"] == pytest.approx(10.2, abs=0.05)
    assert bound["share_of_roofline"] == pytest.approx(0.65, abs=0.005)
    assert 0.92 < bound["peak_share_needed"] < 0.93
    # A 16-bit KV cache reads twice the bytes: its bound is lower still.
    assert kv_read_bound(workload, "auto")["requests_per_s"] < 0.8 * bound["requests_per_s"]
