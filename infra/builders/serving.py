"""Model serving: compress once (a Job), serve with the plan's vLLM arguments, scale on vLLM.

Primary path: LLMInferenceService (KServe + llm-d, native KEDA scaling). Fallback: a vLLM
ServingRuntime + InferenceService with a KEDA ScaledObject. With `baselineComparison`, stock
vLLM (bf16 source weights, default settings) runs beside it for the gate's before/after.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from infra.builders.bundle import PART_OF, Bundle, render
from infra.builders.llm_d import MODEL_PORT as ISVC_PORT
from infra.builders.llm_d import ROUTER_CONFIG
from infra.plan import MODEL_SERVER_LABELS, MODEL_VOLUME, SERVICE_NAME, DeploymentPlan, VllmArgs
from workloads.vllm_plugin import plugin_files

SERVICE = SERVICE_NAME
BASELINE = "leanrag-llm-baseline"
QUANTIZE_JOB = "leanrag-quantize"
MODEL_HUB_SECRET = "leanrag-model-hub"
S3_SECRET = "leanrag-s3"
RUNTIME = "leanrag-vllm"
VLLM_PLUGINS = "leanrag-vllm-plugins"  # ConfigMap and volume of the stack's vLLM plugin
VLLM_PLUGINS_DIR = "/opt/leanrag/vllm-plugins"
LLMISVC_PORT = 8000  # LLMInferenceService's vLLM listens here, over TLS
PROBE_PERIOD_S = 10
KEDA_POLLING_S = 15


def metrics_endpoint(plan: DeploymentPlan) -> tuple[int, str]:
    """Port and scheme where the serving pods expose vLLM's /metrics."""
    if plan.serving_api == "llminferenceservice":
        return LLMISVC_PORT, "https"
    return ISVC_PORT, "http"


def pod_labels(profile: str) -> dict[str, str]:
    return {**MODEL_SERVER_LABELS, "leanrag.io/profile": profile}


def build(plan: DeploymentPlan) -> Bundle:
    if plan.platform == "local":
        return Bundle(concern="serving")
    objects: list[dict[str, Any]] = []
    if plan.model.needs_compression:
        # The stack creates the model volume only when the checkpoint goes to its default.
        if plan.model.checkpoint_uri.startswith(f"pvc://{MODEL_VOLUME}/"):
            objects += render(
                "serving/model-volume.yaml.j2",
                name=MODEL_VOLUME,
                namespace=plan.namespaces.serving,
                labels=PART_OF,
                size=f"{plan.model.model_volume_gib}Gi",
            )
        objects += _quantize_job(plan)
    if plan.vllm.loads_plugin:
        objects += _plugin_configmap(plan)
    objects += _service(
        plan,
        SERVICE,
        "optimized",
        plan.vllm,
        plan.model.checkpoint_uri,
        autoscaled=plan.autoscaling.enabled,
    )
    objects += render(
        "serving/pdb.yaml.j2",
        name=SERVICE,
        namespace=plan.namespaces.serving,
        labels=PART_OF,
        selector=pod_labels("optimized"),
    )
    if plan.baseline_comparison:
        objects += _service(
            plan, BASELINE, "baseline", plan.baseline_vllm, plan.model.source_uri, autoscaled=False
        )
    return Bundle(concern="serving", objects=tuple(objects))


