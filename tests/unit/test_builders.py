"""Key fields of the platform objects, decided by the plan."""

from __future__ import annotations

from typing import Any

import pytest

from infra.builders.stack import platform_bundles
from infra.config import validate_stack
from infra.plan import DeploymentPlan, build_plan
from infra.stack_source import load_stack
from tests.conftest import CLUSTER_STACKS, edited, stack_raw


def plan(stack: str) -> DeploymentPlan:
    return build_plan(load_stack(stack), stack)


def find(p: DeploymentPlan, kind: str, name: str | None = None) -> dict[str, Any]:
    return next(
        o
        for b in platform_bundles(p)
        for o in b.objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    )


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_nothing_is_created_twice(stack: str) -> None:
    keys = [k for b in platform_bundles(plan(stack)) for k in b.object_keys()]
    assert len(keys) == len(set(keys))


def test_machineset_carries_pool_contract_and_instance_type() -> None:
    prod = plan("prod")
    machineset = find(prod, "MachineSet")
    template = machineset["spec"]["template"]["spec"]
    assert template["providerSpec"]["value"]["instanceType"] == "p5.48xlarge"
    assert template["metadata"]["labels"] == prod.pool.node_labels
    assert template["taints"] == [prod.pool.taint]
    autoscaler = find(prod, "MachineAutoscaler")
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (1, 2)


def test_cluster_autoscaler_only_where_asked() -> None:
    assert find(plan("dev"), "ClusterAutoscaler")["spec"]["resourceLimits"]["gpus"][0]["max"] == 2
    with pytest.raises(StopIteration):
        find(plan("prod"), "ClusterAutoscaler")


def test_gpu_operator_keeps_dcgm_exporter_on_and_waits_for_olm() -> None:
    prod = plan("prod")
    policy = find(prod, "ClusterPolicy")
    assert policy["spec"]["dcgmExporter"]["enabled"] is True
    assert policy["spec"]["daemonsets"]["tolerations"] == prod.pool.tolerations
    subscription = find(prod, "Subscription", "gpu-operator-certified")
    assert subscription["metadata"]["annotations"]["pulumi.com/waitFor"].endswith("AtLatestKnown")


def test_openshift_ai_manages_kserve_and_llama_stack_only_what_is_needed() -> None:
    components = find(plan("prod"), "DataScienceCluster")["spec"]["components"]
    managed = {name for name, c in components.items() if c["managementState"] == "Managed"}
    assert managed == {"dashboard", "kserve", "llamastackoperator"}
    raw = edited(stack_raw("prod"), "features.llamaStack", False)
    off = build_plan(validate_stack(raw, "x"), "prod")
    assert find(off, "DataScienceCluster")["spec"]["components"]["llamastackoperator"] == {
        "managementState": "Removed"
    }


def test_router_scores_prefix_cache_hits_first() -> None:
    config = find(plan("prod"), "LLMInferenceServiceConfig")
    inline = config["spec"]["router"]["scheduler"]["config"]["inline"]
    weights = {p["pluginRef"]: p.get("weight") for p in inline["schedulingProfiles"][0]["plugins"]}
    assert weights["prefix-cache-scorer"] > weights["queue-scorer"]
    assert (
        config["spec"]["router"]["gateway"]["refs"][0]["name"]
        == find(plan("prod"), "Gateway")["metadata"]["name"]
    )


def test_prefill_decode_split_uses_two_scheduling_profiles() -> None:
    raw = edited(stack_raw("prod"), "features.prefillDecodeSplit", True)
    config = find(build_plan(validate_stack(raw, "x"), "prod"), "LLMInferenceServiceConfig")
    inline = config["spec"]["router"]["scheduler"]["config"]["inline"]
    assert [p["name"] for p in inline["schedulingProfiles"]] == ["prefill", "decode"]
    assert {"type": "pd-profile-handler"} in inline["plugins"]


def test_alerts_use_the_stack_targets() -> None:
    prod = plan("prod")
    rules = find(prod, "PrometheusRule", "leanrag-serving-slo")["spec"]["groups"][0]["rules"]
    by_name = {r["alert"]: r["expr"] for r in rules}
    assert by_name["LeanRagTTFTAboveTarget"].endswith("> 2")
    assert by_name["LeanRagITLAboveTarget"].endswith("> 0.05")
    assert by_name["LeanRagKvCacheNearlyFull"].endswith("> 0.9")
    waste = find(prod, "PrometheusRule", "leanrag-gpu-waste")["spec"]["groups"][0]["rules"][0]
    assert waste["expr"].endswith("< 40")
    assert waste["for"] == "30m"


def test_dashboard_is_valid_json_with_the_slo_panels() -> None:
    import json

    data = find(plan("prod"), "ConfigMap", "leanrag-grafana-dashboard")["data"]
    dashboard = json.loads(data["leanrag-serving.json"])
    titles = [p["title"] for p in dashboard["panels"]]
    assert {"TTFT p95", "KV-cache usage", "GPU utilization"} <= set(titles)


def test_milvus_mode_follows_the_stack() -> None:
    assert find(plan("dev"), "Milvus")["spec"]["mode"] == "standalone"
    prod = find(plan("prod"), "Milvus")
    assert prod["spec"]["mode"] == "cluster"
    assert prod["spec"]["components"]["resources"]["limits"]["memory"]
    assert plan("prod").vector_store_uri.endswith(".leanrag-milvus.svc.cluster.local:19530")


