"""Serving manifests: the plan's vLLM arguments, GPU placement, probes, scaling, quantize Job."""

from __future__ import annotations

import math
from typing import Any

import pytest

from infra.builders.serving import (
    BASELINE,
    QUANTIZE_JOB,
    SERVICE,
    VLLM_PLUGINS,
    VLLM_PLUGINS_DIR,
    build,
)
from infra.catalog import MODEL_PRESETS
from infra.config import validate_stack
from infra.plan import DeploymentPlan, build_plan
from infra.stack_source import load_stack
from tests.conftest import edited, stack_raw
from workloads.vllm_plugin import plugin_files
from workloads.vllm_plugin.leanrag_vllm_plugin import ENV_PRIME_TOKENS


def plan_of(raw: dict[str, Any]) -> DeploymentPlan:
    return build_plan(validate_stack(raw, "test"), "test")


def objects(plan: DeploymentPlan) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in build(plan).objects}


@pytest.fixture(scope="module")
def prod() -> DeploymentPlan:
    return build_plan(load_stack("prod"), "prod")


def main_container(service: dict[str, Any]) -> dict[str, Any]:
    return service["spec"]["template"]["containers"][0]


@pytest.mark.parametrize("preset", sorted(p for p in MODEL_PRESETS if "tiny" not in p))
def test_vllm_arguments_come_from_the_plan_for_every_preset(preset: str) -> None:
    plan = plan_of(edited(stack_raw("prod"), "model.preset", preset))
    service = objects(plan)[("LLMInferenceService", SERVICE)]
    container = main_container(service)
    assert container["args"] == plan.vllm.server_args()
    tp = plan.vllm.tensor_parallel_size
    assert container["resources"]["limits"]["nvidia.com/gpu"] == tp
    assert service["spec"].get("parallelism", {"tensor": 1})["tensor"] == tp
    assert service["spec"]["model"]["name"] == preset


def test_tuned_flags_are_all_there(prod: DeploymentPlan) -> None:
    args = main_container(objects(prod)[("LLMInferenceService", SERVICE)])["args"]
    flags = dict(zip(args[::1], [*args[1:], None], strict=False))
    assert flags["--kv-cache-dtype"] == "fp8"
    assert flags["--gpu-memory-utilization"] == "0.92"
    assert flags["--max-num-seqs"] == str(prod.vllm.max_num_seqs)
    assert flags["--max-num-batched-tokens"] == str(prod.vllm.max_num_batched_tokens)
    assert flags["--max-model-len"] == str(prod.vllm.max_model_len)
    assert "--enable-prefix-caching" in args and "--enable-chunked-prefill" in args


