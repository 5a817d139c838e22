"""Milvus for the RAG app: standalone (dev) or cluster (prod) through the Milvus operator."""

from __future__ import annotations

from infra.builders import network
from infra.builders.bundle import OPERATOR_NAMESPACE as OPERATOR_NAMESPACE_LABELS
from infra.builders.bundle import PART_OF, Bundle, HelmChart, render
from infra.plan import MILVUS_NAME, DeploymentPlan
from infra.platform_catalog import MILVUS_OPERATOR_CHART, MILVUS_VERSION

OPERATOR_NAMESPACE = "milvus-operator"


def _operator_traffic(plan: DeploymentPlan) -> network.OperatorTraffic:
    # Admission webhook on 9443; the operator probes etcd, MinIO and Milvus where they run.
    return network.OperatorTraffic(
        api_server_ports=(9443,), egress_namespaces=(plan.namespaces.milvus,)
    )


# Per-mode shape: standalone is one pod; cluster spreads query/data/proxy for availability.
_MODES = {
    "standalone": {
        "replicas": {"standalone": 1},
        "resources": {
            "requests": {"cpu": "2", "memory": "8Gi"},
            "limits": {"cpu": "4", "memory": "16Gi"},
        },
        "etcd_replicas": 1,
        "minio_mode": "standalone",
        "etcd_volume": "10Gi",
        "storage_volume": "100Gi",
    },
    "cluster": {
        "replicas": {"proxy": 2, "mixCoord": 1, "queryNode": 2, "dataNode": 2, "streamingNode": 2},
        "resources": {
            "requests": {"cpu": "2", "memory": "8Gi"},
            "limits": {"cpu": "8", "memory": "32Gi"},
        },
        "etcd_replicas": 3,
        "minio_mode": "distributed",
        "etcd_volume": "20Gi",
        "storage_volume": "500Gi",
    },
}


def in_cluster(plan: DeploymentPlan) -> bool:
    return plan.features.milvus in _MODES


def build(plan: DeploymentPlan) -> Bundle:
    mode = plan.features.milvus
    if mode not in _MODES:
        return Bundle(concern="milvus")  # external service or Milvus Lite: nothing to run
    chart = HelmChart(
        "milvus-operator",
        OPERATOR_NAMESPACE,
        MILVUS_OPERATOR_CHART.repository,
        MILVUS_OPERATOR_CHART.chart,
        MILVUS_OPERATOR_CHART.version,
        {},
    )
    objects = render(
        "platform/namespaces.yaml.j2",
        namespaces=[{"name": OPERATOR_NAMESPACE, "labels": OPERATOR_NAMESPACE_LABELS}],
    )
    objects += network.operator_policies(plan, OPERATOR_NAMESPACE, _operator_traffic(plan))
    objects += render(
        "platform/milvus.yaml.j2",
        name=MILVUS_NAME,
        namespace=plan.namespaces.milvus,
        labels=PART_OF,
        mode=mode,
        version=MILVUS_VERSION,
        **_MODES[mode],
    )
    return Bundle(concern="milvus", objects=tuple(objects), charts=(chart,))