def test_keda_on_openshift_reads_thanos_with_a_bound_token() -> None:
    prod = plan("prod")
    auth = find(prod, "TriggerAuthentication")
    assert auth["metadata"]["name"] == prod.autoscaling.trigger_authentication
    assert auth["spec"]["boundServiceAccountToken"][0]["parameter"] == "bearerToken"
    assert prod.autoscaling.prometheus_url.startswith("https://thanos-querier")


def test_gate_job_measures_the_optimized_replicas_with_the_plan_targets() -> None:
    prod = plan("prod")
    job = find(prod, "Job", "leanrag-benchmark-gate")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    target = args[args.index("--target") + 1]
    assert target == "https://leanrag-llm-gate.leanrag-serving.svc.cluster.local:8000"
    assert "--insecure" in args and "--baseline-target" not in args
    service = find(prod, "Service", "leanrag-llm-gate")
    assert service["spec"]["selector"]["leanrag.io/profile"] == "optimized"
    # The prefix-cache counters are read at every replica: a headless Service's name resolves
    # to each ready one (the Service above balances over them).
    replicas = find(prod, "Service", "leanrag-llm-gate-replicas")
    assert replicas["spec"]["clusterIP"] == "None"
    assert replicas["spec"]["selector"] == service["spec"]["selector"]
    assert args[args.index("--metrics-service") + 1] == (
        "https://leanrag-llm-gate-replicas.leanrag-serving.svc.cluster.local:8000/metrics"
    )
    assert "clusterIP" not in service["spec"]
    import json

    gate_plan = json.loads(
        find(prod, "ConfigMap", "leanrag-benchmark-gate-plan")["data"]["plan.json"]
    )
    assert gate_plan["gate"]["predicted_requests_per_s"] == prod.gate.predicted_requests_per_s
    assert gate_plan["gate"]["ttft_p95_ms"] == 2000
    assert job["spec"]["backoffLimit"] == 0  # a failed gate fails the Job


def test_gate_compares_with_the_baseline_where_it_runs() -> None:
    job = find(plan("staging"), "Job", "leanrag-benchmark-gate")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--baseline-target") + 1].startswith(
        "https://leanrag-llm-baseline-gate."
    )
    assert (
        find(plan("staging"), "Service", "leanrag-llm-baseline-gate")["spec"]["selector"][
            "leanrag.io/profile"
        ]
        == "baseline"
    )


def _network_policies(p: DeploymentPlan) -> dict[str, dict[str, dict[str, Any]]]:
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for bundle in platform_bundles(p):
        for obj in bundle.objects:
            if obj["kind"] == "NetworkPolicy":
                found.setdefault(obj["metadata"]["namespace"], {})[obj["metadata"]["name"]] = obj
    return found


def _open_ports(policy: dict[str, Any]) -> set[int]:
    """Ports reachable from any source (rules without `from`)."""
    return {
        port["port"]
        for rule in policy["spec"].get("ingress", [])
        if "from" not in rule
        for port in rule["ports"]
    }


@pytest.mark.parametrize("platform", ["openshift", "kubernetes"])
def test_every_namespace_the_stack_creates_denies_by_default(platform: str) -> None:
    raw = edited(stack_raw("prod"), "platform", platform)
    if platform == "kubernetes":
        raw = edited(raw, "gpuPool.aws")  # node groups come from cloud tooling there
    p = build_plan(validate_stack(raw, "prod"), "prod")
    policies = _network_policies(p)
    created = {
        o["metadata"]["name"]
        for b in platform_bundles(p)
        for o in b.objects
        if o["kind"] == "Namespace"
    }
    operators = {
        "openshift": {"nvidia-gpu-operator", "openshift-nfd", "redhat-ods-operator",
                      "openshift-keda", "milvus-operator"},
        "kubernetes": {"gpu-operator", "keda", "milvus-operator"},
    }[platform]  # fmt: skip
    assert operators <= created
    for namespace in created:
        deny = policies[namespace]["default-deny"]["spec"]
        assert deny["podSelector"] == {} and "ingress" not in deny and "egress" not in deny
        assert "allow-stack-traffic" in policies[namespace]
    keda = "openshift-keda" if platform == "openshift" else "keda"
    # The API server reaches KEDA's metrics API and webhooks, and the Milvus operator's webhook.
    assert _open_ports(policies[keda]["allow-stack-traffic"]) == {6443, 9443}
    assert _open_ports(policies["milvus-operator"]["allow-stack-traffic"]) == {9443}
    # Workload namespaces expose nothing to arbitrary sources.
    assert _open_ports(policies[p.namespaces.serving]["allow-stack-traffic"]) == set()
    # KEDA reads the Prometheus it scales on; the Milvus operator reaches the Milvus it manages.
    keda_egress = policies[keda]["allow-stack-traffic"]["spec"]["egress"][0]["to"]
    prometheus_namespace = "openshift-monitoring" if platform == "openshift" else "monitoring"
    assert {"kubernetes.io/metadata.name": prometheus_namespace} in [
        peer.get("namespaceSelector", {}).get("matchLabels") for peer in keda_egress
    ]
    milvus_ingress = policies[p.namespaces.milvus]["allow-stack-traffic"]["spec"]["ingress"][0]
    assert {"kubernetes.io/metadata.name": "milvus-operator"} in [
        peer.get("namespaceSelector", {}).get("matchLabels") for peer in milvus_ingress["from"]
    ]