def test_gpu_placement_and_probes_sized_for_model_load(prod: DeploymentPlan) -> None:
    service = objects(prod)[("LLMInferenceService", SERVICE)]
    template = service["spec"]["template"]
    assert template["nodeSelector"] == prod.pool.node_selector
    assert template["tolerations"] == prod.pool.tolerations
    startup = main_container(service)["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2 * prod.model.load_seconds
    assert startup["httpGet"]["path"] == "/health"


def test_keda_scales_on_vllm_signals_within_plan_bounds(prod: DeploymentPlan) -> None:
    scaling = objects(prod)[("LLMInferenceService", SERVICE)]["spec"]["scaling"]
    assert (scaling["minReplicas"], scaling["maxReplicas"]) == (
        prod.autoscaling.min_replicas,
        prod.autoscaling.max_replicas,
    )
    keda = scaling["keda"]
    assert keda["cooldownPeriod"] > prod.model.load_seconds
    queries = {t["name"]: t["metadata"]["query"] for t in keda["triggers"]}
    assert "vllm:num_requests_waiting" in queries["waiting-requests"]
    assert "vllm:kv_cache_usage_perc" in queries["kv-cache-usage"]
    assert all("cpu" not in q for q in queries.values())
    assert "idleReplicaCount" not in keda  # prod never scales to zero


def test_scale_to_zero_only_where_the_stack_allows_it() -> None:
    raw = edited(edited(stack_raw("dev"), "serving.minReplicas", 0), "serving.scaleToZero", True)
    keda = objects(plan_of(raw))[("LLMInferenceService", SERVICE)]["spec"]["scaling"]
    assert keda["minReplicas"] == 0
    assert keda["keda"]["idleReplicaCount"] == 0


def test_keda_off_means_fixed_replicas(prod: DeploymentPlan) -> None:
    plan = plan_of(edited(stack_raw("prod"), "features.keda", False))
    service = objects(plan)[("LLMInferenceService", SERVICE)]
    assert "scaling" not in service["spec"]
    assert service["spec"]["replicas"] == plan.sizing.replicas


def test_disruption_budget_selects_the_optimized_pods(prod: DeploymentPlan) -> None:
    found = objects(prod)
    pdb = found[("PodDisruptionBudget", SERVICE)]
    labels = found[("LLMInferenceService", SERVICE)]["spec"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"] == labels
    assert pdb["spec"]["maxUnavailable"] == 1


def test_quantize_job_compresses_onto_the_model_volume(prod: DeploymentPlan) -> None:
    found = objects(prod)
    job = found[("Job", QUANTIZE_JOB)]
    pod = job["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--scheme") + 1] == "fp8"
    assert args[args.index("--output") + 1] == "/mnt/models/llama-3.1-8b-instruct-fp8"
    # FP8 needs no calibration; the quality check reads held-out passages of the corpus.
    assert args[args.index("--calibration") + 1] == "/mnt/calibration/documents"
    budget = prod.model.quality_budget
    assert budget is not None
    assert float(args[args.index("--max-kl") + 1]) == budget.max_kl_nats
    assert float(args[args.index("--min-agreement") + 1]) == budget.min_top1_agreement
    assert float(args[args.index("--max-ppl-increase") + 1]) == budget.max_perplexity_increase
    assert args[args.index("--kv-cache-dtype") + 1] == "fp8"
    assert pod["nodeSelector"] == prod.pool.node_selector
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    fetch = pod["initContainers"][0]
    assert fetch["args"] == ["hf://meta-llama/Llama-3.1-8B-Instruct", "/mnt/source"]
    assert (
        found[("PersistentVolumeClaim", "leanrag-models")]["spec"]["resources"]["requests"][
            "storage"
        ]
        == f"{prod.model.model_volume_gib}Gi"
    )
    assert found[("LLMInferenceService", SERVICE)]["spec"]["model"]["uri"] == (
        "pvc://leanrag-models/llama-3.1-8b-instruct-fp8"
    )


def test_gptq_job_mounts_the_calibration_corpus() -> None:
    dev = build_plan(load_stack("dev"), "dev")
    pod = objects(dev)[("Job", QUANTIZE_JOB)]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--scheme") + 1] == "w4a16"
    assert args[args.index("--calibration") + 1] == "/mnt/calibration/documents"
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"leanrag-models", "leanrag-corpus"}


def test_air_gapped_source_on_a_pvc_needs_no_download() -> None:
    raw = edited(stack_raw("prod"), "model.uri", "pvc://model-store/llama-3.1-8b")
    pod = objects(plan_of(raw))[("Job", QUANTIZE_JOB)]["spec"]["template"]["spec"]
    assert pod["initContainers"] == []
    args = pod["containers"][0]["args"]
    assert args[args.index("--model") + 1] == "/mnt/source/llama-3.1-8b"


def test_uncompressed_model_is_served_from_its_source() -> None:
    raw = edited(
        stack_raw("prod"),
        "serving",
        {"quantization": "none", "kvCacheDtype": "fp8", "minReplicas": 2},
    )
    found = objects(plan_of(raw))
    assert ("Job", QUANTIZE_JOB) not in found
    assert found[("LLMInferenceService", SERVICE)]["spec"]["model"]["uri"].startswith("hf://")


def test_baseline_renders_beside_the_optimized_service() -> None:
    staging = build_plan(load_stack("staging"), "staging")
    found = objects(staging)
    baseline = found[("LLMInferenceService", BASELINE)]
    assert baseline["spec"]["model"]["uri"] == staging.model.source_uri  # bf16 weights
    assert main_container(baseline)["args"] == staging.baseline_vllm.server_args()
    assert "scaling" not in baseline["spec"] and "baseRefs" not in baseline["spec"]
    assert baseline["spec"]["labels"]["leanrag.io/profile"] == "baseline"
    assert ("LLMInferenceService", BASELINE) not in objects(build_plan(load_stack("dev"), "dev"))


