"""OpenShift AI: the operator through OLM, then DSCInitialization and DataScienceCluster (v2)."""

from __future__ import annotations

from infra.builders import network
from infra.builders.bundle import OPERATOR_NAMESPACE, Bundle, render
from infra.plan import DeploymentPlan
from infra.platform_catalog import OPENSHIFT_AI_OPERATOR


def build(plan: DeploymentPlan) -> Bundle:
    if plan.platform != "openshift":
        return Bundle(concern="openshift-ai")
    objects = render(
        "platform/olm-operator.yaml.j2", operator=OPENSHIFT_AI_OPERATOR, labels=OPERATOR_NAMESPACE
    )
    # The operator's admission webhooks (9443); it manages components through the API server.
    objects += network.operator_policies(
        plan, OPENSHIFT_AI_OPERATOR.namespace, network.OperatorTraffic(api_server_ports=(9443,))
    )
    objects += render(
        "platform/openshift-ai.yaml.j2",
        llama_stack_state="Managed" if plan.features.llama_stack else "Removed",
    )
    return Bundle(concern="openshift-ai", objects=tuple(objects))
