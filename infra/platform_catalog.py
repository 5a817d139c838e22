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
# The endpoint picker moved from gateway-api-inference-extension to the llm-d router (v1.6 of
# the former removed it); its config schema is llm-d.ai/v1alpha1 with flow control.
EPP_IMAGE = "ghcr.io/llm-d/llm-d-router-endpoint-picker:v0.9.0"
# Its InferenceObjective CRD (request priorities), at the same release.
LLMD_ROUTER_CRDS_URL = (
    "https://raw.githubusercontent.com/llm-d/llm-d-router/v0.9.0/"
    "config/crd/bases/llm-d.ai_inferenceobjectives.yaml"
)
MILVUS_VERSION = "v2.6.4"
