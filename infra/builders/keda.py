"""KEDA: Custom Metrics Autoscaler on OpenShift (with Thanos access), the Helm chart elsewhere.

The ScaledObjects themselves belong to serving; this concern makes them possible.
"""

from __future__ import annotations

from infra.builders import network
from infra.builders.bundle import OPERATOR_NAMESPACE, PART_OF, Bundle, HelmChart, render
from infra.plan import DeploymentPlan
from infra.platform_catalog import CUSTOM_METRICS_AUTOSCALER, KEDA_CHART

PROMETHEUS_READER = "leanrag-keda-prometheus"
KUBERNETES_NAMESPACE = "keda"


def _operator_traffic(plan: DeploymentPlan) -> network.OperatorTraffic:
    # Metrics API server (APIService, 6443) and admission webhooks (9443) are called by the API
    # server; the operator queries Prometheus/Thanos for the vLLM metrics it scales on.
    return network.OperatorTraffic(
        api_server_ports=(6443, 9443),
        egress_namespaces=tuple(network.monitoring_namespaces(plan)),
    )


def build(plan: DeploymentPlan) -> Bundle:
    autoscaling = plan.autoscaling
    if not autoscaling.enabled or plan.platform == "local":
        return Bundle(concern="keda")
    if plan.platform == "openshift":
        objects = render(
            "platform/olm-operator.yaml.j2",
            operator=CUSTOM_METRICS_AUTOSCALER,
            labels=OPERATOR_NAMESPACE,
        )
        objects += network.operator_policies(
            plan, CUSTOM_METRICS_AUTOSCALER.namespace, _operator_traffic(plan)
        )
        objects += render(
            "platform/keda-openshift.yaml.j2",
            operator_namespace=CUSTOM_METRICS_AUTOSCALER.namespace,
            namespace=plan.namespaces.serving,
            account=PROMETHEUS_READER,
            trigger_authentication=autoscaling.trigger_authentication,
            labels=PART_OF,
        )
        return Bundle(concern="keda", objects=tuple(objects))
    chart = HelmChart(
        "keda",
        KUBERNETES_NAMESPACE,
        KEDA_CHART.repository,
        KEDA_CHART.chart,
        KEDA_CHART.version,
        {"prometheus": {"operator": {"enabled": True}}},
    )
    objects = render(
        "platform/namespaces.yaml.j2",
        namespaces=[{"name": KUBERNETES_NAMESPACE, "labels": OPERATOR_NAMESPACE}],
    )
    objects += network.operator_policies(plan, KUBERNETES_NAMESPACE, _operator_traffic(plan))
    return Bundle(concern="keda", objects=tuple(objects), charts=(chart,))
