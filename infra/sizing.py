"""Sizing model: memory, capacity, speed and cost of a vLLM deployment. Pure functions.

Memory follows vLLM's own accounting: of `gpu_memory_utilization × device memory`, weights and a
runtime overhead come first, the rest is KV cache in 16-token blocks. Speed is a roofline
model: each engine step reads the weights once plus the running sequences' KV cache (memory
bound) or computes the batched tokens (compute bound), whichever takes longer — the scheduler
simulation (`StepCost`) takes that per kernel kind, linear layers then attention. Steps that
carry a prefill chunk set the tail inter-token latency; the rest decode.

The efficiency factors below are calibrated on measured vLLM runs on an H100
(tests/unit/test_sizing_calibration.py); the gate re-checks them on every deployment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple, Protocol

from infra.catalog import GIB, Accelerator, ModelArchitecture, embedding_parameter_count

KV_BLOCK_TOKENS = 16
# W4A16 GPTQ: 4-bit weights plus one 16-bit scale per group of 128 weights.
WEIGHT_BYTES_PER_PARAMETER = {"none": 2.0, "fp8": 1.0, "int8-w8a8": 1.0, "w4a16": 4.125 / 8}
KV_BYTES_PER_ELEMENT = {"auto": 2, "fp8": 1}
MEMORY_BANDWIDTH_EFFICIENCY = 0.8
COMPUTE_EFFICIENCY_16BIT = 0.6
COMPUTE_EFFICIENCY_8BIT = 0.45
# Attention is costed at the 16-bit rate whatever the weights are: the late prefill steps of a
# 100k-token document (256-, 512- and 2560-token chunks over ~99k cached tokens, FP8 weights
# and KV) measured on an H100 match that within −9 %/+11 %/+14 %
# (benchmarks/results/gpu_proof.json, tests/unit/test_sizing_calibration.py); costing it at
# the FP8 rate predicts them a third too fast.
# A step kind that is more than this share of all steps sets the p95 inter-token latency.
P95_TAIL_SHARE = 0.05
# vLLM's own defaults for `vllm serve` (V1 engine), by device memory.
STOCK_LARGE_GPU_GIB = 70
STOCK_UTILIZATION = 0.9
# The plan never asks for more sequences per step than vLLM's largest default.
MAX_NUM_SEQS = 1024


@dataclass(frozen=True)
class ServingKnobs:
    """What vLLM is told; `max_num_seqs=None` means "as many as KV cache and ITL SLO allow"."""

    quantization: str
    kv_cache_dtype: str
    gpu_memory_utilization: float
    tensor_parallel_size: int
    max_model_len: int
    max_num_batched_tokens: int
    max_num_seqs: int | None
    enable_prefix_caching: bool
    enable_chunked_prefill: bool


@dataclass(frozen=True)
class Workload:
    concurrent_users: int
    question_tokens: int
    context_tokens: int
    output_tokens: int
    shared_prefix_share: float

    @property
    def sequence_tokens(self) -> int:
        return self.question_tokens + self.context_tokens + self.output_tokens

    @property
    def prompt_tokens(self) -> int:
        return self.question_tokens + self.context_tokens


@dataclass(frozen=True)
class Targets:
    ttft_p95_ms: float
    itl_p95_ms: float
    min_throughput_rps: float


@dataclass(frozen=True)
class Pool:
    accelerator: Accelerator
    gpus_per_node: int
    max_nodes: int
    gpu_hour_usd: float


# --- memory ----------------------------------------------------------------------------------


def weight_bytes(architecture: ModelArchitecture, quantization: str) -> float:
    """Bytes of weights; embeddings and LM head stay 16-bit under every scheme."""
    embeddings = embedding_parameter_count(architecture)
    compressed = architecture.parameter_count - embeddings
    return embeddings * 2.0 + compressed * WEIGHT_BYTES_PER_PARAMETER[quantization]


def kv_cache_bytes_per_token(architecture: ModelArchitecture, kv_cache_dtype: str) -> int:
    """2 (K and V) × layers × KV heads × head dim × bytes per element."""
    return (
        2
        * architecture.num_layers
        * architecture.num_kv_heads
        * architecture.head_dim
        * KV_BYTES_PER_ELEMENT[kv_cache_dtype]
    )


def kv_cache_bytes_per_token_per_gpu(
    architecture: ModelArchitecture, kv_cache_dtype: str, tensor_parallel_size: int
) -> int:
    """Per-GPU share under tensor parallelism; KV heads are replicated when TP exceeds them."""
    heads_per_gpu = max(1, architecture.num_kv_heads // tensor_parallel_size)
    return (
        2
        * architecture.num_layers
        * heads_per_gpu
        * architecture.head_dim
        * KV_BYTES_PER_ELEMENT[kv_cache_dtype]
    )


def kv_cache_bytes_for_request(
    architecture: ModelArchitecture, kv_cache_dtype: str, tokens: int
) -> int:
    return kv_cache_bytes_per_token(architecture, kv_cache_dtype) * tokens


@dataclass(frozen=True)
class KvCapacity:
    budget_gib_per_gpu: float
    weights_gib_per_gpu: float
    overhead_gib_per_gpu: float
    kv_cache_gib_per_gpu: float
    kv_cache_tokens: int  # per replica (all its GPUs together hold this many tokens)


def kv_cache_capacity(
    architecture: ModelArchitecture,
    accelerator: Accelerator,
    knobs: ServingKnobs,
) -> KvCapacity:
    """KV-cache tokens one replica can hold, after weights and runtime overhead."""
    tp = knobs.tensor_parallel_size
    budget = accelerator.memory_gib * knobs.gpu_memory_utilization
    weights = weight_bytes(architecture, knobs.quantization) / tp / GIB
    overhead = accelerator.runtime_overhead_gib
    kv_gib = budget - weights - overhead
    per_token = kv_cache_bytes_per_token_per_gpu(architecture, knobs.kv_cache_dtype, tp)
    blocks = math.floor(max(kv_gib, 0.0) * GIB / (per_token * KV_BLOCK_TOKENS))
    return KvCapacity(budget, weights, overhead, kv_gib, blocks * KV_BLOCK_TOKENS)


def max_concurrent_sequences(kv_cache_tokens: int, tokens_per_sequence: int) -> int:
    """Whole sequences of this length that fit in the KV cache at once."""
    return kv_cache_tokens // max(tokens_per_sequence, 1)


def kv_concurrency_for_workload(kv_cache_tokens: int, workload: Workload, caching: bool) -> int:
    """Concurrent requests whose KV fits; a shared document is stored once per replica."""
    shared = workload.context_tokens * workload.shared_prefix_share if caching else 0.0
    per_request = workload.sequence_tokens - shared
    available = kv_cache_tokens - (workload.context_tokens if shared else 0)
    return max(0, math.floor(available / per_request))


# --- speed -----------------------------------------------------------------------------------


def _compute_rate_flops(accelerator: Accelerator, quantization: str, tp: int) -> float:
    scale_8bit = accelerator.compute_scale_8bit or accelerator.compute_scale
    if quantization == "fp8" and accelerator.fp8_tflops:
        peak, efficiency, scale = accelerator.fp8_tflops, COMPUTE_EFFICIENCY_8BIT, scale_8bit
    elif quantization == "int8-w8a8" and accelerator.int8_tops:
        peak, efficiency, scale = accelerator.int8_tops, COMPUTE_EFFICIENCY_8BIT, scale_8bit
    else:  # bf16 activations (none, w4a16)
        peak, efficiency, scale = (
            accelerator.bf16_tflops,
            COMPUTE_EFFICIENCY_16BIT,
            accelerator.compute_scale,
        )
    return peak * 1e12 * efficiency * scale * tp


def _attention_rate_flops(accelerator: Accelerator, tp: int) -> float:
    return _compute_rate_flops(accelerator, "none", tp)


def matmul_flops_per_token(architecture: ModelArchitecture) -> float:
    """2 × the parameters a token multiplies through (the input embedding is a lookup)."""
    input_embedding = architecture.vocab_size * architecture.hidden_size
    return 2 * (architecture.parameter_count - input_embedding)


def attention_flops_per_token(architecture: ModelArchitecture, context_tokens: float) -> float:
    """Q·Kᵀ and attention·V for one token over `context_tokens` earlier tokens."""
    heads = architecture.num_attention_heads * architecture.head_dim
    return 4 * architecture.num_layers * heads * context_tokens


def compute_seconds(
    architecture: ModelArchitecture,
    accelerator: Accelerator,
    quantization: str,
    tensor_parallel_size: int,
    tokens: float,
    context_tokens: float,
) -> float:
    """Compute time of `tokens` tokens that each attend to `context_tokens` tokens: matmuls at
    the weights' precision, attention at 16-bit."""
    matmul = matmul_flops_per_token(architecture) / _compute_rate_flops(
        accelerator, quantization, tensor_parallel_size
    )
    attention = attention_flops_per_token(architecture, context_tokens) / _attention_rate_flops(
        accelerator, tensor_parallel_size
    )
    return tokens * (matmul + attention)


