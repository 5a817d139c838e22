"""The deployment plan: every stack plans, the decisions honour the SLOs, misfits name a fix."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.catalog import MODEL_PRESETS
from infra.config import validate_stack
from infra.plan import DeploymentPlan, build_plan
from infra.report import plan_as_dict, plan_json, plan_markdown
from infra.stack_source import load_stack
from tests.conftest import ALL_STACKS, edited, stack_raw
from workloads.contract import DEFAULT_QUALITY_BUDGETS, LIVE_TOLERANCE_NATS


def plan_of(raw: dict[str, Any]) -> DeploymentPlan:
    return build_plan(validate_stack(raw, "stacks/Pulumi.test.yaml"), "test")


@pytest.fixture(scope="module")
def plans() -> dict[str, DeploymentPlan]:
    return {stack: build_plan(load_stack(stack), stack) for stack in ALL_STACKS}


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_every_stack_plans_and_fits(plans: dict[str, DeploymentPlan], stack: str) -> None:
    plan = plans[stack]
    assert plan.fits, plan.problems
    assert plan.sizing.replicas >= 1
    assert plan.sizing.gpus == plan.sizing.replicas * plan.vllm.tensor_parallel_size
    assert plan.sizing.load.itl_p95_ms <= plan.gate.itl_p95_ms
    assert plan.sizing.load.ttft_unloaded_ms <= plan.gate.ttft_p95_ms


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_vllm_arguments_are_consistent(plans: dict[str, DeploymentPlan], stack: str) -> None:
    plan = plans[stack]
    vllm = plan.vllm
    assert vllm.max_num_batched_tokens >= vllm.max_num_seqs
    assert vllm.max_model_len >= plan.workload.sequence_tokens
    assert vllm.max_num_seqs == plan.sizing.replica.concurrency
    cli = vllm.as_cli()
    assert cli[cli.index("--max-num-seqs") + 1] == str(vllm.max_num_seqs)
    assert "--enable-prefix-caching" in cli
    assert "--enable-chunked-prefill" in cli


def test_prod_uses_fp8_everywhere_and_two_replicas(plans: dict[str, DeploymentPlan]) -> None:
    prod = plans["prod"]
    cli = prod.vllm.as_cli()
    assert cli[cli.index("--kv-cache-dtype") + 1] == "fp8"
    assert cli[cli.index("--gpu-memory-utilization") + 1] == "0.92"
    assert prod.model.quantization == "fp8"
    assert prod.model.needs_compression
    assert prod.autoscaling.min_replicas == 2
    assert prod.sizing.replicas >= 2
    assert prod.autoscaling.max_replicas >= prod.sizing.replicas


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_replicas_are_sized_from_the_simulated_capacity_at_the_slo(
    plans: dict[str, DeploymentPlan], stack: str
) -> None:
    """Each replica takes at most the requests in flight the scheduler simulation says meet
    both targets; the gate checks that capacity for the whole deployment."""
    plan = plans[stack]
    per_replica = plan.sizing.replica.concurrency
    users = plan.workload.concurrent_users
    assert plan.sizing.replicas >= -(-users // per_replica)
    assert plan.gate.capacity_concurrency == plan.sizing.replicas * per_replica
    assert plan.gate.replicas == plan.sizing.replicas
    one = plan.gate.one_replica()
    assert one.capacity_concurrency == per_replica
    assert one.concurrency == -(-users // plan.sizing.replicas)
    assert one.min_throughput_rps == pytest.approx(
        plan.gate.min_throughput_rps / plan.sizing.replicas
    )


def test_a_tighter_ttft_target_takes_more_gpus() -> None:
    raw = edited(stack_raw("prod"), "workload.concurrentUsers", 380)
    loose = plan_of(raw)
    tight = plan_of(edited(raw, "slo.ttftP95Ms", 350))
    assert tight.sizing.gpus > loose.sizing.gpus
    per_gpu = {
        plan.sizing.replica.concurrency / plan.vllm.tensor_parallel_size for plan in (tight, loose)
    }
    assert min(per_gpu) == tight.sizing.replica.concurrency / tight.vllm.tensor_parallel_size


def test_the_step_budget_is_the_one_with_the_most_capacity() -> None:
    """A step budget trades TTFT (prefill speed) against ITL (how long a prefill chunk stalls
    decoding): on the H200 at prod's shape the plan's budget gives at least the capacity of
    every pinned one, and strictly more than a small or a large one."""
    from benchmarks.gpu.h200.plans import h200_config

    plan = build_plan(h200_config("rag"), "prod-h200")
    raw = edited(edited(stack_raw("prod"), "gpuPool.gpu", "H200"), "serving.minReplicas", 1)
    capacity = {
        budget: plan_of(edited(raw, "serving.maxNumBatchedTokens", budget)).sizing.replica
        for budget in (1024, 1536, 2048, 4096, 8192)
    }
    assert all(plan.sizing.replica.concurrency >= r.concurrency for r in capacity.values())
    assert plan.sizing.replica.concurrency > capacity[1024].concurrency
    assert plan.sizing.replica.concurrency > capacity[8192].concurrency


def test_prefill_chunk_keeps_decode_within_itl(plans: dict[str, DeploymentPlan]) -> None:
    prod = plans["prod"]
    assert prod.sizing.replica.speed.prefill_step_ms <= prod.gate.itl_p95_ms
    # Stock vLLM's 8192-token chunk on the same GPU breaks the same target.
    assert prod.baseline.replica.knobs.max_num_batched_tokens == 8192
    assert prod.vllm.max_num_batched_tokens < 8192


def test_optimized_beats_stock_on_cost_in_prod(plans: dict[str, DeploymentPlan]) -> None:
    comparison = plans["prod"].comparison
    assert comparison.throughput_per_gpu_ratio is not None
    assert comparison.throughput_per_gpu_ratio > 1
    assert comparison.cost_per_request_ratio == pytest.approx(
        1 / comparison.throughput_per_gpu_ratio
    )


def test_local_plan_uses_the_cpu_build_and_labels_its_tiny_trained_model(
    plans: dict[str, DeploymentPlan],
) -> None:
    local = plans["local"]
    assert local.model.trained_locally and not local.model.random_weights
    assert "--gpu-memory-utilization" not in local.vllm.as_cli()
    assert int(local.vllm.environment()["VLLM_CPU_KVCACHE_SPACE"]) >= 1
    markdown = plan_markdown(local)
    assert "Tiny trained model" in markdown and "Random-weight model" not in markdown
    assert "KL ≤ 0.02 nats/token" in markdown


def test_every_compressed_stack_has_a_quality_budget_and_the_gate_replays_it(
    plans: dict[str, DeploymentPlan],
) -> None:
    for name, plan in plans.items():
        if not plan.model.needs_compression:
            continue
        budget = plan.model.quality_budget
        assert budget is not None, name
        assert budget == DEFAULT_QUALITY_BUDGETS[plan.model.quantization], name
        assert plan.gate.quality_tolerance_nats == LIVE_TOLERANCE_NATS


def test_a_stack_overrides_its_quality_budget_or_switches_it_off() -> None:
    budget = {"maxKlNats": 0.005, "liveToleranceNats": 0.3}
    plan = plan_of(edited(stack_raw("staging"), "serving.qualityBudget", budget))
    assert plan.model.quality_budget is not None
    assert plan.model.quality_budget.max_kl_nats == 0.005
    assert plan.model.quality_budget.min_top1_agreement == 0.93  # the scheme's default
    assert plan.gate.quality_tolerance_nats == 0.3
    plan = plan_of(edited(stack_raw("staging"), "serving.qualityBudget", {"enabled": False}))
    assert plan.model.quality_budget is None
    assert "published unmeasured" in plan_markdown(plan)


def test_autoscaling_and_gate_come_from_the_plan(plans: dict[str, DeploymentPlan]) -> None:
    dev = plans["dev"]
    assert dev.autoscaling.enabled
    assert dev.autoscaling.cooldown_seconds >= 2 * dev.model.load_seconds
    assert dev.autoscaling.waiting_requests_per_replica >= 1
    assert dev.gate.ttft_p95_ms == 3000
    assert dev.gate.predicted_requests_per_s == dev.sizing.requests_per_s
    assert dev.gate.concurrency == dev.workload.concurrent_users
    assert dev.gate.shared_prefix_tokens == dev.workload.context_tokens


@pytest.mark.parametrize("preset", sorted(p for p in MODEL_PRESETS if "tiny" not in p))
def test_each_preset_plans_on_h100(preset: str) -> None:
    plan = plan_of(edited(stack_raw("prod"), "model.preset", preset))
    assert plan.fits, plan.problems
    architecture = MODEL_PRESETS[preset].architecture
    assert architecture.num_attention_heads % plan.vllm.tensor_parallel_size == 0
    assert plan.vllm.served_model_name == preset
    assert plan.vllm.max_model_len <= architecture.max_context_tokens


def test_70b_is_split_across_gpus() -> None:
    plan = plan_of(edited(stack_raw("prod"), "model.preset", "llama-3.1-70b-instruct"))
    assert plan.vllm.tensor_parallel_size > 1


def test_pinned_knobs_are_respected() -> None:
    raw = edited(stack_raw("prod"), "serving.maxNumSeqs", 64)
    raw = edited(raw, "serving.gpuMemoryUtilization", 0.85)
    raw = edited(raw, "serving.maxNumBatchedTokens", 4096)
    plan = plan_of(raw)
    assert plan.vllm.max_num_seqs == 64
    assert plan.vllm.gpu_memory_utilization == 0.85
    assert plan.vllm.max_num_batched_tokens == 4096


def test_disabling_chunked_prefill_takes_whole_prompts() -> None:
    plan = plan_of(edited(stack_raw("dev"), "serving.enableChunkedPrefill", False))
    assert "--no-enable-chunked-prefill" in plan.vllm.as_cli()
    assert plan.vllm.max_num_batched_tokens >= plan.vllm.max_model_len


# --- workloads that do not fit, each with the smallest fix ----------------------------------


def _l4_long_document() -> dict[str, Any]:
    raw = stack_raw("prod")
    for key, value in {"gpu": "L4", "instanceType": "g6.xlarge", "gpusPerNode": 1}.items():
        raw = edited(raw, f"gpuPool.{key}", value)
    raw = edited(raw, "gpuPool.maxNodes", 1)
    serving = {"quantization": "fp8", "kvCacheDtype": "auto",
               "calibrationUri": "pvc://leanrag-corpus/documents"}  # fmt: skip
    raw = edited(raw, "serving", serving)
    raw = edited(
        raw,
        "workload",
        {
            "concurrentUsers": 1,
            "contextTokens": 100_000,
            "questionTokens": 128,
            "outputTokens": 128,
        },
    )
    return edited(
        raw,
        "slo",
        {"ttftP95Ms": 120_000, "itlP95Ms": 200, "minThroughputRps": 0, "maxErrorRate": 0.01},
    )


def _70b_pinned_to_one_gpu() -> dict[str, Any]:
    raw = edited(stack_raw("prod"), "model.preset", "llama-3.1-70b-instruct")
    raw = edited(raw, "serving.tensorParallelSize", 1)
    raw = edited(raw, "serving.minReplicas", 1)
    raw = edited(
        raw, "workload", {"concurrentUsers": 1, "contextTokens": 40_000, "outputTokens": 256}
    )
    raw = edited(raw, "slo.minThroughputRps", 0)
    return edited(raw, "slo.ttftP95Ms", 20_000)


MISFITS = [
    (
        "fp8-kv",
        _l4_long_document,
        "less than one 131,072-token sequence",
        "set serving.kvCacheDtype: fp8",
    ),
    (
        "tensor-parallel",
        _70b_pinned_to_one_gpu,
        "less than one",
        "set serving.tensorParallelSize: 2",
    ),
    (
        "max-num-seqs",
        lambda: edited(stack_raw("dev"), "serving.maxNumSeqs", 1024),
        "max-num-seqs 1024 exceeds",
        "lower serving.maxNumSeqs to",
    ),
    (
        "max-context",
        lambda: edited(stack_raw("dev"), "serving.maxModelLen", 131072),
        "less than one 131,072-token sequence",
        "set serving.maxModelLen: ",
    ),
    (
        "more-nodes",
        lambda: edited(stack_raw("prod"), "workload.concurrentUsers", 5000),
        "the pool holds 16",
        "raise gpuPool.maxNodes to ",
    ),
]


@pytest.mark.parametrize(
    ("make_raw", "what", "fix"), [m[1:] for m in MISFITS], ids=[m[0] for m in MISFITS]
)
def test_workload_that_does_not_fit_names_the_smallest_fix(make_raw, what: str, fix: str) -> None:
    plan = plan_of(make_raw())
    assert not plan.fits
    assert any(what in p.what and p.fix.startswith(fix) for p in plan.problems), plan.problems


def test_suggested_fix_really_fits() -> None:
    broken = plan_of(edited(stack_raw("dev"), "serving.maxModelLen", 131072))
    shorter = int(broken.problems[0].fix.rsplit(" ", 1)[-1])
    fixed = plan_of(edited(stack_raw("dev"), "serving.maxModelLen", shorter))
    assert fixed.fits


# --- views ------------------------------------------------------------------------------------


def test_plan_json_carries_every_decision(plans: dict[str, DeploymentPlan]) -> None:
    data = json.loads(plan_json(plans["prod"]))
    assert data["fits"] is True
    assert data["vllm"]["cli"] == plans["prod"].vllm.as_cli()
    assert data["features"]["llmdRouter"] is True
    assert data["namespaces"]["serving"] == "leanrag-serving"
    assert data["sizing"]["replica"]["memory"]["kv_cache_tokens"] > 0
    assert data == plan_as_dict(plans["prod"]) | {"fits": True}


def test_plan_markdown_names_sizing_cost_and_args(plans: dict[str, DeploymentPlan]) -> None:
    text = plan_markdown(plans["prod"])
    assert "# Deployment plan — stack `prod`" in text
    assert "65,536 bytes (fp8)" in text
    assert " ".join(plans["prod"].vllm.as_cli()) in text
    assert "cost per request" in text or "/request" in text


def test_admission_limits_come_from_the_capacity_at_the_slo(
    plans: dict[str, DeploymentPlan],
) -> None:
    """Fail fast: the prompt backlog that can still start within the TTFT target (prefill rate
    at capacity × target), and in-flight requests capped at capacity plus that backlog."""
    local = plans["local"]
    admission = local.admission
    per_replica = local.gate.one_replica()
    prompt = local.workload.prompt_tokens
    assert admission.prefill_tokens_per_s == pytest.approx(
        per_replica.capacity_requests_per_s * prompt
    )
    assert admission.max_num_queued_tokens == int(
        local.gate.ttft_p95_ms / 1e3 * admission.prefill_tokens_per_s
    )
    assert admission.max_num_queued_reqs == per_replica.capacity_concurrency + -(
        -admission.max_num_queued_tokens // prompt
    )
    cli = local.vllm.as_cli()
    assert cli[cli.index("--max-num-queued-reqs") + 1] == str(admission.max_num_queued_reqs)
    assert cli[cli.index("--max-num-queued-tokens") + 1] == str(admission.max_num_queued_tokens)
    # KEDA adds a replica while requests still queue within the allowance, before shedding.
    assert local.autoscaling.waiting_requests_per_replica < (
        admission.max_num_queued_reqs - per_replica.capacity_concurrency
    )


def test_the_gateway_sheds_from_the_plans_capacity(plans: dict[str, DeploymentPlan]) -> None:
    """The endpoint picker's thresholds: a replica is saturated once more requests wait than
    it can start within the TTFT target (the admission backlog); queued requests expire at
    the TTFT target; KEDA scales out below both thresholds; the local stack (no gateway) and a
    stack without llm-d shed nothing there."""
    prod = plans["prod"]
    shedding = prod.shedding
    per_replica = prod.gate.one_replica()
    assert shedding.enabled
    backlog = prod.admission.max_num_queued_reqs - per_replica.capacity_concurrency
    assert shedding.queue_depth_threshold == max(2, backlog)
    assert shedding.request_ttl_seconds == prod.gate.ttft_p95_ms / 1e3
    assert shedding.max_queued_requests == prod.autoscaling.max_replicas * backlog
    assert shedding.interactive_priority > 0 > shedding.batch_priority
    assert prod.autoscaling.waiting_requests_per_replica < shedding.queue_depth_threshold
    assert prod.autoscaling.kv_cache_usage_threshold < shedding.kv_cache_util_threshold <= 1
    assert not plans["local"].shedding.enabled
    assert not plan_of(edited(stack_raw("prod"), "features.llmdRouter", False)).shedding.enabled


def test_admission_flags_only_where_the_serving_vllm_has_them() -> None:
    raw = stack_raw("prod")
    pinned = plan_of(raw)  # docker.io/vllm/vllm-openai:v0.25.1
    assert not pinned.admission.enforced
    assert "v0.29" in pinned.admission.note
    assert "--max-num-queued-reqs" not in pinned.vllm.as_cli()
    newer = plan_of(edited(raw, "images.vllm", "docker.io/vllm/vllm-openai:v0.29.0"))
    assert newer.admission.enforced
    assert "--max-num-queued-tokens" in newer.vllm.as_cli()
    assert "--max-num-queued-tokens" not in newer.baseline_vllm.as_cli()  # stock stays stock
