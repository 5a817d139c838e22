"""Typed stack configuration (the `leanrag:` namespace), validated once at the edge.

`validate_stack(raw, source)` turns the raw key/value mapping of one stack into a frozen
`StackConfig` or raises one `ConfigError` that lists every bad key with its value and fix.
Nothing below this module reads stack configuration again.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from infra.catalog import (
    ACCELERATORS,
    MODEL_PRESETS,
    ModelArchitecture,
    ModelPreset,
    derived_parameter_count,
)
from infra.errors import MISSING, ConfigError, ConfigProblem

NAMESPACE = "leanrag"
Platform = Literal["openshift", "kubernetes", "local"]
Quantization = Literal["none", "fp8", "int8-w8a8", "w4a16"]
KvCacheDtype = Literal["auto", "fp8"]
ServingApi = Literal["llminferenceservice", "inferenceservice"]
MilvusMode = Literal["standalone", "cluster", "external", "lite"]

# Keys whose values must be Pulumi secrets (`pulumi config set --secret`).
SECRET_KEYS = ("modelHubToken", "s3AccessKeyId", "s3SecretAccessKey")
MODEL_URI_SCHEMES = ("hf://", "pvc://", "s3://", "oci://", "local://")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# registry/path[:tag][@sha256:<64 hex>]
_IMAGE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


class _Section(BaseModel):
    """Base for every config section: camelCase keys, unknown keys rejected, immutable."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, frozen=True, validate_default=True
    )


class AwsMachineConfig(_Section):
    """What an OpenShift MachineSet on AWS needs; copy it from an existing worker MachineSet."""

    infrastructure_id: str
    region: str
    availability_zone: str
    ami_id: str = Field(pattern=r"^ami-[0-9a-f]{8,17}$")
    root_volume_gib: int = Field(default=250, ge=50, le=16384)


class GpuPoolConfig(_Section):
    gpu: str
    instance_type: str | None = None
    gpus_per_node: int = Field(ge=1, le=16)
    min_nodes: int = Field(ge=0, le=1000)
    max_nodes: int = Field(ge=1, le=1000)
    # Override of the catalog's memory figure (e.g. a MIG slice or the CPU build's budget).
    memory_gib: float | None = Field(default=None, gt=0, le=4096)
    aws: AwsMachineConfig | None = None
    # OpenShift: create the cluster-wide ClusterAutoscaler "default" (only if none exists).
    cluster_autoscaler: bool = False

    @field_validator("gpu")
    @classmethod
    def _known_gpu(cls, value: str) -> str:
        if value not in ACCELERATORS:
            raise ValueError(f"choose one of: {', '.join(ACCELERATORS)}")
        return value


class ArchitectureConfig(_Section):
    """Architecture facts; with a preset each one is an optional override."""

    num_layers: int | None = Field(default=None, ge=1, le=1024)
    hidden_size: int | None = Field(default=None, ge=1, le=131072)
    num_attention_heads: int | None = Field(default=None, ge=1, le=1024)
    num_kv_heads: int | None = Field(default=None, ge=1, le=1024)
    head_dim: int | None = Field(default=None, ge=1, le=1024)
    intermediate_size: int | None = Field(default=None, ge=1, le=1048576)
    vocab_size: int | None = Field(default=None, ge=1, le=10_000_000)
    max_context_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    parameter_count: int | None = Field(default=None, ge=1, le=10**13)
    tie_word_embeddings: bool | None = None


class ModelConfig(_Section):
    preset: str | None = None
    uri: str | None = None
    served_name: str | None = None
    architecture: ArchitectureConfig | None = None

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in MODEL_PRESETS:
            raise ValueError(
                f"choose one of: {', '.join(MODEL_PRESETS)} — or drop `preset` and give "
                "`uri` plus every `architecture` field"
            )
        return value

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(MODEL_URI_SCHEMES):
            raise ValueError(f"start the URI with one of: {', '.join(MODEL_URI_SCHEMES)}")
        return value


class QualityBudgetConfig(_Section):
    """What a compressed checkpoint may lose on held-out passages of the calibration corpus
    before the quantize Job refuses to publish it (unset: the scheme's default in
    workloads/contract.py, measured in benchmarks/results/quality.md)."""

    enabled: bool = True
    max_kl_nats: float | None = Field(default=None, gt=0, le=10)
    min_top1_agreement: float | None = Field(default=None, ge=0, le=1)
    max_perplexity_increase: float | None = Field(default=None, ge=0, le=10)
    # The gate's live check: served log-probabilities of the held-out passages vs the Job's.
    live_tolerance_nats: float | None = Field(default=None, gt=0, le=10)