def memory_step_seconds(
    architecture: ModelArchitecture,
    accelerator: Accelerator,
    knobs: ServingKnobs,
    batch: int,
    kv_tokens_read_per_sequence: float,
) -> float:
    """One engine step's memory time: weights once plus every running sequence's KV cache."""
    tp = knobs.tensor_parallel_size
    weights = weight_bytes(architecture, knobs.quantization) / tp
    kv_per_token = kv_cache_bytes_per_token_per_gpu(architecture, knobs.kv_cache_dtype, tp)
    moved = weights + batch * kv_tokens_read_per_sequence * kv_per_token
    bandwidth = accelerator.memory_bandwidth_gb_s * 1e9 * MEMORY_BANDWIDTH_EFFICIENCY
    return moved / bandwidth + accelerator.step_overhead_ms / 1e3


@dataclass(frozen=True)
class ReplicaSpeed:
    batch: int
    decode_step_ms: float
    prefill_step_ms: float
    last_chunk_step_ms: float
    prefill_step_share: float
    itl_p95_ms: float
    ttft_unloaded_ms: float
    requests_per_s: float
    output_tokens_per_s: float


def replica_speed(
    architecture: ModelArchitecture,
    accelerator: Accelerator,
    knobs: ServingKnobs,
    workload: Workload,
    batch: int,
) -> ReplicaSpeed:
    """Steady-state speed of one replica with `batch` requests in flight.

    Throughput counts prefill work at its average attention span; the inter-token latency a
    prefill step causes is that of the prompt's last chunk, which attends to the whole prompt.
    """

    def compute(tokens: float, context_tokens: float) -> float:
        return compute_seconds(
            architecture,
            accelerator,
            knobs.quantization,
            knobs.tensor_parallel_size,
            tokens,
            context_tokens,
        )

    kv_read = workload.prompt_tokens + workload.output_tokens / 2
    memory = memory_step_seconds(architecture, accelerator, knobs, batch, kv_read)
    decode_step = max(memory, compute(batch, kv_read))

    caching = knobs.enable_prefix_caching
    cached = workload.context_tokens * workload.shared_prefix_share if caching else 0.0
    uncached_prompt = workload.prompt_tokens - cached
    step_budget = (
        knobs.max_num_batched_tokens
        if knobs.enable_chunked_prefill
        else max(knobs.max_num_batched_tokens, knobs.max_model_len)
    )
    prefill_tokens_per_step = max(step_budget - batch, 1)
    average_span = cached + uncached_prompt / 2
    step_tokens = min(step_budget, batch * uncached_prompt + batch)
    prefill_step = max(memory, compute(step_tokens, average_span))
    last_chunk_step = max(memory, compute(step_tokens, workload.prompt_tokens))
    prefill_steps = math.ceil(batch * uncached_prompt / prefill_tokens_per_step)
    decode_steps = max(workload.output_tokens - prefill_steps, 0)
    cycle = prefill_steps * prefill_step + decode_steps * decode_step
    # A lone request never decodes while a prompt prefills: no token waits on a prefill step.
    share = prefill_steps / max(prefill_steps + decode_steps, 1) if batch > 1 else 0.0
    itl_p95 = max(last_chunk_step, decode_step) if share > P95_TAIL_SHARE else decode_step

    unloaded_chunks = math.ceil(uncached_prompt / step_budget)
    ttft = max(compute(uncached_prompt, average_span), unloaded_chunks * memory)
    requests_per_s = batch / cycle
    return ReplicaSpeed(
        batch=batch,
        decode_step_ms=decode_step * 1e3,
        prefill_step_ms=prefill_step * 1e3,
        last_chunk_step_ms=last_chunk_step * 1e3,
        prefill_step_share=share,
        itl_p95_ms=itl_p95 * 1e3,
        ttft_unloaded_ms=ttft * 1e3,
        requests_per_s=requests_per_s,
        output_tokens_per_s=requests_per_s * workload.output_tokens,
    )


