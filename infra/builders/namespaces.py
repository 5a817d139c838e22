"""The stack's own namespaces (operators' namespaces belong to their concerns)."""

from __future__ import annotations

from infra.builders import milvus, network
from infra.builders.bundle import WORKLOAD_NAMESPACE, Bundle, render
from infra.plan import DeploymentPlan


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
    milvus_in_cluster = milvus.in_cluster(plan)
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
    gateways = network.gateway_namespaces(plan)
    monitoring = network.monitoring_namespaces(plan)
    vector_store = [namespaces.milvus] if milvus_in_cluster else []
    # Who may talk to whom: RAG app → model and vector store; gateways → model and RAG app;
    # monitoring scrapes everything; only pods that fetch models or documents leave the cluster.
    traffic = {
        namespaces.serving: (gateways + monitoring + [namespaces.rag], [], True),
        namespaces.rag: (gateways + monitoring, [namespaces.serving, *vector_store], True),
        namespaces.monitoring: (monitoring, [], False),
    }
    if milvus_in_cluster:
        # The Milvus operator checks the health of the components it manages.
        ingress = [*monitoring, namespaces.rag, milvus.OPERATOR_NAMESPACE]
        traffic[namespaces.milvus] = (ingress, [], False)
    for name, (ingress, egress, external) in traffic.items():
        objects += network.policies(name, ingress, egress, external_https=external)
    return Bundle(concern="namespaces", objects=tuple(objects))