class ServingConfig(_Section):
    quantization: Quantization
    kv_cache_dtype: KvCacheDtype = "auto"
    api: ServingApi = "llminferenceservice"
    # Knobs the plan decides unless the operator pins them here.
    gpu_memory_utilization: float | None = Field(default=None, ge=0.5, le=0.98)
    max_num_seqs: int | None = Field(default=None, ge=1, le=4096)
    max_model_len: int | None = Field(default=None, ge=256, le=10_000_000)
    max_num_batched_tokens: int | None = Field(default=None, ge=256, le=1_048_576)
    tensor_parallel_size: int | None = Field(default=None, ge=1, le=16)
    enable_prefix_caching: bool = True
    enable_chunked_prefill: bool = True
    # The stack's vLLM plugin (workloads/vllm_plugin, mounted from a ConfigMap) primes
    # streaming detokenization with this many of the prompt's last tokens instead of the whole
    # prompt, so a long document's first token does not stall every other stream
    # (benchmarks/results/gpu_proof.md). 0: no plugin, vLLM as shipped.
    detokenizer_prime_tokens: int = Field(default=32, ge=0, le=4096)
    min_replicas: int = Field(default=1, ge=0, le=1000)
    max_replicas: int | None = Field(default=None, ge=1, le=1000)
    scale_to_zero: bool = False
    # GPTQ schemes calibrate on real text: a pvc:// or s3:// folder of documents (the corpus
    # you ingest) or JSONL file, fetched like the model.
    calibration_uri: str | None = None
    # Where the compressed checkpoint goes and vLLM loads it from: pvc://<claim>/<path> or
    # s3://<bucket>/<prefix> (default: a volume the stack creates, pvc://leanrag-models/...).
    checkpoint_uri: str | None = None
    # Size of the PVC that holds the compressed checkpoint (default: 1.5 × both checkpoints).
    model_volume_gib: int | None = Field(default=None, ge=1, le=100_000)
    # Deploy stock vLLM (bf16, default settings) beside the optimized service for the gate's
    # before/after measurement.
    baseline_comparison: bool = False
    quality_budget: QualityBudgetConfig = QualityBudgetConfig()

    @field_validator("calibration_uri", "checkpoint_uri")
    @classmethod
    def _pvc_or_s3(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("pvc://", "s3://")):
            raise ValueError("use pvc://<claim>/<path> or s3://<bucket>/<path>")
        return value


class WorkloadConfig(_Section):
    """The RAG traffic at peak: requests in flight and the shape of each."""

    concurrent_users: int = Field(ge=1, le=1_000_000)
    context_tokens: int = Field(ge=0, le=10_000_000)
    question_tokens: int = Field(default=128, ge=1, le=1_000_000)
    output_tokens: int = Field(ge=1, le=1_000_000)
    shared_prefix_share: float = Field(default=0.0, ge=0.0, le=1.0)

    @property
    def sequence_tokens(self) -> int:
        return self.question_tokens + self.context_tokens + self.output_tokens


class SloConfig(_Section):
    ttft_p95_ms: float = Field(gt=0, le=3_600_000)
    itl_p95_ms: float = Field(gt=0, le=60_000)
    min_throughput_rps: float = Field(ge=0, le=1_000_000)
    max_error_rate: float = Field(ge=0, lt=1)


class CostConfig(_Section):
    gpu_hour_usd: float = Field(gt=0, le=10_000)


class FeaturesConfig(_Section):
    llmd_router: bool = True
    prefill_decode_split: bool = False
    keda: bool = True
    milvus: MilvusMode = "standalone"
    milvus_uri: str | None = None
    llama_stack: bool = True


