"""Every concern of a cluster stack, in apply order — shared by `pulumi up` and `render`."""

from __future__ import annotations

from collections.abc import Callable

from infra.builders import (
    benchmark,
    gpu_nodes,
    gpu_operator,
    keda,
    kserve,
    llm_d,
    milvus,
    namespaces,
    observability,
    openshift_ai,
    rag,
    serving,
)
from infra.builders.bundle import Bundle
from infra.plan import DeploymentPlan

# (concern, builder); a builder returns an empty bundle when its concern is off for the stack.
CONCERNS: tuple[tuple[str, Callable[[DeploymentPlan], Bundle]], ...] = (
    ("namespaces", namespaces.build),
    ("gpu-nodes", gpu_nodes.build),
    ("gpu-operator", gpu_operator.build),
    ("openshift-ai", openshift_ai.build),
    ("kserve", kserve.build),
    ("llm-d", llm_d.build),
    ("keda", keda.build),
    ("milvus", milvus.build),
    ("observability", observability.build),
    ("serving", serving.build),
    ("benchmark", benchmark.build),
    ("rag", rag.build),
)


# Which concerns must be in place before a concern is applied (besides the namespaces).
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "llm-d": ("openshift-ai", "kserve"),  # Gateway API and LLMInferenceServiceConfig CRDs
    "observability": ("gpu-operator", "milvus", "openshift-ai", "kserve"),
    # GPUs, the serving platform, the router preset and KEDA must all exist first.
    "serving": ("gpu-nodes", "gpu-operator", "openshift-ai", "kserve", "llm-d", "keda"),
    # The gate measures the live service: it starts once serving is ready.
    "benchmark": ("serving",),
    # Llama Stack needs its operator (OpenShift AI), Milvus and the served model.
    "rag": ("openshift-ai", "milvus", "serving"),
}


def platform_bundles(plan: DeploymentPlan) -> list[Bundle]:
    """The non-empty bundles of a stack, in apply order."""
    bundles = [build(plan) for _, build in CONCERNS]
    return [b for b in bundles if b.objects or b.charts or b.remote]
