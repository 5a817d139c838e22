"""Sizing model against hand-computed values.

Expected numbers are worked out by hand in the comments (not by calling the code under test).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from infra.catalog import ACCELERATORS, GIB, MODEL_PRESETS
from infra.sizing import (
    KV_BLOCK_TOKENS,
    Pool,
    ServingKnobs,
    Targets,
    Workload,
    kv_cache_bytes_for_request,
    kv_cache_bytes_per_token,
    kv_cache_bytes_per_token_per_gpu,
    kv_cache_capacity,
    kv_concurrency_for_workload,
    max_concurrent_sequences,
    memory_step_seconds,
    prefill_chunk_tokens_for_itl,
    replica_speed,
    size_deployment,
    size_replica,
    step_seconds,
    stock_knobs,
    weight_bytes,
    with_knobs,
)

LLAMA_8B = MODEL_PRESETS["llama-3.1-8b-instruct"].architecture
LLAMA_70B = MODEL_PRESETS["llama-3.1-70b-instruct"].architecture
PHI3 = MODEL_PRESETS["phi-3-mini-128k-instruct"].architecture
H100 = ACCELERATORS["H100-80GB"]
A10G = ACCELERATORS["A10G"]
L4 = ACCELERATORS["L4"]

# 2 × layers × kv_heads × head_dim × 2 bytes (bf16), per preset.
BF16_KV_BYTES_PER_TOKEN = {
    "llama-3.1-8b-instruct": 2 * 32 * 8 * 128 * 2,  # 131,072 = 128 KiB
    "llama-3.1-70b-instruct": 2 * 80 * 8 * 128 * 2,  # 327,680 = 320 KiB
    "qwen2.5-14b-instruct": 2 * 48 * 8 * 128 * 2,  # 196,608 = 192 KiB
    "phi-3-mini-128k-instruct": 2 * 32 * 32 * 96 * 2,  # 393,216 = 384 KiB (MHA)
    "mistral-7b-instruct": 2 * 32 * 8 * 128 * 2,  # 131,072 = 128 KiB
}
# KV cache of one request, in GiB, at 2k / 8k / 32k tokens: KiB/token × tokens / 2^20.
BF16_REQUEST_GIB = {
    "llama-3.1-8b-instruct": (0.25, 1.0, 4.0),
    "llama-3.1-70b-instruct": (0.625, 2.5, 10.0),
    "qwen2.5-14b-instruct": (0.375, 1.5, 6.0),
    "phi-3-mini-128k-instruct": (0.75, 3.0, 12.0),
    "mistral-7b-instruct": (0.25, 1.0, 4.0),
}
CONTEXTS = (2048, 8192, 32768)


def knobs(**changes: object) -> ServingKnobs:
    base = ServingKnobs(
        quantization="none",
        kv_cache_dtype="auto",
        gpu_memory_utilization=0.9,
        tensor_parallel_size=1,
        max_model_len=8192,
        max_num_batched_tokens=2048,
        max_num_seqs=None,
        enable_prefix_caching=True,
        enable_chunked_prefill=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_llama_8b_bf16_kv_is_128_kib_per_token() -> None:
    assert kv_cache_bytes_per_token(LLAMA_8B, "auto") == 128 * 1024


def test_128k_request_is_16_gib_with_gqa_and_4x_with_mha() -> None:
    gqa = kv_cache_bytes_for_request(LLAMA_8B, "auto", 128 * 1024)
    assert gqa == 16 * GIB
    mha = replace(LLAMA_8B, num_kv_heads=LLAMA_8B.num_attention_heads)
    assert kv_cache_bytes_for_request(mha, "auto", 128 * 1024) == 4 * 16 * GIB


@pytest.mark.parametrize("kv_dtype", ["auto", "fp8"])
@pytest.mark.parametrize("preset", sorted(BF16_KV_BYTES_PER_TOKEN))
def test_kv_bytes_per_token_for_each_preset(preset: str, kv_dtype: str) -> None:
    architecture = MODEL_PRESETS[preset].architecture
    divisor = 2 if kv_dtype == "fp8" else 1
    expected = BF16_KV_BYTES_PER_TOKEN[preset] // divisor
    assert kv_cache_bytes_per_token(architecture, kv_dtype) == expected


@pytest.mark.parametrize("kv_dtype", ["auto", "fp8"])
@pytest.mark.parametrize("context_index", range(3))
@pytest.mark.parametrize("preset", sorted(BF16_REQUEST_GIB))
def test_request_kv_gib_for_each_preset_context_and_dtype(
    preset: str, context_index: int, kv_dtype: str
) -> None:
    architecture = MODEL_PRESETS[preset].architecture
    tokens = CONTEXTS[context_index]
    expected_gib = BF16_REQUEST_GIB[preset][context_index] / (2 if kv_dtype == "fp8" else 1)
    assert kv_cache_bytes_for_request(architecture, kv_dtype, tokens) / GIB == expected_gib


def test_weight_memory_per_scheme_llama_8b() -> None:
    # Embedding + LM head: 2 × 128,256 × 4,096 = 1,050,673,152 params, always 16-bit.
    # The other 6,979,588,096 params take 2 / 1 / 1 / 0.515625 bytes (4 bits + a bf16 scale
    # per 128-weight group).
    embeddings = 1_050_673_152
    rest = 8_030_261_248 - embeddings
    assert weight_bytes(LLAMA_8B, "none") == 8_030_261_248 * 2
    assert weight_bytes(LLAMA_8B, "fp8") == embeddings * 2 + rest
    assert weight_bytes(LLAMA_8B, "int8-w8a8") == embeddings * 2 + rest
    assert weight_bytes(LLAMA_8B, "w4a16") == embeddings * 2 + rest * 0.515625
    assert weight_bytes(LLAMA_8B, "none") / GIB == pytest.approx(14.9575, abs=1e-4)
    assert weight_bytes(LLAMA_8B, "fp8") / GIB == pytest.approx(8.4573, abs=1e-4)
    assert weight_bytes(LLAMA_8B, "w4a16") / GIB == pytest.approx(5.3087, abs=1e-4)


def test_kv_capacity_h100_fp8_llama_8b() -> None:
    # 0.92 × 79.647 GiB = 73.276; − 8.457 weights − 1.0 overhead = 63.818 GiB of KV cache;
    # / 64 KiB per token = 1,045,608 tokens → whole 16-token blocks: 1,045,600.
    capacity = kv_cache_capacity(
        LLAMA_8B,
        H100,
        knobs(quantization="fp8", kv_cache_dtype="fp8", gpu_memory_utilization=0.92),
    )
    assert capacity.kv_cache_gib_per_gpu == pytest.approx(63.818, abs=1e-3)
    assert capacity.kv_cache_tokens == 1_045_600
    assert capacity.kv_cache_tokens % KV_BLOCK_TOKENS == 0


def test_kv_capacity_with_tensor_parallelism_llama_70b() -> None:
    # TP 4: 16.916 GiB of FP8 weights per GPU; 0.9 × 79.647 − 16.916 − 1.0 = 53.766 GiB/GPU.
    # Each GPU holds 2 of the 8 KV heads: 2 × 80 × 2 × 128 × 2 = 81,920 bytes per token.
    tp4 = knobs(quantization="fp8", tensor_parallel_size=4)
    assert kv_cache_bytes_per_token_per_gpu(LLAMA_70B, "auto", 4) == 81_920
    capacity = kv_cache_capacity(LLAMA_70B, H100, tp4)
    assert capacity.weights_gib_per_gpu == pytest.approx(16.916, abs=1e-3)
    assert capacity.kv_cache_tokens == 704_720


def test_kv_heads_are_replicated_when_tp_exceeds_them() -> None:
    # 8 KV heads over 16 GPUs: each GPU keeps one whole head.
    assert kv_cache_bytes_per_token_per_gpu(LLAMA_70B, "auto", 16) == 2 * 80 * 1 * 128 * 2


def test_more_memory_utilization_means_more_kv_tokens() -> None:
    low = kv_cache_capacity(LLAMA_8B, H100, knobs(gpu_memory_utilization=0.8)).kv_cache_tokens
    high = kv_cache_capacity(LLAMA_8B, H100, knobs(gpu_memory_utilization=0.95)).kv_cache_tokens
    # 0.15 × 79.647 GiB = 11.947 GiB more, / 128 KiB = 97,870 tokens more (± a block).
    assert high - low == pytest.approx(97_870, abs=KV_BLOCK_TOKENS)


def test_fp8_kv_doubles_tokens_for_the_same_memory() -> None:
    auto = kv_cache_capacity(LLAMA_8B, H100, knobs()).kv_cache_tokens
    fp8 = kv_cache_capacity(LLAMA_8B, H100, knobs(kv_cache_dtype="fp8")).kv_cache_tokens
    assert fp8 == pytest.approx(2 * auto, abs=KV_BLOCK_TOKENS)


def test_weights_that_do_not_fit_leave_no_kv_cache() -> None:
    capacity = kv_cache_capacity(LLAMA_70B, A10G, knobs())
    assert capacity.kv_cache_gib_per_gpu < 0
    assert capacity.kv_cache_tokens == 0


def test_max_concurrent_sequences() -> None:
    assert max_concurrent_sequences(1_045_600, 8192) == 127  # 1,045,600 / 8,192 = 127.6
    assert max_concurrent_sequences(100, 0) == 100


def test_shared_document_is_stored_once_with_prefix_caching() -> None:
    workload = Workload(
        concurrent_users=50,
        question_tokens=100,
        context_tokens=32_000,
        output_tokens=200,
        shared_prefix_share=1.0,
    )
    # Cached: (100,000 − 32,000 stored once) / (100 + 200 unique per request) = 226.
    assert kv_concurrency_for_workload(100_000, workload, caching=True) == 226
    # Not cached: 100,000 / 32,300 = 3.
    assert kv_concurrency_for_workload(100_000, workload, caching=False) == 3


def test_decode_ceiling_batch_1_from_bandwidth() -> None:
    # (16.06 GB weights + 2,176 tokens × 128 KiB) / (3,350 GB/s × 0.8) = 6.099 ms → 164 tok/s.
    seconds = memory_step_seconds(LLAMA_8B, H100, knobs(), 1, 2176)
    assert 1 / seconds == pytest.approx(163.96, abs=0.01)


def test_a_mixed_step_pays_its_matmuls_and_its_kv_reads_one_after_the_other() -> None:
    """The simulation's step on an H200 (FP8 weights and KV; 16-bit scale 1.05, 8-bit 0.88):
    100 decoding streams holding 660,000 context tokens, plus one 2,048-token prefill chunk."""
    h200 = ACCELERATORS["H200"]
    fp8 = ServingKnobs("fp8", "fp8", 0.92, 1, 8192, 2048, 423, True, True)
    # Linear layers: 2 × (8,030,261,248 − 128,256 × 4,096) = 15.0098 GFLOP per token, at
    # 1,979 TFLOP/s × 0.45 × 0.88 = 783.68 TFLOP/s → 19.153 µs per token; 2,148 tokens → 41.141
    # ms (the 8.5 GB of weights read take ~2 ms: compute bound).
    linear = 2148 * 15.009849344e9 / (1979e12 * 0.45 * 0.88)
    # Attention: 660,000 tokens × 64 KiB (FP8 KV) = 43.25 GB at 4,800 GB/s × 0.8 → 11.264 ms;
    # its FLOPs (4 × 32 × 4,096 per context token: 660,000 + 2,048 × 1,024 at 623 TFLOP/s)
    # take 2.3 ms: memory bound.
    attention = 660_000 * 65536 / (4800e9 * 0.8)
    assert linear + attention == pytest.approx(0.052405, rel=1e-4)
    mixed = step_seconds(LLAMA_8B, h200, fp8, 100, 660_000, [(2048, 0)])
    assert mixed == pytest.approx(linear + attention, rel=1e-6)
    # The KV reads do not hide under the matmuls: the mixed step costs more than either part.
    decode_only = step_seconds(LLAMA_8B, h200, fp8, 100, 660_000, [])
    prefill_only = step_seconds(LLAMA_8B, h200, fp8, 0, 0, [(2048, 0)])
    assert mixed > max(decode_only, prefill_only) + 0.5 * min(decode_only, prefill_only)


def test_bigger_batches_are_slower_per_step_but_faster_overall() -> None:
    workload = Workload(64, 128, 2048, 256, 0.0)
    small = replica_speed(LLAMA_8B, H100, knobs(), workload, 8)
    large = replica_speed(LLAMA_8B, H100, knobs(), workload, 64)
    assert large.decode_step_ms > small.decode_step_ms
    assert large.requests_per_s > small.requests_per_s


@pytest.mark.parametrize("prompt", [2048, 100_000])
def test_prefill_chunk_sized_to_the_itl_target(prompt: int) -> None:
    tokens = prefill_chunk_tokens_for_itl(LLAMA_8B, H100, "fp8", 1, prompt, itl_target_ms=50)
    assert tokens % 256 == 0 and tokens >= 256
    workload = Workload(64, 0, prompt, 256, 0.0)

    def last_chunk_ms(budget: int) -> float:
        speed = replica_speed(
            LLAMA_8B, H100, knobs(quantization="fp8", max_num_batched_tokens=budget), workload, 8
        )
        return speed.last_chunk_step_ms

    assert last_chunk_ms(tokens) <= 50
    # One more 256-token slice would break the target.
    assert last_chunk_ms(tokens + 256) > 50


def test_a_long_prompts_last_chunk_is_its_slowest_step() -> None:
    """The last chunk attends to the whole prompt; an average chunk to half of it."""
    speed = replica_speed(
        LLAMA_8B,
        H100,
        knobs(quantization="fp8", max_num_batched_tokens=2048),
        Workload(8, 0, 100_000, 256, 0.0),
        8,
    )
    assert speed.last_chunk_step_ms > 1.5 * speed.prefill_step_ms
    assert speed.itl_p95_ms == speed.last_chunk_step_ms
    # Longer documents get smaller steps for the same target.
    short, long = (
        prefill_chunk_tokens_for_itl(LLAMA_8B, H100, "fp8", 1, prompt, itl_target_ms=50)
        for prompt in (8192, 100_000)
    )
    assert long < short


def test_a_lone_request_never_waits_on_a_prefill_step() -> None:
    speed = replica_speed(
        LLAMA_8B,
        H100,
        knobs(quantization="fp8", max_num_batched_tokens=8192),
        Workload(1, 0, 100_000, 256, 0.0),
        1,
    )
    assert speed.prefill_step_share == 0
    assert speed.itl_p95_ms == speed.decode_step_ms < speed.last_chunk_step_ms


def test_whole_prompt_prefill_stalls_decoding_longer_than_chunked() -> None:
    workload = Workload(8, 32, 100_000, 64, 0.0)
    chunked = knobs(max_model_len=131072, max_num_batched_tokens=2048)
    whole = with_knobs(chunked, enable_chunked_prefill=False)
    assert (
        replica_speed(LLAMA_8B, H100, whole, workload, 8).prefill_step_ms
        > 10 * replica_speed(LLAMA_8B, H100, chunked, workload, 8).prefill_step_ms
    )


def test_replica_concurrency_is_bounded_by_kv_and_itl() -> None:
    workload = Workload(500, 128, 6144, 256, 0.0)
    sized = size_replica(
        LLAMA_8B,
        H100,
        knobs(max_model_len=8192),
        workload,
        Targets(ttft_p95_ms=5000, itl_p95_ms=40, min_throughput_rps=0),
    )
    assert sized.concurrency == min(sized.kv_concurrency, sized.slo_concurrency)
    assert sized.speed.itl_p95_ms <= 40
    one_more = replica_speed(
        LLAMA_8B, H100, knobs(max_model_len=8192), workload, sized.slo_concurrency + 1
    )
    assert sized.slo_concurrency == sized.kv_concurrency or one_more.itl_p95_ms > 40


def pool(accelerator=H100, gpus_per_node=8, max_nodes=1, price=4.0) -> Pool:
    return Pool(accelerator, gpus_per_node, max_nodes, price)


def test_cost_per_request_and_per_million_tokens() -> None:
    workload = Workload(64, 128, 2048, 256, 0.0)
    sizing = size_deployment(
        LLAMA_8B, pool(price=4.0), knobs(), workload, Targets(5000, 100, 0), min_replicas=1
    )
    hourly = sizing.gpus * 4.0
    assert sizing.cost_per_hour_usd == hourly
    assert sizing.cost_per_request_usd == pytest.approx(hourly / 3600 / sizing.requests_per_s)
    assert sizing.cost_per_million_output_tokens_usd == pytest.approx(
        hourly / 3600 / sizing.output_tokens_per_s * 1e6
    )
    assert sizing.output_tokens_per_s == pytest.approx(sizing.requests_per_s * 256)


def test_replicas_cover_users_and_throughput_target() -> None:
    workload = Workload(300, 128, 2048, 256, 0.0)
    sizing = size_deployment(
        LLAMA_8B, pool(max_nodes=4), knobs(), workload, Targets(5000, 60, 0), min_replicas=1
    )
    assert sizing.fits
    assert sizing.replicas > 1
    assert sizing.replicas == math.ceil(300 / sizing.replica.concurrency)
    assert sizing.gpus == sizing.replicas
    assert sizing.nodes == math.ceil(sizing.gpus / 8)
    # A throughput target adds replicas until the users in flight, served faster, reach it.
    users = Workload(48, 128, 2048, 256, 0.0)
    by_rps = size_deployment(
        LLAMA_8B, pool(max_nodes=4), knobs(), users, Targets(5000, 60, 12.0), min_replicas=1
    )
    assert by_rps.fits
    assert by_rps.requests_per_s >= 12.0
    fewer = size_deployment(
        LLAMA_8B,
        pool(max_nodes=4),
        knobs(),
        users,
        Targets(5000, 60, 0.0),
        min_replicas=by_rps.replicas - 1,
    )
    assert fewer.requests_per_s < 12.0


def test_throughput_target_beyond_the_users_in_flight_is_reported() -> None:
    sizing = size_deployment(
        LLAMA_8B,
        pool(max_nodes=4),
        knobs(),
        Workload(1, 128, 2048, 256, 0),
        Targets(5000, 60, 25.0),
        min_replicas=1,
    )
    assert not sizing.fits
    assert "1 concurrent users reach at most" in sizing.problems[0].what
    assert "raise workload.concurrentUsers" in sizing.problems[0].fix


def test_pool_too_small_is_reported() -> None:
    sizing = size_deployment(
        LLAMA_8B,
        pool(gpus_per_node=1),
        knobs(),
        Workload(5000, 128, 2048, 256, 0.0),
        Targets(5000, 30, 0),
        min_replicas=1,
    )
    assert not sizing.fits
    assert "pool holds 1" in sizing.problems[0].what


def test_weights_too_big_and_context_too_long_are_reported() -> None:
    targets = Targets(10_000, 200, 0)
    big = size_deployment(
        LLAMA_70B, pool(A10G, 1), knobs(), Workload(1, 10, 100, 10, 0), targets, min_replicas=1
    )
    assert "do not fit" in big.problems[0].what
    long = size_deployment(
        PHI3,
        pool(L4, 1),
        knobs(max_model_len=131072),
        Workload(1, 10, 100_000, 10, 0),
        targets,
        min_replicas=1,
    )
    assert "less than one 131,072-token sequence" in long.problems[0].what


def test_stock_knobs_follow_vllm_defaults_by_gpu_size() -> None:
    assert stock_knobs(H100, 8192, 1).max_num_batched_tokens == 8192
    assert stock_knobs(H100, 8192, 1).max_num_seqs == 1024
    assert stock_knobs(A10G, 8192, 1).max_num_batched_tokens == 2048
    assert stock_knobs(A10G, 8192, 1).max_num_seqs == 256
    assert stock_knobs(A10G, 8192, 1).quantization == "none"
