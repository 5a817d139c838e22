"""Facts the sizing model needs: accelerators and model architectures.

Numbers here are vendor datasheet figures (dense, no sparsity) and the models' published
`config.json` values. Memory is what the driver reports (`nvidia-smi` total), because vLLM
takes `gpu_memory_utilization` as a share of exactly that figure.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class Accelerator:
    """One accelerator model as the sizing model sees it."""

    name: str
    memory_gib: float
    memory_bandwidth_gb_s: float
    bf16_tflops: float
    # Native 8-bit tensor throughput (FP8 on Ada/Hopper, INT8 on Ampere); None when absent.
    fp8_tflops: float | None
    int8_tops: float | None
    # Weight schemes vLLM can serve on this device, and whether an FP8 KV cache is native.
    quantizations: frozenset[str]
    fp8_kv_cache: bool
    # Memory vLLM keeps outside weights and KV cache (activations of the profile run, CUDA
    # graphs, NCCL/cuBLAS workspaces). Calibrated in tests/unit/test_sizing_calibration.py.
    runtime_overhead_gib: float
    is_gpu: bool = True
    # Fixed host-side cost of one engine step (scheduling, sampling); on GPUs CUDA graphs hide
    # it inside the calibrated efficiencies.
    step_overhead_ms: float = 0.0
    # Host work per running sequence per step (scheduling, sampling, detokenizing, streaming):
    # small on a GPU server, most of a step on the CPU build.
    sequence_overhead_ms: float = 0.0
    # Share of the datasheet-efficiency compute rate the device reached under the product's
    # gate (long RAG prompts are prefill-bound): 1.0 where it was never measured that way.
    compute_scale: float = 1.0
    # The same for 8-bit matmuls (FP8 / INT8 W8A8) where they were measured apart from the
    # 16-bit ones; None: `compute_scale`.
    compute_scale_8bit: float | None = None
    # Largest step budget (max-num-batched-tokens) worth asking for; None: the plan's own cap.
    max_batched_tokens: int | None = None
    note: str = ""


_ALL_GPU_SCHEMES = frozenset({"none", "fp8", "int8-w8a8", "w4a16"})
_AMPERE_SCHEMES = frozenset({"none", "int8-w8a8", "w4a16"})

ACCELERATORS: dict[str, Accelerator] = {
    accelerator.name: accelerator
    for accelerator in (
        Accelerator(
            name="H100-80GB",
            memory_gib=81559 / 1024,
            memory_bandwidth_gb_s=3350,
            bf16_tflops=989,
            fp8_tflops=1979,
            int8_tops=1979,
            quantizations=_ALL_GPU_SCHEMES,
            fp8_kv_cache=True,
            runtime_overhead_gib=1.0,
            note="SXM5; bandwidth and TFLOPS from the H100 datasheet",
        ),
        Accelerator(
            name="H200",
            memory_gib=143771 / 1024,
            memory_bandwidth_gb_s=4800,
            bf16_tflops=989,
            fp8_tflops=1979,
            int8_tops=1979,
            quantizations=_ALL_GPU_SCHEMES,
            fp8_kv_cache=True,
            runtime_overhead_gib=1.0,
            # The product's gate on one H200 (vLLM 0.25.1, 2026-12-02/03; gpu_h200_summary.md,
            # tests/unit/test_sizing_calibration.py), its 14 count-bounded levels — FP8 + FP8
            # KV at 16-127 streams at prod's 6,400 / 384 tokens, at 256 streams at 2048/256;
            # stock bf16 at 74 streams (prod's shape), 112 and 140 (2048/256) — fix the 16-bit
            # scale at 1.05 and the 8-bit one at 0.88, steps costed per kernel kind
            # (`sizing.StepCost`; gpu_h200_step_cost.md): req/s and ITL p95 within 5 % at
            # prod's shape, including the flat rate from 96 streams on; FP8 at 256 streams of
            # 2048/256 is the outlier (8 % slow, ITL 10 % high).
            # Kernel for kernel FP8 GEMMs run 1.5-1.8× bf16 here at ≥ 2,048 tokens
            # (gpu_h200_gemm_rates.md); whole steps gain ≈ 1.15×: decode attention, reading
            # every context's KV cache, and the other per-step work keep their speed.
            compute_scale=1.05,
            compute_scale_8bit=0.88,
        ),
        Accelerator(
            name="A100-80GB",
            memory_gib=81920 / 1024,
            memory_bandwidth_gb_s=2039,
            bf16_tflops=312,
            fp8_tflops=None,
            int8_tops=624,
            quantizations=_AMPERE_SCHEMES,
            fp8_kv_cache=False,
            runtime_overhead_gib=1.0,
        ),
        Accelerator(
            name="A100-40GB",
            memory_gib=40960 / 1024,
            memory_bandwidth_gb_s=1555,
            bf16_tflops=312,
            fp8_tflops=None,
            int8_tops=624,
            quantizations=_AMPERE_SCHEMES,
            fp8_kv_cache=False,
            runtime_overhead_gib=1.0,
        ),
        Accelerator(
            name="A10G",
            memory_gib=23028 / 1024,
            memory_bandwidth_gb_s=600,
            bf16_tflops=125,
            fp8_tflops=None,
            int8_tops=250,
            quantizations=_AMPERE_SCHEMES,
            fp8_kv_cache=False,
            runtime_overhead_gib=1.0,
            note="A10 datasheet figures; AWS clocks the A10G lower, so treat compute as optimistic",
        ),
        Accelerator(
            name="L4",
            memory_gib=23034 / 1024,
            memory_bandwidth_gb_s=300,
            bf16_tflops=121,
            fp8_tflops=242,
            int8_tops=242,
            quantizations=_ALL_GPU_SCHEMES,
            fp8_kv_cache=True,
            runtime_overhead_gib=1.0,
        ),
        Accelerator(
            name="L40S",
            memory_gib=46068 / 1024,
            memory_bandwidth_gb_s=864,
            bf16_tflops=362,
            fp8_tflops=733,
            int8_tops=733,
            quantizations=_ALL_GPU_SCHEMES,
            fp8_kv_cache=True,
            runtime_overhead_gib=1.0,
        ),
        Accelerator(
            # vLLM's CPU build (local stack). "Memory" is the KV-cache space plus weights it may
            # use. INT8 W8A8 runs on oneDNN's int8 kernels (64 tokens in 0.26 s, tiny Llama, 2
            # cores); FP8 weights fall back to a reference _scaled_mm in torch 2.13 (700 ms per
            # token, 19 s to the first token of a 448-token prompt), so they are refused here.
            name="cpu",
            memory_gib=4.0,
            memory_bandwidth_gb_s=20,
            bf16_tflops=0.2,
            fp8_tflops=None,
            int8_tops=None,
            quantizations=frozenset({"none", "int8-w8a8"}),
            fp8_kv_cache=False,
            runtime_overhead_gib=0.25,
            is_gpu=False,
            # Host work dominates tiny models on the CPU build. vLLM CPU 0.32 on 2 cores, tiny
            # Llama with a BPE tokenizer, 448-token prompts (2026-12-02): ITL p50 2.5 ms at 4
            # streams, 13 ms at 16. These figures decide the server's arguments; the gate's
            # prediction comes from the speed probe `leanrag local up` runs on the machine
            # itself (its fit: benchmarks/results/local_stack.md).
            step_overhead_ms=2.0,
            sequence_overhead_ms=0.5,
            # vLLM CPU warms up with one step of the whole budget: FP8 weights on 2 cores took
            # 145 s to start at 2048 tokens and more than 8 minutes at 11008.
            max_batched_tokens=2048,
            note="vLLM CPU build; figures are rough and only used for the local stack",
        ),
    )
}


@dataclass(frozen=True)
class ModelArchitecture:
    """The architecture facts of a decoder-only transformer that sizing needs."""

    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_context_tokens: int
    parameter_count: int
    tie_word_embeddings: bool = False


@dataclass(frozen=True)
class ModelPreset:
    """A built-in model: where to fetch it and its architecture."""

    name: str
    uri: str
    architecture: ModelArchitecture
    # True for models whose weights are random (speed and memory work, tests).
    random_weights: bool = False
    # True for tiny models trained here on CPU (workloads/models.py): quality deltas are real.
    trained_locally: bool = False


# Values from each model's published config.json; parameter counts are the exact totals
# (tests/unit/test_catalog.py re-derives them from the architecture).

# The tiny Llama both local presets share (random, and trained here on CPU): real architecture,
# built on the fly, no download.
TINY_ARCHITECTURE = ModelArchitecture(
    num_layers=2,
    hidden_size=256,
    num_attention_heads=4,
    num_kv_heads=2,
    head_dim=64,
    intermediate_size=512,
    vocab_size=4096,
    max_context_tokens=2048,
    parameter_count=3_278_080,
)

MODEL_PRESETS: dict[str, ModelPreset] = {
    preset.name: preset
    for preset in (
        ModelPreset(
            name="llama-3.1-8b-instruct",
            uri="hf://meta-llama/Llama-3.1-8B-Instruct",
            architecture=ModelArchitecture(
                num_layers=32,
                hidden_size=4096,
                num_attention_heads=32,
                num_kv_heads=8,
                head_dim=128,
                intermediate_size=14336,
                vocab_size=128256,
                max_context_tokens=131072,
                parameter_count=8_030_261_248,
            ),
        ),
        ModelPreset(
            name="llama-3.1-70b-instruct",
            uri="hf://meta-llama/Llama-3.1-70B-Instruct",
            architecture=ModelArchitecture(
                num_layers=80,
                hidden_size=8192,
                num_attention_heads=64,
                num_kv_heads=8,
                head_dim=128,
                intermediate_size=28672,
                vocab_size=128256,
                max_context_tokens=131072,
                parameter_count=70_553_706_496,
            ),
        ),
        ModelPreset(
            name="qwen2.5-14b-instruct",
            uri="hf://Qwen/Qwen2.5-14B-Instruct",
            architecture=ModelArchitecture(
                num_layers=48,
                hidden_size=5120,
                num_attention_heads=40,
                num_kv_heads=8,
                head_dim=128,
                intermediate_size=13824,
                vocab_size=152064,
                max_context_tokens=32768,
                parameter_count=14_770_033_664,
            ),
        ),
        ModelPreset(
            name="phi-3-mini-128k-instruct",
            uri="hf://microsoft/Phi-3-mini-128k-instruct",
            architecture=ModelArchitecture(
                num_layers=32,
                hidden_size=3072,
                num_attention_heads=32,
                num_kv_heads=32,
                head_dim=96,
                intermediate_size=8192,
                vocab_size=32064,
                max_context_tokens=131072,
                parameter_count=3_821_079_552,
            ),
        ),
        ModelPreset(
            name="mistral-7b-instruct",
            uri="hf://mistralai/Mistral-7B-Instruct-v0.3",
            architecture=ModelArchitecture(
                num_layers=32,
                hidden_size=4096,
                num_attention_heads=32,
                num_kv_heads=8,
                head_dim=128,
                intermediate_size=14336,
                vocab_size=32768,
                max_context_tokens=32768,
                parameter_count=7_248_023_552,
            ),
        ),
        ModelPreset(
            # A real Llama architecture with random weights, built on the fly (no download), for
            # speed and memory work. Every output that uses it says so.
            name="tiny-random-llama",
            uri="local://tiny-random-llama",
            architecture=TINY_ARCHITECTURE,
            random_weights=True,
        ),
        ModelPreset(
            # The local stack's embedded default: the same architecture trained for minutes on
            # CPU on text that ships with Python (workloads/models.py), cached by content hash,
            # so compression's quality deltas are real. Speed is the random model's.
            name="tiny-trained-llama",
            uri="local://tiny-trained-llama",
            architecture=TINY_ARCHITECTURE,
            trained_locally=True,
        ),
    )
}


def derived_parameter_count(architecture: ModelArchitecture) -> int:
    """Parameters of a Llama-style decoder (GQA attention, gated MLP, RMSNorm), biases ignored."""
    hidden = architecture.hidden_size
    q_out = architecture.num_attention_heads * architecture.head_dim
    kv_out = architecture.num_kv_heads * architecture.head_dim
    attention = hidden * q_out + 2 * hidden * kv_out + q_out * hidden
    mlp = 3 * hidden * architecture.intermediate_size
    norms = 2 * hidden
    per_layer = attention + mlp + norms
    return architecture.num_layers * per_layer + embedding_parameter_count(architecture) + hidden


def embedding_parameter_count(architecture: ModelArchitecture) -> int:
    """Input embedding plus LM head; these stay in 16-bit under every compression scheme."""
    tables = 1 if architecture.tie_word_embeddings else 2
    return tables * architecture.vocab_size * architecture.hidden_size