class RagConfig(_Section):
    """The RAG app: where documents come from, how they are chunked, embedded and indexed."""

    # pvc://<claim>/<path> (default: a volume the stack creates) or s3://<bucket>/<prefix>.
    documents_uri: str = "pvc://leanrag-documents/"
    documents_volume_gib: int = Field(default=20, ge=1, le=100_000)
    # Docling's layout models for PDFs, pre-downloaded (`docling-tools models download`) into
    # a folder of the documents volume; without it PDFs are refused with the fix.
    docling_artifacts_path: str | None = None
    collection: str = Field(default="leanrag_docs", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
    chunk_tokens: int = Field(default=256, ge=16, le=8192)
    chunk_overlap_tokens: int = Field(default=32, ge=0, le=8192)
    index_type: Literal["AUTOINDEX", "FLAT", "IVF_FLAT", "HNSW"] = "HNSW"
    metric: Literal["COSINE", "IP", "L2"] = "COSINE"
    # A sentence-transformers model: the ingestion image carries it; Llama Stack embeds
    # questions with the same one.
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    embedding_dimension: int = Field(default=384, ge=8, le=65536)
    # Where Llama Stack sends chat requests (default: the inference gateway of the stack).
    inference_url: str | None = None

    @field_validator("documents_uri")
    @classmethod
    def _documents(cls, value: str) -> str:
        if not value.startswith(("pvc://", "s3://")):
            raise ValueError("use pvc://<claim>/<path> or s3://<bucket>/<prefix>")
        return value

    @model_validator(mode="after")
    def _overlap(self) -> RagConfig:
        if self.chunk_overlap_tokens * 2 >= self.chunk_tokens:
            raise ValueError(
                "chunkOverlapTokens must be under half of chunkTokens; lower the overlap"
            )
        return self


class NamespacesConfig(_Section):
    serving: str = "leanrag-serving"
    rag: str = "leanrag-rag"
    milvus: str = "leanrag-milvus"
    monitoring: str = "leanrag-monitoring"

    @field_validator("serving", "rag", "milvus", "monitoring")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError("use a DNS-1123 label: lower-case letters, digits and '-', ≤ 63")
        return value


class ImagesConfig(_Section):
    """Container images, each pinned by tag (never `latest`) or by digest."""

    vllm: str
    quantize: str
    ingest: str
    benchmark: str
    llama_stack: str
    # Fetches models and calibration data (hf://, s3://, oci://) exactly as KServe does.
    storage_initializer: str = "docker.io/kserve/storage-initializer:v0.20.0"
    # Uploads a compressed checkpoint to S3 when serving.checkpointUri is s3://.
    s3_sync: str = "docker.io/amazon/aws-cli:2.27.0"

    @field_validator(
        "vllm", "quantize", "ingest", "benchmark", "llama_stack", "storage_initializer", "s3_sync"
    )
    @classmethod
    def _pinned(cls, value: str) -> str:
        match = _IMAGE.match(value)
        if not match:
            raise ValueError("use an image reference like registry.example.com/team/image:1.2.3")
        if not match["tag"] and not match["digest"]:
            raise ValueError("pin the image: add a version tag (:1.2.3) or a digest (@sha256:…)")
        if match["tag"] == "latest" and not match["digest"]:
            raise ValueError("replace `latest` with a version tag or a digest (@sha256:…)")
        return value


class SecretRef(_Section):
    """A value stored encrypted by Pulumi; the plan only knows that it exists."""

    secure: Literal[True]


class StackConfig(_Section):
    """Everything one stack wants, validated. Built only by `validate_stack`."""

    platform: Platform
    kubernetes_version: str | None = Field(default=None, pattern=r"^1\.[0-9]{2}$")
    gpu_pool: GpuPoolConfig
    model: ModelConfig
    serving: ServingConfig
    workload: WorkloadConfig
    slo: SloConfig
    cost: CostConfig
    features: FeaturesConfig = FeaturesConfig()
    namespaces: NamespacesConfig = NamespacesConfig()
    rag: RagConfig = RagConfig()
    images: ImagesConfig | None = None
    model_hub_token: SecretRef | None = None
    s3_access_key_id: SecretRef | None = None
    s3_secret_access_key: SecretRef | None = None

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        frozen=True,
        ignored_types=(cached_property,),
    )

    @cached_property
    def resolved_model(self) -> ModelPreset:
        return resolve_model(self.model)

    def configured_secrets(self) -> tuple[str, ...]:
        """Names of the secret keys this stack sets (their values stay with Pulumi)."""
        return tuple(
            field.alias
            for name, field in type(self).model_fields.items()
            if field.alias in SECRET_KEYS and getattr(self, name) is not None
        )


def resolve_model(model: ModelConfig) -> ModelPreset:
    """The preset (if any) with the stack's overrides applied."""
    overrides = model.architecture.model_dump(exclude_none=True) if model.architecture else {}
    if model.preset:
        preset = MODEL_PRESETS[model.preset]
        base = preset.architecture.__dict__ | overrides
        return ModelPreset(
            name=model.served_name or preset.name,
            uri=model.uri or preset.uri,
            architecture=ModelArchitecture(**base),
            random_weights=preset.random_weights,
            trained_locally=preset.trained_locally,
        )
    return ModelPreset(
        name=model.served_name or (model.uri or "model").rstrip("/").rsplit("/", 1)[-1].lower(),
        uri=model.uri or "",
        architecture=ModelArchitecture(**{"tie_word_embeddings": False} | overrides),
    )


