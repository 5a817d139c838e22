"""Who may talk to whom: default-deny plus explicit allows for every namespace the stack creates.

Workload namespaces (serving, RAG, Milvus, monitoring) get the traffic between the stack's own
parts. Operator namespaces get what each operator needs to work: its pods talk among themselves,
the API server reaches its webhooks and aggregated APIs (the API server's address is not
selectable by namespace, so those ports are open to any source), monitoring scrapes its metrics,
and it reaches the API server and DNS.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from infra.builders.bundle import PART_OF, render
from infra.plan import DeploymentPlan

# Namespaces of the platform's own ingress and monitoring, per platform.
GATEWAYS = {"openshift": ["openshift-ingress"], "kubernetes": ["envoy-gateway-system"]}
MONITORING = {
    "openshift": ["openshift-user-workload-monitoring", "openshift-monitoring"],
    "kubernetes": ["monitoring"],
}


@dataclass(frozen=True)
class OperatorTraffic:
    """What one operator namespace needs besides its own pods, monitoring, DNS and the API server.

    ``api_server_ports``: ports the API server calls (admission webhooks, aggregated APIs).
    ``egress_namespaces``: namespaces its pods call directly (not through the API server).
    """

    api_server_ports: tuple[int, ...] = ()
    egress_namespaces: tuple[str, ...] = ()


def monitoring_namespaces(plan: DeploymentPlan) -> list[str]:
    return MONITORING.get(plan.platform, [])


def gateway_namespaces(plan: DeploymentPlan) -> list[str]:
    return GATEWAYS.get(plan.platform, [])


def policies(
    namespace: str,
    ingress_namespaces: Iterable[str] = (),
    egress_namespaces: Iterable[str] = (),
    *,
    external_https: bool,
    open_ports: Iterable[int] = (),
) -> list[dict]:
    """Default-deny and one allow policy for ``namespace`` (DNS and in-namespace always allowed)."""
    return render(
        "platform/network-policies.yaml.j2",
        namespace=namespace,
        labels=PART_OF,
        ingress_namespaces=sorted(set(ingress_namespaces) - {namespace}),
        egress_namespaces=sorted(set(egress_namespaces) - {namespace}),
        external_https=external_https,
        open_ports=sorted(set(open_ports)),
    )


def operator_policies(plan: DeploymentPlan, namespace: str, needs: OperatorTraffic) -> list[dict]:
    """The allows an operator namespace needs; everything else is denied."""
    return policies(
        namespace,
        ingress_namespaces=monitoring_namespaces(plan),
        egress_namespaces=needs.egress_namespaces,
        # Operators act through the API server (443/6443); its endpoints sit outside any
        # namespace selector, as on workload namespaces that fetch models.
        external_https=True,
        open_ports=needs.api_server_ports,
    )
