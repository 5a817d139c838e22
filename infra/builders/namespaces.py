"""The stack's own namespaces (operators' namespaces belong to their concerns)."""

from __future__ import annotations

from infra.builders.bundle import PART_OF, WORKLOAD_NAMESPACE, Bundle, render
from infra.plan import DeploymentPlan

# Namespaces of the platform's own ingress and monitoring, per platform.
_GATEWAYS = {"openshift": ["openshift-ingress"], "kubernetes": ["envoy-gateway-system"]}
_MONITORING = {
    "openshift": ["openshift-user-workload-monitoring", "openshift-monitoring"],
    "kubernetes": ["monitoring"],
}


def build(plan: DeploymentPlan) -> Bundle:
    namespaces = plan.namespaces
    common = {
        **WORKLOAD_NAMESPACE,
        # Enforce what every workload already meets; warn on the stricter profile.
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    if plan.platform == "openshift":
        common["openshift.io/user-monitoring"] = "true"
    serving = dict(common)
    if plan.platform == "openshift":
        serving["opendatahub.io/dashboard"] = "true"
    milvus_in_cluster = plan.features.milvus in ("standalone", "cluster")
    wanted = [
        (namespaces.serving, serving),
        (namespaces.rag, common),
        (namespaces.monitoring, common),
    ]
    if milvus_in_cluster:
        wanted.append((namespaces.milvus, common))
    unique = {name: labels for name, labels in wanted}  # one namespace may serve several roles
    objects = render(
        "platform/namespaces.yaml.j2",
        namespaces=[{"name": name, "labels": labels} for name, labels in unique.items()],
    )
    gateways = _GATEWAYS.get(plan.platform, [])
    monitoring = _MONITORING.get(plan.platform, [])
    milvus = [namespaces.milvus] if milvus_in_cluster else []
    # Who may talk to whom: RAG app → model and vector store; gateways → model and RAG app;
    # monitoring scrapes everything; only pods that fetch models or documents leave the cluster.
    traffic = {
        namespaces.serving: (gateways + monitoring + [namespaces.rag], [], True),
        namespaces.rag: (gateways + monitoring, [namespaces.serving, *milvus], True),
        namespaces.monitoring: (monitoring, [], False),
    }
    if milvus_in_cluster:
        traffic[namespaces.milvus] = ([*monitoring, namespaces.rag], [], False)
    for name, (ingress, egress, external) in traffic.items():
        objects += render(
            "platform/network-policies.yaml.j2",
            namespace=name,
            labels=PART_OF,
            ingress_namespaces=sorted(set(ingress) - {name}),
            egress_namespaces=sorted(set(egress) - {name}),
            external_https=external,
        )
    return Bundle(concern="namespaces", objects=tuple(objects))
