"""llm-d routing: the inference Gateway and the prefix-cache-aware endpoint picker.

With LLMInferenceService the picker is configured through a LLMInferenceServiceConfig preset
the service refers to; with classic InferenceService (standalone) this concern runs the
InferencePool, its endpoint picker and the HTTPRoute itself.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import yaml

from infra.builders.bundle import PART_OF, Bundle, RemoteManifest, render, render_text
from infra.plan import MODEL_SERVER_LABELS, SERVICE_NAME, DeploymentPlan
from infra.platform_catalog import EPP_IMAGE, LLMD_ROUTER_CRDS_URL

GATEWAY = "leanrag-inference"
ROUTER_CONFIG = "leanrag-router"
POOL = "leanrag-pool"
MODEL_PORT = 8080  # the classic InferenceService's vLLM runtime port
# The request header that names a request's InferenceObjective (llm-d router v0.9).
OBJECTIVE_HEADER = "x-llm-d-inference-objective"
# Prefix-cache hits dominate RAG (the same retrieved chunks recur); load breaks ties.
WEIGHTS = {"prefix": 3, "queue": 1, "kv_cache": 1}
_GATEWAY_CONTROLLERS = {
    "openshift": ("openshift-default", "openshift.io/gateway-controller/v1"),
    "kubernetes": ("envoy", "gateway.envoyproxy.io/gatewayclass-controller"),
}


def scheduler_config_text(plan: DeploymentPlan) -> str:
    disaggregated = plan.features.prefill_decode_split
    profiles = (
        [
            {"name": "prefill", "filter": "prefill-filter"},
            {"name": "decode", "filter": "decode-filter"},
        ]
        if disaggregated
        else [{"name": "default", "filter": None}]
    )
    return render_text(
        "platform/scheduler-config.yaml.j2",
        disaggregated=disaggregated,
        profiles=profiles,
        weights=WEIGHTS,
        # Hash blocks match vLLM's 16-token KV blocks; track as many blocks as a replica holds.
        block_size=16,
        lru_capacity=max(plan.sizing.replica.memory.kv_cache_tokens // 16, 1),
        shedding=_shedding(plan),
    )


def _shedding(plan: DeploymentPlan) -> dict[str, Any] | None:
    shedding = plan.shedding
    if not shedding.enabled:
        return None
    return {**asdict(shedding), "ttl": f"{shedding.request_ttl_seconds:g}s"}


def objectives(plan: DeploymentPlan, pool: str) -> list[dict[str, Any]]:
    """Priorities the picker serves by: the RAG app's traffic before batch traffic (which is
    shed first). Clients choose one with the `x-llm-d-inference-objective` header; requests
    without it get priority 0, between the two."""
    shedding = plan.shedding
    return render(
        "platform/inference-objectives.yaml.j2",
        namespace=plan.namespaces.serving,
        labels=PART_OF,
        pool=pool,
        objectives=[
            (shedding.interactive_objective, shedding.interactive_priority),
            (shedding.batch_objective, shedding.batch_priority),
        ],
    )


def build(plan: DeploymentPlan) -> Bundle:
    if not plan.features.llmd_router or plan.platform == "local":
        return Bundle(concern="llm-d")
    gateway_class, controller = _GATEWAY_CONTROLLERS[plan.platform]
    namespace = plan.namespaces.serving
    objects: list[dict[str, Any]] = render(
        "platform/gateway.yaml.j2",
        gateway_class=gateway_class,
        controller_name=controller,
        gateway=GATEWAY,
        namespace=namespace,
        labels=PART_OF,
    )
    config_text = scheduler_config_text(plan)
    if plan.serving_api == "llminferenceservice":
        objects += render(
            "platform/router-config.yaml.j2",
            name=ROUTER_CONFIG,
            namespace=namespace,
            labels=PART_OF,
            gateway=GATEWAY,
            scheduler_config=yaml.safe_load(config_text),
        )
        pool = f"{SERVICE_NAME}-inference-pool"  # the pool KServe creates for the service
    else:
        objects += render(
            "platform/inferencepool.yaml.j2",
            name=POOL,
            namespace=namespace,
            labels=PART_OF,
            gateway=GATEWAY,
            model_server_labels=MODEL_SERVER_LABELS,
            model_port=MODEL_PORT,
            scheduler_config_text=config_text,
            epp_image=EPP_IMAGE,
        )
        pool = POOL
    remote: tuple[RemoteManifest, ...] = ()
    if plan.shedding.enabled:
        objects += objectives(plan, pool)
        remote = (RemoteManifest("llm-d-router-crds", LLMD_ROUTER_CRDS_URL),)
    return Bundle(concern="llm-d", objects=tuple(objects), remote=remote)