def validate_stack(raw: dict[str, Any], source: str) -> StackConfig:
    """Validate one stack's `leanrag:` keys (prefix stripped) into a `StackConfig`."""
    try:
        config = StackConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, [_problem_from(item, raw) for item in error.errors()]) from None
    problems = _missing_model_facts(config)
    if not problems:
        problems = check_combinations(config)
    if problems:
        raise ConfigError(source, problems)
    return config


def key_path(*parts: str | int) -> str:
    """`leanrag:serving.quantization` style path for messages."""
    head, *rest = (str(part) for part in parts)
    return f"{NAMESPACE}:{head}" + "".join(f".{part}" for part in rest)


def _missing_model_facts(config: StackConfig) -> list[ConfigProblem]:
    model = config.model
    problems: list[ConfigProblem] = []
    if model.preset is None:
        if model.uri is None:
            problems.append(
                ConfigProblem(
                    key_path("model", "uri"),
                    MISSING,
                    f"give `uri` (or a `preset`: {', '.join(MODEL_PRESETS)})",
                )
            )
        given = model.architecture.model_dump(exclude_none=True) if model.architecture else {}
        for name, field in ArchitectureConfig.model_fields.items():
            if name != "tie_word_embeddings" and name not in given:
                problems.append(
                    ConfigProblem(
                        key_path("model", "architecture", field.alias or name),
                        MISSING,
                        "without a preset every architecture fact is required — copy it "
                        "from the model's config.json",
                    )
                )
    return problems