def _service(
    plan: DeploymentPlan,
    name: str,
    profile: str,
    vllm: VllmArgs,
    model_uri: str,
    autoscaled: bool,
) -> list[dict[str, Any]]:
    namespace = plan.namespaces.serving
    served_name = (
        vllm.served_model_name if profile == "optimized" else f"{vllm.served_model_name}-baseline"
    )
    scaling = _scaling(plan, served_name) if autoscaled else None
    replicas = plan.sizing.replicas if profile == "optimized" else 1
    quantization = plan.model.quantization if profile == "optimized" else "none"
    pod_security: dict[str, Any] = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if plan.platform == "kubernetes":
        # Upstream vLLM images default to root; OpenShift assigns a UID itself (restricted-v2).
        pod_security["runAsUser"] = 1001
    annotations = {
        "leanrag.io/gpu": plan.pool.gpu,
        "leanrag.io/fp8-kv-capable": str(plan.pool.fp8_kv_cache).lower(),
    }
    common = {
        "name": name,
        "namespace": namespace,
        "labels": {
            **PART_OF,
            "leanrag.io/profile": profile,
            "leanrag.io/quantization": quantization,
        },
        "annotations": annotations,
        "pod_security": pod_security,
        "container_security": restricted_container(),
        "pod_labels": pod_labels(profile),
        "image": plan.images.vllm if plan.images else "",
        "node_selector": plan.pool.node_selector,
        "tolerations": plan.pool.tolerations,
        "resources": _resources(plan, vllm.tensor_parallel_size),
        # vLLM keeps caches under $HOME; any UID can write /tmp.
        "env": [
            _secret_env("HF_TOKEN", MODEL_HUB_SECRET, "token"),
            {"name": "HOME", "value": "/tmp"},
            *_plugin_path(vllm),
            *({"name": k, "value": v} for k, v in sorted(vllm.environment().items())),
        ],
        "model_uri": model_uri,
        "replicas": replicas,
        **_plugin_volume(vllm),
    }
    if plan.serving_api == "llminferenceservice":
        router = plan.features.llmd_router and profile == "optimized"
        return render(
            "serving/llminferenceservice.yaml.j2",
            **common,
            served_name=served_name,
            tensor_parallel=vllm.tensor_parallel_size,
            base_refs=[{"name": ROUTER_CONFIG}] if router else [],
            router=router,
            scaling=scaling,
            args=vllm.server_args(),
            probes=_probes(plan.model.load_seconds, LLMISVC_PORT, "HTTPS"),
        )
    args = [
        "--model=/mnt/models",
        f"--served-model-name={served_name}",
        f"--port={ISVC_PORT}",
        *vllm.server_args(),
    ]
    objects = render(
        "serving/inferenceservice.yaml.j2",
        **common,
        runtime=f"{RUNTIME}-{profile}",
        isvc_annotations=annotations
        | {
            "serving.kserve.io/deploymentMode": "RawDeployment",
            "serving.kserve.io/autoscalerClass": "external",
        },
        port=ISVC_PORT,
        args=args,
        probes=_probes(plan.model.load_seconds, ISVC_PORT, "HTTP"),
    )
    if scaling is not None:
        objects += render(
            "serving/scaledobject.yaml.j2",
            name=name,
            namespace=namespace,
            labels=PART_OF,
            target=f"{name}-predictor",
            scaling=scaling,
        )
    return objects


def _plugin_keys() -> dict[str, str]:
    """Plugin file path → ConfigMap key (its file name: a key cannot hold a folder)."""
    keys = {relative: Path(relative).name for relative in plugin_files()}
    assert len(set(keys.values())) == len(keys), f"plugin file names collide: {keys}"
    return keys


def _plugin_configmap(plan: DeploymentPlan) -> list[dict[str, Any]]:
    keys = _plugin_keys()
    return render(
        "serving/vllm-plugins-configmap.yaml.j2",
        name=VLLM_PLUGINS,
        namespace=plan.namespaces.serving,
        labels=PART_OF,
        data={keys[relative]: text for relative, text in plugin_files().items()},
    )


def _plugin_path(vllm: VllmArgs) -> list[dict[str, str]]:
    return [{"name": "PYTHONPATH", "value": VLLM_PLUGINS_DIR}] if vllm.loads_plugin else []


def _plugin_volume(vllm: VllmArgs) -> dict[str, list[dict[str, Any]]]:
    """The ConfigMap as the plugin folder (module + its .dist-info), read-only."""
    if not vllm.loads_plugin:
        return {"volumes": [], "volume_mounts": []}
    items = [{"key": key, "path": relative} for relative, key in _plugin_keys().items()]
    return {
        "volumes": [{"name": VLLM_PLUGINS, "configMap": {"name": VLLM_PLUGINS, "items": items}}],
        "volume_mounts": [{"name": VLLM_PLUGINS, "mountPath": VLLM_PLUGINS_DIR, "readOnly": True}],
    }


