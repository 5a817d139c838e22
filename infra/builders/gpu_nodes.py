"""GPU node pool: OpenShift MachineSet + MachineAutoscaler (+ ClusterAutoscaler).

On plain Kubernetes the pool is created with the cloud's own tooling; the contract the
workloads rely on (pool label + GPU taint, `GpuPoolPlan.node_labels` / `.taint`) is in the
README, so this concern emits nothing there.
"""

from __future__ import annotations

from infra.builders.bundle import Bundle, render
from infra.plan import DeploymentPlan


def build(plan: DeploymentPlan) -> Bundle:
    pool = plan.pool
    if plan.platform != "openshift" or pool.aws is None:
        return Bundle(concern="gpu-nodes")
    objects = render(
        "platform/gpu-machineset.yaml.j2",
        name=pool.name,
        aws=pool.aws,
        instance_type=pool.instance_type,
        min_nodes=pool.min_nodes,
        max_nodes=pool.max_nodes,
        node_labels=pool.node_labels,
        taint=pool.taint,
    )
    if pool.cluster_autoscaler:
        objects += render(
            "platform/cluster-autoscaler.yaml.j2", max_gpus=pool.gpus_per_node * pool.max_nodes
        )
    return Bundle(concern="gpu-nodes", objects=tuple(objects))