def check_combinations(config: StackConfig) -> list[ConfigProblem]:
    """Rules that span keys: each returns the key to change and how."""
    problems: list[ConfigProblem] = []
    add = problems.append
    pool, serving, workload = config.gpu_pool, config.serving, config.workload
    accelerator = ACCELERATORS[pool.gpu]
    architecture = config.resolved_model.architecture
    cluster = config.platform != "local"

    if cluster and config.kubernetes_version is None:
        add(
            ConfigProblem(
                key_path("kubernetesVersion"),
                MISSING,
                'set the cluster\'s Kubernetes minor version, e.g. "1.31" (OpenShift 4.18)',
            )
        )
    if cluster and config.images is None:
        add(
            ConfigProblem(
                key_path("images"),
                MISSING,
                "cluster stacks need pinned images for vllm, quantize, ingest, "
                "benchmark and llamaStack",
            )
        )
    if cluster and not accelerator.is_gpu:
        add(
            ConfigProblem(
                key_path("gpuPool", "gpu"),
                pool.gpu,
                "the CPU build is for the local stack only; choose a GPU model",
            )
        )
    if config.platform == "openshift" and pool.aws is None:
        add(
            ConfigProblem(
                key_path("gpuPool", "aws"),
                MISSING,
                "OpenShift MachineSets need infrastructureId (oc get infrastructure cluster "
                "-o jsonpath='{.status.infrastructureName}'), region, availabilityZone and amiId "
                "(copy them from a worker MachineSet)",
            )
        )
    if config.platform != "openshift" and (pool.aws is not None or pool.cluster_autoscaler):
        add(
            ConfigProblem(
                key_path("gpuPool", "aws" if pool.aws is not None else "clusterAutoscaler"),
                "set",
                "MachineSets and the ClusterAutoscaler are OpenShift's; on plain Kubernetes "
                "create the GPU node group with your cloud tooling (see README) and remove this",
            )
        )
    if config.platform == "openshift" and pool.instance_type is None:
        add(
            ConfigProblem(
                key_path("gpuPool", "instanceType"),
                MISSING,
                "OpenShift MachineSets need the cloud instance type, e.g. g5.2xlarge",
            )
        )
    if pool.min_nodes > pool.max_nodes:
        add(
            ConfigProblem(
                key_path("gpuPool", "minNodes"),
                pool.min_nodes,
                f"must be ≤ maxNodes ({pool.max_nodes})",
            )
        )

    if serving.quantization not in accelerator.quantizations:
        supported = ", ".join(sorted(accelerator.quantizations))
        add(
            ConfigProblem(
                key_path("serving", "quantization"),
                serving.quantization,
                f"{pool.gpu} cannot run {serving.quantization} weights; choose one of {supported}",
            )
        )
    if serving.kv_cache_dtype == "fp8" and not accelerator.fp8_kv_cache:
        add(
            ConfigProblem(
                key_path("serving", "kvCacheDtype"),
                serving.kv_cache_dtype,
                f"{pool.gpu} has no native FP8; use auto (16-bit KV cache) or an "
                "FP8-capable GPU (L4, L40S, H100, H200)",
            )
        )

    tp = serving.tensor_parallel_size
    if tp is not None:
        if tp > pool.gpus_per_node:
            add(
                ConfigProblem(
                    key_path("serving", "tensorParallelSize"),
                    tp,
                    f"must be ≤ gpuPool.gpusPerNode ({pool.gpus_per_node}); "
                    "tensor parallelism does not span nodes",
                )
            )
        elif architecture.num_attention_heads % tp:
            add(
                ConfigProblem(
                    key_path("serving", "tensorParallelSize"),
                    tp,
                    f"must divide the model's {architecture.num_attention_heads} attention heads",
                )
            )

    max_context = architecture.max_context_tokens
    if serving.max_model_len is not None and serving.max_model_len > max_context:
        add(
            ConfigProblem(
                key_path("serving", "maxModelLen"),
                serving.max_model_len,
                f"the model supports at most {architecture.max_context_tokens} tokens; lower it",
            )
        )
    sequence_tokens = workload.sequence_tokens
    context_limit = serving.max_model_len or architecture.max_context_tokens
    if sequence_tokens > context_limit:
        add(
            ConfigProblem(
                key_path("workload", "contextTokens"),
                workload.context_tokens,
                f"question + context + output = {sequence_tokens} tokens exceeds the "
                f"{context_limit}-token context; retrieve fewer or shorter chunks",
            )
        )
    if (
        cluster
        and serving.quantization == "fp8"
        and serving.quality_budget.enabled
        and serving.calibration_uri is None
    ):
        add(
            ConfigProblem(
                key_path("serving", "calibrationUri"),
                MISSING,
                "the quality check reads held-out passages of your corpus before the fp8 "
                "checkpoint is published: set pvc://<claim>/<folder> or s3://<bucket>/<folder> "
                "holding documents like the ones you ingest (or set "
                "leanrag:serving.qualityBudget.enabled: false to publish unmeasured)",
            )
        )
    if (
        cluster
        and serving.quantization in ("int8-w8a8", "w4a16")
        and serving.calibration_uri is None
    ):
        add(
            ConfigProblem(
                key_path("serving", "calibrationUri"),
                MISSING,
                f"{serving.quantization} is fitted by GPTQ on real text: set "
                "pvc://<claim>/<folder> or s3://<bucket>/<folder> holding documents like the "
                "ones you ingest (or choose fp8, which needs none)",
            )
        )
    if config.model.uri is not None and config.model.uri.startswith("local://") and cluster:
        add(
            ConfigProblem(
                key_path("model", "uri"),
                config.model.uri,
                "local:// models exist only on one host; use hf://, s3://, pvc:// or oci://",
            )
        )
    if (
        serving.max_num_batched_tokens is not None
        and serving.max_num_seqs is not None
        and serving.max_num_batched_tokens < serving.max_num_seqs
    ):
        add(
            ConfigProblem(
                key_path("serving", "maxNumBatchedTokens"),
                serving.max_num_batched_tokens,
                f"vLLM needs it ≥ maxNumSeqs ({serving.max_num_seqs})",
            )
        )

    if serving.max_replicas is not None and serving.min_replicas > serving.max_replicas:
        add(
            ConfigProblem(
                key_path("serving", "minReplicas"),
                serving.min_replicas,
                f"must be ≤ maxReplicas ({serving.max_replicas})",
            )
        )
    if serving.min_replicas == 0 and not serving.scale_to_zero:
        add(
            ConfigProblem(
                key_path("serving", "minReplicas"),
                0,
                "0 replicas means scale to zero: set serving.scaleToZero: true, or use ≥ 1",
            )
        )
    if serving.scale_to_zero and not config.features.keda:
        add(
            ConfigProblem(
                key_path("serving", "scaleToZero"),
                True,
                "scale to zero needs KEDA: set features.keda: true",
            )
        )

    features = config.features
    if features.prefill_decode_split and not features.llmd_router:
        add(
            ConfigProblem(
                key_path("features", "prefillDecodeSplit"),
                True,
                "prefill/decode disaggregation runs through llm-d: set features.llmdRouter: true",
            )
        )
    if features.prefill_decode_split and pool.gpus_per_node * pool.max_nodes < 2:
        add(
            ConfigProblem(
                key_path("features", "prefillDecodeSplit"),
                True,
                "needs at least 2 GPUs (one prefill, one decode); raise gpuPool.maxNodes",
            )
        )
    if features.milvus == "external" and not features.milvus_uri:
        add(
            ConfigProblem(
                key_path("features", "milvusUri"),
                MISSING,
                "set the external Milvus URI, e.g. http://milvus.example.com:19530",
            )
        )
    if features.milvus == "lite" and cluster:
        add(
            ConfigProblem(
                key_path("features", "milvus"),
                "lite",
                "Milvus Lite is a local file; in a cluster use standalone, cluster or external",
            )
        )
    if not cluster:
        if features.milvus in ("standalone", "cluster"):
            add(
                ConfigProblem(
                    key_path("features", "milvus"),
                    features.milvus,
                    "the local stack has no cluster: use lite or external",
                )
            )
        if features.keda or features.llmd_router or features.prefill_decode_split:
            add(
                ConfigProblem(
                    key_path("features"),
                    "keda/llmdRouter/prefillDecodeSplit",
                    "the local stack runs one vLLM process: set keda, llmdRouter and "
                    "prefillDecodeSplit to false",
                )
            )

    derived = derived_parameter_count(architecture)
    if abs(derived - architecture.parameter_count) > 0.05 * architecture.parameter_count:
        add(
            ConfigProblem(
                key_path("model", "architecture", "parameterCount"),
                architecture.parameter_count,
                f"the architecture implies ~{derived:,} parameters; check the facts "
                "against the model's config.json",
            )
        )
    if architecture.num_attention_heads % architecture.num_kv_heads:
        add(
            ConfigProblem(
                key_path("model", "architecture", "numKvHeads"),
                architecture.num_kv_heads,
                f"must divide numAttentionHeads ({architecture.num_attention_heads})",
            )
        )
    return problems


