"""The cluster platform, one ComponentResource per concern.

Each component applies the bundle its builder (`infra/builders/<concern>.py`) made from the
plan; `leanrag render` writes the very same bundles as files.
"""

from __future__ import annotations

from infra.k8s_apply import BundleComponent


class StackNamespaces(BundleComponent):
    """The stack's namespaces (serving, RAG, Milvus, monitoring)."""

    TYPE = "leanrag:platform:Namespaces"


class GpuNodePool(BundleComponent):
    """OpenShift MachineSet + MachineAutoscaler (+ ClusterAutoscaler) for the GPU pool."""

    TYPE = "leanrag:platform:GpuNodePool"


class GpuOperator(BundleComponent):
    """Node Feature Discovery and the NVIDIA GPU Operator (ClusterPolicy, DCGM exporter)."""

    TYPE = "leanrag:platform:GpuOperator"


class OpenShiftAI(BundleComponent):
    """OpenShift AI operator, DSCInitialization and DataScienceCluster."""

    TYPE = "leanrag:platform:OpenShiftAI"


class KServe(BundleComponent):
    """Plain Kubernetes: cert-manager, Gateway API, inference-extension CRDs, KServe llmisvc."""

    TYPE = "leanrag:platform:KServe"


class LlmD(BundleComponent):
    """Inference Gateway and llm-d's prefix-cache-aware endpoint picker."""

    TYPE = "leanrag:platform:LlmD"


class Keda(BundleComponent):
    """KEDA (Custom Metrics Autoscaler on OpenShift) and its Prometheus access."""

    TYPE = "leanrag:platform:Keda"


class Milvus(BundleComponent):
    """Milvus operator and the Milvus instance for the RAG app."""

    TYPE = "leanrag:platform:Milvus"


class Observability(BundleComponent):
    """Monitors, SLO and GPU-waste alerts, Grafana dashboard."""

    TYPE = "leanrag:platform:Observability"


COMPONENTS: dict[str, type[BundleComponent]] = {
    "namespaces": StackNamespaces,
    "gpu-nodes": GpuNodePool,
    "gpu-operator": GpuOperator,
    "openshift-ai": OpenShiftAI,
    "kserve": KServe,
    "llm-d": LlmD,
    "keda": Keda,
    "milvus": Milvus,
    "observability": Observability,
}
