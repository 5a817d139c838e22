"""The stack's own namespaces (operators' namespaces belong to their concerns)."""

from __future__ import annotations

from infra.builders.bundle import PART_OF, Bundle, render
from infra.plan import DeploymentPlan


def build(plan: DeploymentPlan) -> Bundle:
    namespaces = plan.namespaces
    common = {
        **PART_OF,
        # Enforce what every workload already meets; warn on the stricter profile.
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
    }
    if plan.platform == "openshift":
        common["openshift.io/user-monitoring"] = "true"
    serving = dict(common)
    if plan.platform == "openshift":
        serving["opendatahub.io/dashboard"] = "true"
    wanted = [
        (namespaces.serving, serving),
        (namespaces.rag, common),
        (namespaces.monitoring, common),
    ]
    if plan.features.milvus in ("standalone", "cluster"):
        wanted.append((namespaces.milvus, common))
    unique = {name: labels for name, labels in wanted}  # one namespace may serve several roles
    return Bundle(
        concern="namespaces",
        objects=tuple(
            render(
                "platform/namespaces.yaml.j2",
                namespaces=[{"name": name, "labels": labels} for name, labels in unique.items()],
            )
        ),
    )