def _scaling(plan: DeploymentPlan, served_name: str) -> dict[str, Any]:
    """KEDA on vLLM's queue depth per replica and KV-cache usage, bounded by the plan."""
    autoscaling = plan.autoscaling
    namespace = plan.namespaces.serving
    selector = f'namespace="{namespace}",model_name="{served_name}"'
    base_metadata: dict[str, str] = {"serverAddress": autoscaling.prometheus_url}
    auth: dict[str, Any] = {}
    if autoscaling.trigger_authentication:
        # OpenShift's Thanos querier: bearer token + tenancy by namespace.
        base_metadata |= {"authModes": "bearer", "namespace": namespace}
        auth = {
            "authenticationRef": {
                "name": autoscaling.trigger_authentication,
                "kind": "TriggerAuthentication",
            }
        }
    triggers = [
        {
            "type": "prometheus",
            "name": "waiting-requests",
            "metricType": "AverageValue",
            "metadata": base_metadata
            | {
                "query": f"sum(vllm:num_requests_waiting{{{selector}}})",
                "threshold": str(autoscaling.waiting_requests_per_replica),
            },
            **auth,
        },
        {
            "type": "prometheus",
            "name": "kv-cache-usage",
            "metricType": "Value",
            "metadata": base_metadata
            | {
                "query": f"avg(vllm:kv_cache_usage_perc{{{selector}}})",
                "threshold": f"{autoscaling.kv_cache_usage_threshold:g}",
            },
            **auth,
        },
    ]
    keda: dict[str, Any] = {
        "pollingInterval": KEDA_POLLING_S,
        # Longer than a model load, so a replica is never removed while its peer still starts.
        "cooldownPeriod": autoscaling.cooldown_seconds,
        "initialCooldownPeriod": plan.model.load_seconds,
        "triggers": triggers,
    }
    if autoscaling.min_replicas == 0:
        keda["idleReplicaCount"] = 0
    return {
        "minReplicas": autoscaling.min_replicas,
        "maxReplicas": autoscaling.max_replicas,
        "keda": keda,
    }


