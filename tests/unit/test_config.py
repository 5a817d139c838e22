"""Stack configuration: valid stacks load; every malformed one stops with key, value and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.config import validate_stack
from infra.errors import ConfigError
from infra.stack_source import load_stack, load_stack_file
from tests.conftest import ALL_STACKS, DELETE, edited, stack_raw, write_stack


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_every_committed_stack_is_valid(stack: str) -> None:
    config = load_stack(stack)
    assert config.platform == ("local" if stack == "local" else "openshift")
    assert config.resolved_model.architecture.num_layers > 0


# (case id, base stack, dotted path, new value, key named in the message, fragment of the fix)
# fmt: off
MALFORMED: list[tuple[str, str, str, Any, str, str]] = [
    # missing keys
    ("missing-platform", "prod", "platform", DELETE, "leanrag:platform", "add this key"),
    ("missing-gpu-pool", "prod", "gpuPool", DELETE, "leanrag:gpuPool", "add this key"),
    ("missing-gpu-model", "prod", "gpuPool.gpu", DELETE, "leanrag:gpuPool.gpu", "add this key"),
    ("missing-quantization", "prod", "serving.quantization", DELETE,
     "leanrag:serving.quantization", "add this key"),
    ("missing-slo-itl", "prod", "slo.itlP95Ms", DELETE, "leanrag:slo.itlP95Ms", "add this key"),
    ("missing-cost", "prod", "cost", DELETE, "leanrag:cost", "add this key"),
    ("missing-images-on-cluster", "prod", "images", DELETE, "leanrag:images",
     "cluster stacks need pinned images"),
    ("missing-k8s-version", "prod", "kubernetesVersion", DELETE, "leanrag:kubernetesVersion",
     "minor version"),
    ("missing-aws-openshift", "prod", "gpuPool.aws", DELETE, "leanrag:gpuPool.aws",
     "infrastructureId"),
    ("bad-ami", "prod", "gpuPool.aws.amiId", "my-image", "leanrag:gpuPool.aws.amiId",
     "ami-0123456789abcdef0"),
    ("aws-on-kubernetes", "prod", "platform", "kubernetes", "leanrag:gpuPool.aws",
     "OpenShift's"),
    ("missing-instance-type-openshift", "prod", "gpuPool.instanceType", DELETE,
     "leanrag:gpuPool.instanceType", "instance type"),
    ("missing-uri-without-preset", "prod", "model", {"architecture": {"numLayers": 4}},
     "leanrag:model.uri", "give `uri`"),
    ("missing-architecture-without-preset", "prod", "model",
     {"uri": "hf://org/custom-model"}, "leanrag:model.architecture.numLayers",
     "every architecture fact is required"),
    # wrong types
    ("users-not-int", "prod", "workload.concurrentUsers", "many",
     "leanrag:workload.concurrentUsers", "whole number"),
    ("users-float", "prod", "workload.concurrentUsers", 12.5,
     "leanrag:workload.concurrentUsers", "whole number"),
    ("switch-not-bool", "prod", "features.keda", "sometimes", "leanrag:features.keda",
     "true or false"),
    ("pool-not-mapping", "prod", "gpuPool", "H100", "leanrag:gpuPool", "mapping"),
    ("cost-not-number", "prod", "cost.gpuHourUsd", "cheap", "leanrag:cost.gpuHourUsd",
     "use a number"),
    ("k8s-version-shape", "prod", "kubernetesVersion", "v1.31.2", "leanrag:kubernetesVersion",
     '"1.31"'),
    # bad values
    ("unknown-platform", "prod", "platform", "nomad", "leanrag:platform",
     "choose one of openshift, kubernetes, local"),
    ("unknown-quantization", "prod", "serving.quantization", "int3",
     "leanrag:serving.quantization", "choose one of none, fp8, int8-w8a8, w4a16"),
    ("unknown-kv-dtype", "prod", "serving.kvCacheDtype", "int4", "leanrag:serving.kvCacheDtype",
     "choose one of auto, fp8"),
    ("unknown-gpu", "prod", "gpuPool.gpu", "RTX-4090", "leanrag:gpuPool.gpu",
     "choose one of: H100-80GB"),
    ("unknown-preset", "prod", "model.preset", "gpt-5", "leanrag:model.preset",
     "llama-3.1-8b-instruct"),
    ("bad-uri-scheme", "prod", "model.uri", "ftp://models/llama", "leanrag:model.uri",
     "hf://"),
    ("utilization-too-high", "prod", "serving.gpuMemoryUtilization", 0.99,
     "leanrag:serving.gpuMemoryUtilization", "≤ 0.98"),
    ("negative-users", "prod", "workload.concurrentUsers", 0, "leanrag:workload.concurrentUsers",
     "≥ 1"),
    ("share-above-one", "prod", "workload.sharedPrefixShare", 1.5,
     "leanrag:workload.sharedPrefixShare", "≤ 1"),
    ("error-rate-one", "prod", "slo.maxErrorRate", 1.0, "leanrag:slo.maxErrorRate", "< 1"),
    ("image-latest", "prod", "images.vllm", "docker.io/vllm/vllm-openai:latest",
     "leanrag:images.vllm", "replace `latest`"),
    ("image-unpinned", "prod", "images.benchmark", "quay.io/leanrag/benchmark",
     "leanrag:images.benchmark", "pin the image"),
    ("bad-namespace", "prod", "namespaces.serving", "Serving_NS", "leanrag:namespaces.serving",
     "DNS-1123"),
    ("plaintext-secret", "prod", "modelHubToken", "hf_abcdef", "leanrag:modelHubToken",
     "pulumi config set --secret leanrag:modelHubToken"),
    # unknown keys
    ("unknown-top-level-key", "prod", "replicaCount", 3, "leanrag:replicaCount",
     "unknown key"),
    ("unknown-nested-key", "prod", "serving.maxBatchSize", 64, "leanrag:serving.maxBatchSize",
     "known keys here: api, baselineComparison, calibrationUri"),
    ("snake-case-key", "prod", "gpuPool.gpus_per_node", 8, "leanrag:gpuPool.gpus_per_node",
     "gpusPerNode"),
    # impossible combinations
    ("fp8-weights-on-a10g", "dev", "serving.quantization", "fp8",
     "leanrag:serving.quantization", "A10G cannot run fp8 weights"),
    ("fp8-kv-on-a10g", "dev", "serving.kvCacheDtype", "fp8", "leanrag:serving.kvCacheDtype",
     "no native FP8"),
    ("tp-larger-than-node", "dev", "serving.tensorParallelSize", 2,
     "leanrag:serving.tensorParallelSize", "≤ gpuPool.gpusPerNode (1)"),
    ("tp-not-dividing-heads", "prod", "serving.tensorParallelSize", 3,
     "leanrag:serving.tensorParallelSize", "divide the model's 32 attention heads"),
    ("context-beyond-model", "prod", "serving.maxModelLen", 262144,
     "leanrag:serving.maxModelLen", "at most 131072 tokens"),
    ("workload-beyond-context", "prod", "workload.contextTokens", 140000,
     "leanrag:workload.contextTokens", "exceeds the 131072-token context"),
    ("min-nodes-above-max", "prod", "gpuPool.minNodes", 5, "leanrag:gpuPool.minNodes",
     "≤ maxNodes (2)"),
    ("min-replicas-above-max", "prod", "serving.maxReplicas", 1, "leanrag:serving.minReplicas",
     "≤ maxReplicas (1)"),
    ("zero-replicas-without-scale-to-zero", "prod", "serving.minReplicas", 0,
     "leanrag:serving.minReplicas", "scaleToZero"),
    ("pd-split-without-llmd", "prod", "features", {"llmdRouter": False,
                                                   "prefillDecodeSplit": True},
     "leanrag:features.prefillDecodeSplit", "llmdRouter: true"),
    ("external-milvus-without-uri", "prod", "features.milvus", "external",
     "leanrag:features.milvusUri", "external Milvus URI"),
    ("milvus-lite-in-cluster", "prod", "features.milvus", "lite", "leanrag:features.milvus",
     "Milvus Lite is a local file"),
    ("cpu-in-cluster", "prod", "gpuPool", {"gpu": "cpu", "instanceType": "m5.large",
                                           "gpusPerNode": 1, "minNodes": 1, "maxNodes": 1},
     "leanrag:gpuPool.gpu", "local stack only"),
    ("keda-on-local", "local", "features.keda", True, "leanrag:features",
     "runs one vLLM process"),
    ("w4a16-on-cpu", "local", "serving.quantization", "w4a16", "leanrag:serving.quantization",
     "cpu cannot run w4a16"),
    ("parameter-count-inconsistent", "prod", "model.architecture", {"parameterCount": 1000},
     "leanrag:model.architecture.parameterCount", "architecture implies"),
    ("batched-below-seqs", "prod", "serving", {"quantization": "fp8", "maxNumSeqs": 512,
                                               "maxNumBatchedTokens": 256},
     "leanrag:serving.maxNumBatchedTokens", "≥ maxNumSeqs (512)"),
]
# fmt: on


@pytest.mark.parametrize(
    ("base", "path", "value", "key", "fix"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_config_names_file_key_value_and_fix(
    tmp_path: Path, base: str, path: str, value: Any, key: str, fix: str
) -> None:
    stack_file = write_stack(tmp_path, "broken", edited(stack_raw(base), path, value))
    with pytest.raises(ConfigError) as raised:
        load_stack_file(stack_file)
    message = raised.value.message
    assert "Pulumi.broken.yaml" in message
    matching = [p for p in raised.value.problems if p.key == key]
    assert matching, f"no problem names {key}: {message}"
    assert any(fix in p.fix for p in matching), message
    assert key in message


def test_there_are_at_least_thirty_malformed_cases() -> None:
    assert len(MALFORMED) >= 30


def test_message_shows_the_bad_value() -> None:
    raw = edited(stack_raw("prod"), "serving.quantization", "int3")
    with pytest.raises(ConfigError) as raised:
        validate_stack(raw, "stacks/Pulumi.prod.yaml")
    assert raised.value.message.startswith(
        "stacks/Pulumi.prod.yaml: leanrag:serving.quantization = 'int3' — choose one of"
    )


def test_plaintext_secret_value_is_never_echoed() -> None:
    raw = edited(stack_raw("prod"), "modelHubToken", "hf_supersecret")
    with pytest.raises(ConfigError) as raised:
        validate_stack(raw, "stacks/Pulumi.prod.yaml")
    assert "hf_supersecret" not in raised.value.message


def test_encrypted_secret_is_accepted_and_recorded(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.withsecret.yaml"
    stack_file.write_text(
        (Path("stacks/Pulumi.prod.yaml").read_text())
        + "  leanrag:modelHubToken:\n    secure: v1:abc123ciphertext\n"
    )
    config = load_stack_file(stack_file)
    assert config.configured_secrets() == ("modelHubToken",)


def test_several_problems_are_reported_together() -> None:
    raw = edited(edited(stack_raw("prod"), "platform", "nomad"), "slo.itlP95Ms", -1)
    with pytest.raises(ConfigError) as raised:
        validate_stack(raw, "stacks/Pulumi.prod.yaml")
    assert len(raised.value.problems) == 2
    assert "2 problems" in raised.value.message


def test_other_namespaces_are_left_alone(tmp_path: Path) -> None:
    text = Path("stacks/Pulumi.prod.yaml").read_text() + "  kubernetes:context: my-cluster\n"
    stack_file = tmp_path / "Pulumi.other.yaml"
    stack_file.write_text(text)
    assert load_stack_file(stack_file).platform == "openshift"


def test_unparseable_yaml_names_the_line(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.bad.yaml"
    stack_file.write_text("config:\n  leanrag:platform: [openshift\n")
    with pytest.raises(ConfigError) as raised:
        load_stack_file(stack_file)
    assert "fix the YAML syntax at line" in raised.value.message


def test_unknown_stack_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        load_stack("qa")
    assert "known stacks: dev, local, prod, staging" in raised.value.message


def test_custom_model_without_preset_is_accepted() -> None:
    architecture = {
        "numLayers": 32,
        "hiddenSize": 4096,
        "numAttentionHeads": 32,
        "numKvHeads": 8,
        "headDim": 128,
        "intermediateSize": 14336,
        "vocabSize": 128256,
        "maxContextTokens": 131072,
        "parameterCount": 8030261248,
    }
    raw = edited(
        stack_raw("prod"), "model", {"uri": "s3://models/my-finetune", "architecture": architecture}
    )
    config = validate_stack(raw, "stacks/Pulumi.prod.yaml")
    assert config.resolved_model.name == "my-finetune"
    assert config.resolved_model.architecture.num_kv_heads == 8


def test_preset_override_changes_only_that_fact() -> None:
    raw = edited(stack_raw("prod"), "model.architecture", {"maxContextTokens": 65536})
    architecture = validate_stack(raw, "x").resolved_model.architecture
    assert architecture.max_context_tokens == 65536
    assert architecture.num_layers == 32