def test_classic_inferenceservice_path_with_a_scaled_object() -> None:
    plan = plan_of(edited(stack_raw("prod"), "serving.api", "inferenceservice"))
    found = objects(plan)
    runtime = found[("ServingRuntime", "leanrag-vllm-optimized")]
    assert runtime["spec"]["containers"][0]["args"][3:] == plan.vllm.server_args()
    isvc = found[("InferenceService", SERVICE)]
    assert isvc["spec"]["predictor"]["model"]["runtime"] == "leanrag-vllm-optimized"
    scaled = found[("ScaledObject", SERVICE)]
    assert scaled["spec"]["scaleTargetRef"]["name"] == f"{SERVICE}-predictor"
    assert scaled["spec"]["maxReplicaCount"] == plan.autoscaling.max_replicas
    assert math.isclose(float(scaled["spec"]["triggers"][1]["metadata"]["threshold"]), 0.9)


def test_checkpoint_to_s3_is_uploaded_after_compression() -> None:
    raw = edited(stack_raw("prod"), "serving.checkpointUri", "s3://models/llama-8b-fp8")
    plan = plan_of(raw)
    found = objects(plan)
    assert ("PersistentVolumeClaim", "leanrag-models") not in found
    pod = found[("Job", QUANTIZE_JOB)]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["fetch-source", "quantize"]
    upload = pod["containers"][0]
    assert upload["args"] == [
        "s3",
        "sync",
        "--only-show-errors",
        "/mnt/output/checkpoint",
        "s3://models/llama-8b-fp8",
    ]
    quantize_args = pod["initContainers"][1]["args"]
    assert quantize_args[quantize_args.index("--output") + 1] == "/mnt/output/checkpoint"
    assert found[("LLMInferenceService", SERVICE)]["spec"]["model"]["uri"] == (
        "s3://models/llama-8b-fp8"
    )


def test_existing_claim_for_the_checkpoint_is_used_not_created() -> None:
    raw = edited(stack_raw("prod"), "serving.checkpointUri", "pvc://team-models/llama-fp8")
    found = objects(plan_of(raw))
    assert ("PersistentVolumeClaim", "leanrag-models") not in found
    pod = found[("Job", QUANTIZE_JOB)]["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--output") + 1] == "/mnt/models/llama-fp8"
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "team-models"}} in pod[
        "volumes"
    ]


def _plugin_folder(pod: dict[str, Any], container: dict[str, Any], found: dict) -> dict[str, str]:
    """The folder the vLLM container sees at the plugin mount: relative path → text."""
    mount = next(m for m in container["volumeMounts"] if m["name"] == VLLM_PLUGINS)
    assert mount["mountPath"] == VLLM_PLUGINS_DIR and mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    data = found[("ConfigMap", volume["configMap"]["name"])]["data"]
    return {item["path"]: data[item["key"]] for item in volume["configMap"]["items"]}


def test_optimized_vllm_loads_the_stacks_plugin_from_a_configmap(prod: DeploymentPlan) -> None:
    """The folder mounted on PYTHONPATH is exactly the plugin and the metadata that declares its
    vLLM entry point (tests/workloads/test_vllm_plugin.py loads that folder in real vLLM)."""
    found = objects(prod)
    service = found[("LLMInferenceService", SERVICE)]
    container = main_container(service)
    assert _plugin_folder(service["spec"]["template"], container, found) == plugin_files()
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PYTHONPATH"] == VLLM_PLUGINS_DIR
    assert env[ENV_PRIME_TOKENS] == str(load_stack("prod").serving.detokenizer_prime_tokens)
    assert prod.vllm.detokenizer_prime_tokens == 32


def test_plugin_on_the_classic_path_and_never_on_stock_vllm() -> None:
    raw = edited(stack_raw("staging"), "serving.api", "inferenceservice")
    found = objects(plan_of(raw))
    runtime = found[("ServingRuntime", "leanrag-vllm-optimized")]
    container = runtime["spec"]["containers"][0]
    assert _plugin_folder(runtime["spec"], container, found) == plugin_files()
    stock = found[("ServingRuntime", "leanrag-vllm-baseline")]
    assert "volumes" not in stock["spec"]
    assert "PYTHONPATH" not in {e["name"] for e in stock["spec"]["containers"][0]["env"]}


def test_plugin_off_leaves_vllm_as_shipped() -> None:
    plan = plan_of(edited(stack_raw("prod"), "serving.detokenizerPrimeTokens", 0))
    found = objects(plan)
    assert not [key for key in found if key[0] == "ConfigMap"]
    container = main_container(found[("LLMInferenceService", SERVICE)])
    assert "volumeMounts" not in container
    assert not {"PYTHONPATH", ENV_PRIME_TOKENS} & {e["name"] for e in container["env"]}
    assert plan.vllm.environment() == {}