def prefill_chunk_tokens_for_itl(
    architecture: ModelArchitecture,
    accelerator: Accelerator,
    quantization: str,
    tensor_parallel_size: int,
    prompt_tokens: int,
    itl_target_ms: float,
) -> int:
    """Largest step budget (multiple of 256) whose prefill chunk still meets the ITL target.

    The budget is set by the prompt's last chunk: it attends to the whole prompt, so it is the
    slowest step a long document puts in front of every decoding stream.
    """
    per_token = compute_seconds(
        architecture, accelerator, quantization, tensor_parallel_size, 1, prompt_tokens
    )
    tokens = itl_target_ms / 1e3 / per_token
    return int(tokens // 256) * 256


# --- one replica, fully sized ----------------------------------------------------------------


class LoadFigures(Protocol):
    """One replica's steady state at some number of requests in flight."""

    @property
    def requests_per_s(self) -> float: ...

    @property
    def itl_p95_ms(self) -> float: ...


class LoadModel(Protocol):
    """Latency under load (`infra.load_model.SimulatedReplica` simulates vLLM's scheduler):
    where it is given, replicas are sized from the most requests in flight that meet both the
    TTFT and ITL targets, and throughput at a load is what it predicts."""

    def slo_concurrency(self, knobs: ServingKnobs, ceiling: int) -> int: ...

    def at(self, knobs: ServingKnobs, concurrency: int) -> LoadFigures: ...


def _under_load(
    speed: ReplicaSpeed, model: LoadModel | None, knobs: ServingKnobs, workload: Workload
) -> ReplicaSpeed:
    if model is None:
        return speed
    point = model.at(knobs, speed.batch)
    return replace(
        speed,
        requests_per_s=point.requests_per_s,
        output_tokens_per_s=point.requests_per_s * workload.output_tokens,
        itl_p95_ms=point.itl_p95_ms,
    )


@dataclass(frozen=True)
class ReplicaSizing:
    knobs: ServingKnobs
    memory: KvCapacity
    kv_cache_bytes_per_token: int
    max_sequences_at_max_model_len: float
    kv_concurrency: int
    slo_concurrency: int
    concurrency: int
    speed: ReplicaSpeed
    batch1_tokens_per_s: float
    bandwidth_bound_tokens_per_s: float


def size_replica(
    architecture: ModelArchitecture,
    accelerator: Accelerator,
    knobs: ServingKnobs,
    workload: Workload,
    targets: Targets,
    load_model: LoadModel | None = None,
) -> ReplicaSizing:
    """Capacity and speed of one replica; `concurrency` is what it serves within the SLOs:
    by `load_model` (both targets) where given, else by the analytic ITL model alone."""
    memory = kv_cache_capacity(architecture, accelerator, knobs)
    kv_concurrency = kv_concurrency_for_workload(
        memory.kv_cache_tokens, workload, knobs.enable_prefix_caching
    )
    ceiling = min(kv_concurrency, knobs.max_num_seqs or MAX_NUM_SEQS)

    def speed(batch: int) -> ReplicaSpeed:
        return replica_speed(architecture, accelerator, knobs, workload, batch)

    if load_model is not None:
        slo_concurrency = load_model.slo_concurrency(knobs, ceiling) if ceiling else 0
    else:
        slo_concurrency = _largest_batch(
            lambda b: speed(b).itl_p95_ms <= targets.itl_p95_ms, ceiling
        )
    concurrency = max(min(slo_concurrency, ceiling), 1 if ceiling else 0)
    kv_read = workload.prompt_tokens + workload.output_tokens / 2
    batch1 = memory_step_seconds(architecture, accelerator, knobs, 1, kv_read)
    at_concurrency = memory_step_seconds(
        architecture, accelerator, knobs, max(concurrency, 1), kv_read
    )
    return ReplicaSizing(
        knobs=knobs,
        memory=memory,
        kv_cache_bytes_per_token=kv_cache_bytes_per_token(architecture, knobs.kv_cache_dtype),
        max_sequences_at_max_model_len=memory.kv_cache_tokens / knobs.max_model_len,
        kv_concurrency=kv_concurrency,
        slo_concurrency=slo_concurrency,
        concurrency=concurrency,
        speed=_under_load(speed(max(concurrency, 1)), load_model, knobs, workload),
        batch1_tokens_per_s=1 / batch1,
        bandwidth_bound_tokens_per_s=max(concurrency, 1) / at_concurrency,
    )


def _largest_batch(meets: Callable[[int], bool], ceiling: int) -> int:
    """Largest b in [1, ceiling] with meets(b) (monotone: larger batches are slower)."""
    low, high = 0, ceiling
    while low < high:
        middle = (low + high + 1) // 2
        if meets(middle):
            low = middle
        else:
            high = middle - 1
    return low


# --- the whole deployment --------------------------------------------------------------------


@dataclass(frozen=True)
class SizingProblem:
    what: str
    fix: str


@dataclass(frozen=True)
class DeploymentSizing:
    """The deployment at the workload's load; capacity figures are at full concurrency."""

    replica: ReplicaSizing
    load: ReplicaSpeed  # one replica at its share of the configured users
    replicas: int
    gpus: int
    nodes: int
    max_replicas: int
    requests_per_s: float
    output_tokens_per_s: float
    capacity_requests_per_s: float
    cost_per_hour_usd: float
    cost_per_request_usd: float
    cost_per_million_output_tokens_usd: float
    problems: tuple[SizingProblem, ...]

    @property
    def fits(self) -> bool:
        return not self.problems


def size_deployment(
    architecture: ModelArchitecture,
    pool: Pool,
    knobs: ServingKnobs,
    workload: Workload,
    targets: Targets,
    min_replicas: int,
    max_replicas: int | None = None,
    max_num_seqs_pinned: bool = False,
    load_model: LoadModel | None = None,
) -> DeploymentSizing:
    """Replicas, GPUs and cost for the workload, with every reason it does not fit."""
    replica = size_replica(architecture, pool.accelerator, knobs, workload, targets, load_model)
    tp = knobs.tensor_parallel_size
    capacity = (pool.gpus_per_node * pool.max_nodes) // tp
    max_replicas = min(max_replicas, capacity) if max_replicas else capacity
    problems = _problems(architecture, pool, knobs, workload, targets, replica, max_num_seqs_pinned)

    per_replica_capacity = max(replica.concurrency, 1)
    replicas = max(min_replicas, math.ceil(workload.concurrent_users / per_replica_capacity), 1)

    def at_load(count: int) -> ReplicaSpeed:
        batch = min(math.ceil(workload.concurrent_users / count), per_replica_capacity)
        speed = replica_speed(architecture, pool.accelerator, knobs, workload, batch)
        return _under_load(speed, load_model, knobs, workload)

    load = at_load(replicas)
    # Requests in flight bound throughput (closed loop): more replicas only shorten each
    # request, so add them while that still helps reach the throughput target.
    ceiling = min(max_replicas, workload.concurrent_users)
    while replicas * load.requests_per_s < targets.min_throughput_rps and replicas < ceiling:
        replicas += 1
        load = at_load(replicas)
    if not problems and replicas > max_replicas:
        nodes = math.ceil(replicas * tp / pool.gpus_per_node)
        problems.append(
            SizingProblem(
                f"{replicas} replicas of {tp} GPU(s) are needed for {workload.concurrent_users} "
                f"concurrent users within TTFT p95 {targets.ttft_p95_ms:g} ms and ITL p95 "
                f"{targets.itl_p95_ms:g} ms ({per_replica_capacity} per replica), but the pool "
                f"holds {max_replicas}",
                f"raise gpuPool.maxNodes to {nodes}",
            )
        )
    elif not problems and replicas * load.requests_per_s < targets.min_throughput_rps:
        problems.append(
            SizingProblem(
                f"{workload.concurrent_users} concurrent users reach at most "
                f"{replicas * load.requests_per_s:.2f} req/s on {replicas} replica(s), below the "
                f"{targets.min_throughput_rps:g} req/s target",
                "raise workload.concurrentUsers (more requests in flight) or lower "
                "slo.minThroughputRps",
            )
        )
    gpus = replicas * tp
    cost_per_hour = gpus * pool.gpu_hour_usd
    requests_per_s = replicas * load.requests_per_s
    return DeploymentSizing(
        replica=replica,
        load=load,
        replicas=replicas,
        gpus=gpus,
        nodes=math.ceil(gpus / pool.gpus_per_node),
        max_replicas=max_replicas,
        requests_per_s=requests_per_s,
        output_tokens_per_s=replicas * load.output_tokens_per_s,
        capacity_requests_per_s=replicas * replica.speed.requests_per_s,
        cost_per_hour_usd=cost_per_hour,
        cost_per_request_usd=cost_per_hour / 3600 / requests_per_s,
        cost_per_million_output_tokens_usd=cost_per_hour
        / 3600
        / (replicas * load.output_tokens_per_s)
        * 1e6,
        problems=tuple(problems),
    )


def _problems(
    architecture: ModelArchitecture,
    pool: Pool,
    knobs: ServingKnobs,
    workload: Workload,
    targets: Targets,
    replica: ReplicaSizing,
    max_num_seqs_pinned: bool,
) -> list[SizingProblem]:
    """What makes this configuration unservable; the fix is filled in by `smallest_fix`."""
    problems: list[SizingProblem] = []
    memory = replica.memory
    if memory.kv_cache_gib_per_gpu <= 0:
        problems.append(
            SizingProblem(
                f"weights ({memory.weights_gib_per_gpu:.1f} GiB/GPU) and runtime overhead do "
                f"not fit in {memory.budget_gib_per_gpu:.1f} GiB "
                f"({knobs.gpu_memory_utilization:g} × {pool.accelerator.name})",
                "",
            )
        )
    elif memory.kv_cache_tokens < knobs.max_model_len:
        problems.append(
            SizingProblem(
                f"the KV cache holds {memory.kv_cache_tokens:,} tokens, less than one "
                f"{knobs.max_model_len:,}-token sequence (max-model-len)",
                "",
            )
        )
    elif max_num_seqs_pinned and (knobs.max_num_seqs or 0) > replica.kv_concurrency:
        problems.append(
            SizingProblem(
                f"max-num-seqs {knobs.max_num_seqs} exceeds the {replica.kv_concurrency} requests "
                f"of {workload.sequence_tokens:,} tokens the KV cache holds (vLLM would preempt)",
                "",
            )
        )
    elif replica.slo_concurrency == 0:
        problems.append(
            SizingProblem(
                "even one request in flight misses a latency target (ITL p95 "
                f"{replica.speed.itl_p95_ms:.1f} ms vs {targets.itl_p95_ms:g} ms, TTFT on an "
                f"idle replica {replica.speed.ttft_unloaded_ms:.0f} ms vs "
                f"{targets.ttft_p95_ms:g} ms)",
                "",
            )
        )
    if memory.kv_cache_gib_per_gpu > 0 and replica.speed.ttft_unloaded_ms > targets.ttft_p95_ms:
        problems.append(
            SizingProblem(
                f"prefilling one {workload.prompt_tokens:,}-token prompt takes "
                f"{replica.speed.ttft_unloaded_ms:.0f} ms on an idle replica, over the TTFT target "
                f"({targets.ttft_p95_ms:g} ms)",
                "",
            )
        )
    return problems


def stock_knobs(
    accelerator: Accelerator, max_model_len: int, tensor_parallel_size: int
) -> ServingKnobs:
    """vLLM's out-of-the-box `vllm serve` settings: bf16, 16-bit KV, its default batching."""
    large = accelerator.memory_gib >= STOCK_LARGE_GPU_GIB
    return ServingKnobs(
        quantization="none",
        kv_cache_dtype="auto",
        gpu_memory_utilization=STOCK_UTILIZATION,
        tensor_parallel_size=tensor_parallel_size,
        max_model_len=max_model_len,
        max_num_batched_tokens=8192 if large else 2048,
        max_num_seqs=1024 if large else 256,
        enable_prefix_caching=True,
        enable_chunked_prefill=True,
    )


def with_knobs(knobs: ServingKnobs, **changes: object) -> ServingKnobs:
    return replace(knobs, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class StepCost:
    """One engine step's roofline cost, reduced to coefficients (the scheduler simulation
    costs hundreds of thousands of steps). A step runs two kinds of kernel one after the other,
    each bound by its own roofline: the linear layers (the weights read once, or the batched
    tokens' matmuls computed, whichever is longer) and attention (every context's KV cache
    read, or the attention FLOPs computed). Decode attention reading a long context's KV cache
    does not hide under the prefill chunk's matmuls: on the H200 at prod's shape the GPU's rate
    is flat from 96 streams on, as this sum predicts and a single max over the step does not
    (benchmarks/results/gpu_h200_step_cost.md)."""

    weight_bytes: float
    kv_bytes_per_token: float
    bandwidth: float  # bytes/s actually reached
    matmul_s_per_token: float
    attention_s_per_context_token: float
    step_overhead_s: float
    sequence_overhead_s: float

    @classmethod
    def of(
        cls, architecture: ModelArchitecture, accelerator: Accelerator, knobs: ServingKnobs
    ) -> StepCost:
        tp = knobs.tensor_parallel_size
        heads = architecture.num_attention_heads * architecture.head_dim
        return cls(
            weight_bytes=weight_bytes(architecture, knobs.quantization) / tp,
            kv_bytes_per_token=kv_cache_bytes_per_token_per_gpu(
                architecture, knobs.kv_cache_dtype, tp
            ),
            bandwidth=accelerator.memory_bandwidth_gb_s * 1e9 * MEMORY_BANDWIDTH_EFFICIENCY,
            matmul_s_per_token=matmul_flops_per_token(architecture)
            / _compute_rate_flops(accelerator, knobs.quantization, tp),
            attention_s_per_context_token=4
            * architecture.num_layers
            * heads
            / _attention_rate_flops(accelerator, tp),
            step_overhead_s=accelerator.step_overhead_ms / 1e3,
            sequence_overhead_s=accelerator.sequence_overhead_ms / 1e3,
        )

    def terms(
        self, decode_tokens: int, decode_context_tokens: int, prefill_chunks: list[tuple[int, int]]
    ) -> StepTerms:
        """The step's time by what could bound it: each kernel kind's two rooflines, and the
        host's share."""
        prefill_tokens = prefill_start = 0
        prefill_attention = 0.0
        for tokens, start in prefill_chunks:
            prefill_tokens += tokens
            prefill_start += start
            prefill_attention += tokens * (start + tokens / 2)
        sequences = decode_tokens + len(prefill_chunks)
        return StepTerms(
            matmuls=(decode_tokens + prefill_tokens) * self.matmul_s_per_token,
            weight_reads=self.weight_bytes / self.bandwidth,
            kv_reads=(decode_context_tokens + prefill_start)
            * self.kv_bytes_per_token
            / self.bandwidth,
            attention_flops=self.attention_s_per_context_token
            * (decode_context_tokens + prefill_attention),
            host=self.step_overhead_s + sequences * self.sequence_overhead_s,
        )

    def seconds(
        self, decode_tokens: int, decode_context_tokens: int, prefill_chunks: list[tuple[int, int]]
    ) -> float:
        t = self.terms(decode_tokens, decode_context_tokens, prefill_chunks)
        return max(t.matmuls, t.weight_reads) + max(t.kv_reads, t.attention_flops) + t.host


class StepTerms(NamedTuple):
    """One step's candidate times in seconds (`StepCost.terms`)."""

    matmuls: float
    weight_reads: float
    kv_reads: float
    attention_flops: float
    host: float


def step_seconds(
    architecture: ModelArchitecture,
    accelerator: Accelerator,
    knobs: ServingKnobs,
    decode_tokens: int,
    decode_context_tokens: int,
    prefill_chunks: list[tuple[int, int]],
) -> float:
    """One engine step carrying `decode_tokens` decoding sequences (with this many context
    tokens in all) and prefill chunks of (tokens, context already cached): its linear layers
    (weights read or matmuls computed, whichever is longer), then its attention (KV cache read or
    attention computed), plus the host's per-step overhead."""
    return StepCost.of(architecture, accelerator, knobs).seconds(
        decode_tokens, decode_context_tokens, prefill_chunks
    )
