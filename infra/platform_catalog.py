"""Pinned versions of the third-party operators and charts the platform installs.

Bump deliberately: each version here was chosen to work with the CRDs in the contract tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OlmOperator:
    """An operator installed through OLM on OpenShift."""

    package: str
    channel: str
    source: str
    namespace: str
    # True: the operator watches only its own namespace (OperatorGroup targetNamespaces).
    own_namespace: bool


NFD_OPERATOR = OlmOperator("nfd", "stable", "redhat-operators", "openshift-nfd", True)
GPU_OPERATOR = OlmOperator(
    "gpu-operator-certified", "v25.10", "certified-operators", "nvidia-gpu-operator", True
)
OPENSHIFT_AI_OPERATOR = OlmOperator(
    "rhods-operator", "fast-3.x", "redhat-operators", "redhat-ods-operator", False
)
CUSTOM_METRICS_AUTOSCALER = OlmOperator(
    "openshift-custom-metrics-autoscaler-operator", "stable", "redhat-operators",
    "openshift-keda", False,
)  # fmt: skip


@dataclass(frozen=True)
class ChartSource:
    repository: str
    chart: str
    version: str


CERT_MANAGER = ChartSource("https://charts.jetstack.io", "cert-manager", "v1.19.1")
ENVOY_GATEWAY = ChartSource("oci://docker.io/envoyproxy", "gateway-helm", "v1.5.4")
KSERVE_LLMISVC_CRD = ChartSource("oci://ghcr.io/kserve/charts", "kserve-llmisvc-crd", "v0.20.0")
KSERVE_LLMISVC = ChartSource("oci://ghcr.io/kserve/charts", "kserve-llmisvc-resources", "v0.20.0")
GPU_OPERATOR_CHART = ChartSource("https://helm.ngc.nvidia.com/nvidia", "gpu-operator", "v25.10.0")
KEDA_CHART = ChartSource("https://kedacore.github.io/charts", "keda", "2.18.0")
MILVUS_OPERATOR_CHART = ChartSource(
    "https://zilliztech.github.io/milvus-operator", "milvus-operator", "1.3.0"
)
INFERENCE_EXTENSION_CRDS_URL = (
    "https://github.com/kubernetes-sigs/gateway-api-inference-extension/releases/download/"
    "v1.0.1/manifests.yaml"
)
EPP_IMAGE = "registry.k8s.io/gateway-api-inference-extension/epp:v1.0.1"
MILVUS_VERSION = "v2.6.4"
