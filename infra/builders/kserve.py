"""Plain Kubernetes: KServe's LLMInferenceService controller and what it needs.

cert-manager (webhook certificates), Envoy Gateway (a Gateway API implementation, which also
installs the Gateway API CRDs), the Gateway API Inference Extension CRDs, and KServe's
llmisvc charts. On OpenShift, OpenShift AI provides all of this.
"""

from __future__ import annotations

from infra.builders.bundle import Bundle, HelmChart, RemoteManifest
from infra.plan import DeploymentPlan
from infra.platform_catalog import (
    CERT_MANAGER,
    ENVOY_GATEWAY,
    INFERENCE_EXTENSION_CRDS_URL,
    KSERVE_LLMISVC,
    KSERVE_LLMISVC_CRD,
    ChartSource,
)


def _chart(release: str, namespace: str, source: ChartSource, values: dict) -> HelmChart:
    return HelmChart(release, namespace, source.repository, source.chart, source.version, values)


def build(plan: DeploymentPlan) -> Bundle:
    if plan.platform != "kubernetes":
        return Bundle(concern="kserve")
    return Bundle(
        concern="kserve",
        charts=(
            _chart("cert-manager", "cert-manager", CERT_MANAGER, {"crds": {"enabled": True}}),
            _chart("envoy-gateway", "envoy-gateway-system", ENVOY_GATEWAY, {}),
            _chart("kserve-llmisvc-crd", "kserve", KSERVE_LLMISVC_CRD, {}),
            _chart("kserve-llmisvc", "kserve", KSERVE_LLMISVC, {}),
        ),
        remote=(
            RemoteManifest("gateway-api-inference-extension-crds", INFERENCE_EXTENSION_CRDS_URL),
        ),
    )