def _probes(load_seconds: int, port: int, scheme: str) -> dict[str, dict[str, Any]]:
    health = {"path": "/health", "port": port, "scheme": scheme}
    return {
        # Twice the expected load time before the kubelet gives up on a starting replica.
        "startup": {
            "httpGet": health,
            "periodSeconds": PROBE_PERIOD_S,
            "timeoutSeconds": 5,
            "failureThreshold": math.ceil(2 * load_seconds / PROBE_PERIOD_S),
        },
        "readiness": {
            "httpGet": health,
            "periodSeconds": PROBE_PERIOD_S,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "liveness": {
            "httpGet": health,
            "periodSeconds": 30,
            "timeoutSeconds": 10,
            "failureThreshold": 5,
        },
    }


def _resources(plan: DeploymentPlan, gpus: int) -> dict[str, Any]:
    # Host memory: the weights pass through it while loading, plus vLLM's own process.
    memory_gib = math.ceil(plan.model.source_weights_gib / max(gpus, 1)) + 16
    return {
        "requests": {"cpu": str(4 * gpus), "memory": f"{memory_gib}Gi", "nvidia.com/gpu": gpus},
        "limits": {"cpu": str(8 * gpus), "memory": f"{2 * memory_gib}Gi", "nvidia.com/gpu": gpus},
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {
        "name": name,
        "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}},
    }


def _quantize_job(plan: DeploymentPlan) -> list[dict[str, Any]]:
    """Fetch → compress (init containers, in order) → upload when the checkpoint goes to S3."""
    model = plan.model
    images = plan.images
    assert images is not None  # cluster stacks are validated to have images
    steps: list[dict[str, Any]] = []  # init containers, run one after another
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    model_path = fetch_into_job(
        model.source_uri,
        "source",
        images.storage_initializer,
        steps,
        mounts,
        volumes,
        size_gib=math.ceil(1.2 * model.source_weights_gib) + 1,
    )
    calibration = (
        fetch_into_job(
            model.calibration_uri,
            "calibration",
            images.storage_initializer,
            steps,
            mounts,
            volumes,
            size_gib=5,
        )
        if model.calibration_uri
        else None
    )
    to_s3 = model.checkpoint_uri.startswith("s3://")
    if to_s3:
        volumes.append(
            {
                "name": "output",
                "emptyDir": {"sizeLimit": f"{math.ceil(1.2 * model.weights_gib) + 1}Gi"},
            }
        )
        mounts.append({"name": "output", "mountPath": "/mnt/output"})
        checkpoint_path = "/mnt/output/checkpoint"
    else:
        claim, _, path = model.checkpoint_uri.removeprefix("pvc://").partition("/")
        volumes.append({"name": "models", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": "models", "mountPath": "/mnt/models"})
        checkpoint_path = f"/mnt/models/{path}"
    args = ["--model", model_path, "--output", checkpoint_path, "--scheme", model.quantization]
    if calibration:
        args += ["--calibration", calibration]
    args += quality_args(plan)
    memory_gib = math.ceil(1.5 * model.source_weights_gib) + 16
    quantize_step = {
        "name": "quantize",
        "image": images.quantize,
        "args": args,
        "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}],
        "resources": {
            "requests": {"cpu": "8", "memory": f"{memory_gib}Gi", "nvidia.com/gpu": 1},
            "limits": {"cpu": "16", "memory": f"{memory_gib}Gi", "nvidia.com/gpu": 1},
        },
        "securityContext": restricted_container(),
        "volumeMounts": mounts,
    }
    if to_s3:
        steps.append(quantize_step)
        final = {
            "name": "upload",
            "image": images.s3_sync,
            "args": ["s3", "sync", "--only-show-errors", checkpoint_path, model.checkpoint_uri],
            "env": s3_env(),
            "resources": {
                "requests": {"cpu": "1", "memory": "1Gi"},
                "limits": {"cpu": "2", "memory": "2Gi"},
            },
            "securityContext": restricted_container(),
            "volumeMounts": [{"name": "output", "mountPath": "/mnt/output", "readOnly": True}],
        }
    else:
        final = quantize_step
    return render(
        "serving/quantize-job.yaml.j2",
        name=QUANTIZE_JOB,
        namespace=plan.namespaces.serving,
        labels={**PART_OF, "leanrag.io/role": "quantize"},
        timeout_seconds=3600 if model.quantization == "fp8" else 14400,
        node_selector=plan.pool.node_selector,
        tolerations=plan.pool.tolerations,
        init_containers=steps,
        containers=[final],
        volumes=volumes,
    )


def quality_args(plan: DeploymentPlan) -> list[str]:
    """The quantize Job's quality budget: over it, the checkpoint is not published."""
    budget = plan.model.quality_budget
    if budget is None:
        return ["--no-quality-check"]
    return [
        "--max-kl", f"{budget.max_kl_nats:g}",
        "--min-agreement", f"{budget.min_top1_agreement:g}",
        "--max-ppl-increase", f"{budget.max_perplexity_increase:g}",
        "--kv-cache-dtype", plan.vllm.kv_cache_dtype,
    ]  # fmt: skip


def restricted_container() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def s3_env() -> list[dict[str, Any]]:
    return [
        _secret_env("AWS_ACCESS_KEY_ID", S3_SECRET, "AWS_ACCESS_KEY_ID"),
        _secret_env("AWS_SECRET_ACCESS_KEY", S3_SECRET, "AWS_SECRET_ACCESS_KEY"),
    ]


def fetch_into_job(
    uri: str,
    name: str,
    initializer_image: str,
    steps: list[dict[str, Any]],
    mounts: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    size_gib: int,
) -> str:
    """Make `uri` readable inside the Job; return its path there."""
    if uri.startswith("pvc://"):
        claim, _, path = uri.removeprefix("pvc://").partition("/")
        volumes.append(
            {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
        mounts.append({"name": name, "mountPath": f"/mnt/{name}", "readOnly": True})
        return f"/mnt/{name}/{path}".rstrip("/")
    # hf://, s3://, oci://: the same storage initializer KServe uses for models.
    volumes.append({"name": name, "emptyDir": {"sizeLimit": f"{size_gib}Gi"}})
    mounts.append({"name": name, "mountPath": f"/mnt/{name}"})
    steps.append(
        {
            "name": f"fetch-{name}",
            "image": initializer_image,
            "args": [uri, f"/mnt/{name}"],
            "env": [_secret_env("HF_TOKEN", MODEL_HUB_SECRET, "token"), *s3_env()],
            "resources": {
                "requests": {"cpu": "1", "memory": "2Gi"},
                "limits": {"cpu": "2", "memory": "4Gi"},
            },
            "securityContext": restricted_container(),
            "volumeMounts": [{"name": name, "mountPath": f"/mnt/{name}"}],
        }
    )
    return f"/mnt/{name}"