# --- pydantic errors → ConfigProblem ---------------------------------------------------------

_PATTERN_FIXES = {
    "kubernetesVersion": 'use the minor version as a quoted string, e.g. "1.31"',
    "amiId": "use an AMI id such as ami-0123456789abcdef0 (from a worker MachineSet)",
}

_TYPE_FIXES = {
    "int_type": "use a whole number",
    "int_parsing": "use a whole number",
    "int_from_float": "use a whole number",
    "float_type": "use a number",
    "float_parsing": "use a number",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "string_type": "use a text value",
    "model_type": "use a mapping of keys (YAML object)",
    "model_attributes_type": "use a mapping of keys (YAML object)",
    "dict_type": "use a mapping of keys (YAML object)",
}


def _problem_from(error: Any, raw: dict[str, Any]) -> ConfigProblem:
    loc = tuple(error["loc"])
    key = key_path(*loc) if loc else f"{NAMESPACE}:"
    value = MISSING if error["type"] == "missing" else error.get("input")
    if loc and loc[0] in SECRET_KEYS and isinstance(value, str):
        value = "(plain text, not shown)"  # never echo a secret into logs
    return ConfigProblem(key, value, _fix_for(error, loc))


def _fix_for(error: Any, loc: tuple[Any, ...]) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if loc and loc[0] in SECRET_KEYS:
        return (
            f"store it encrypted: pulumi config set --secret {NAMESPACE}:{loc[0]} <value> "
            "(plain-text secrets are refused)"
        )
    if kind == "missing":
        return "add this key"
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        return f"unknown key; remove it (known keys here: {', '.join(known)})"
    if kind == "literal_error":
        choices = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"choose one of {choices}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "string_pattern_mismatch":
        return _PATTERN_FIXES.get(str(loc[-1]), f"must match the pattern {ctx.get('pattern')}")
    bounds = {
        "greater_than": "> {gt}",
        "greater_than_equal": "≥ {ge}",
        "less_than": "< {lt}",
        "less_than_equal": "≤ {le}",
    }
    if kind in bounds:
        return "use a value " + bounds[kind].format(**ctx)
    return _TYPE_FIXES.get(kind, error["msg"])


def _known_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = StackConfig
    for part in loc:
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        annotation = getattr(field, "annotation", None)
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if nested is None:
            return []
        model = nested
    return sorted(field.alias or name for name, field in model.model_fields.items())
