"""Node Feature Discovery + NVIDIA GPU Operator with the DCGM exporter on."""

from __future__ import annotations

from infra.builders import network
from infra.builders.bundle import OPERATOR_NAMESPACE, Bundle, HelmChart, render
from infra.plan import DeploymentPlan
from infra.platform_catalog import GPU_OPERATOR, GPU_OPERATOR_CHART, NFD_OPERATOR

KUBERNETES_NAMESPACE = "gpu-operator"
# The GPU operator, its operands (device plugin, DCGM exporter, validators) and NFD talk within
# their namespace and to the API server; monitoring scrapes DCGM. No webhooks by default.
# Host-network operands are outside NetworkPolicy's reach and unaffected.
_OPERATOR_TRAFFIC = network.OperatorTraffic()


def namespace(plan: DeploymentPlan) -> str:
    return GPU_OPERATOR.namespace if plan.platform == "openshift" else KUBERNETES_NAMESPACE


def build(plan: DeploymentPlan) -> Bundle:
    if plan.platform == "openshift":
        labels = {**OPERATOR_NAMESPACE, "openshift.io/cluster-monitoring": "true"}
        objects = (
            render("platform/olm-operator.yaml.j2", operator=NFD_OPERATOR, labels=labels)
            + render("platform/olm-operator.yaml.j2", operator=GPU_OPERATOR, labels=labels)
            + network.operator_policies(plan, NFD_OPERATOR.namespace, _OPERATOR_TRAFFIC)
            + network.operator_policies(plan, GPU_OPERATOR.namespace, _OPERATOR_TRAFFIC)
            + render(
                "platform/nvidia-openshift.yaml.j2",
                nfd_namespace=NFD_OPERATOR.namespace,
                toleration=plan.pool.tolerations[0],
            )
        )
        return Bundle(concern="gpu-operator", objects=tuple(objects))
    # Plain Kubernetes: the chart brings NFD and creates the ClusterPolicy itself.
    chart = HelmChart(
        release="gpu-operator",
        namespace=KUBERNETES_NAMESPACE,
        repository=GPU_OPERATOR_CHART.repository,
        chart=GPU_OPERATOR_CHART.chart,
        version=GPU_OPERATOR_CHART.version,
        values={
            "nfd": {"enabled": True},
            "dcgmExporter": {"enabled": True, "serviceMonitor": {"enabled": False}},
            "daemonsets": {"tolerations": plan.pool.tolerations},
        },
    )
    namespace_objects = render(
        "platform/namespaces.yaml.j2",
        namespaces=[
            {
                "name": KUBERNETES_NAMESPACE,
                "labels": {
                    **OPERATOR_NAMESPACE,
                    "pod-security.kubernetes.io/enforce": "privileged",
                },
            },
        ],
    )
    namespace_objects += network.operator_policies(plan, KUBERNETES_NAMESPACE, _OPERATOR_TRAFFIC)
    return Bundle(concern="gpu-operator", objects=tuple(namespace_objects), charts=(chart,))
