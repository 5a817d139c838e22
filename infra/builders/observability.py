"""Monitors for vLLM, DCGM and Milvus; SLO and GPU-waste alerts; the Grafana dashboard."""

from __future__ import annotations

from infra.builders import gpu_operator, milvus, serving
from infra.builders.bundle import PART_OF, Bundle, render, render_text
from infra.plan import MILVUS_NAME, MODEL_SERVER_LABELS, DeploymentPlan

GPU_IDLE_PERCENT = 40
GPU_IDLE_FOR = "30m"
KV_CACHE_ALERT = 0.9


def _serving_alerts(plan: DeploymentPlan) -> list[dict[str, str]]:
    namespace = plan.namespaces.serving
    selector = f'namespace="{namespace}"'
    gate = plan.gate
    return [
        {
            "name": "LeanRagTTFTAboveTarget",
            "expr": "histogram_quantile(0.95, sum by (le) (rate("
            f"vllm:time_to_first_token_seconds_bucket{{{selector}}}[5m]))) > "
            f"{gate.ttft_p95_ms / 1000:g}",
            "for": "10m",
            "severity": "warning",
            "summary": f"TTFT p95 above the {gate.ttft_p95_ms:g} ms target",
        },
        {
            "name": "LeanRagITLAboveTarget",
            "expr": "histogram_quantile(0.95, sum by (le) (rate("
            f"vllm:inter_token_latency_seconds_bucket{{{selector}}}[5m]))) > "
            f"{gate.itl_p95_ms / 1000:g}",
            "for": "10m",
            "severity": "warning",
            "summary": f"inter-token latency p95 above the {gate.itl_p95_ms:g} ms target",
        },
        {
            "name": "LeanRagQueueBuildingUp",
            "expr": f"avg(vllm:num_requests_waiting{{{selector}}}) > "
            f"{plan.autoscaling.waiting_requests_per_replica}",
            "for": "5m",
            "severity": "warning",
            "summary": "requests are queueing: replicas are saturated",
        },
        {
            "name": "LeanRagKvCacheNearlyFull",
            "expr": f"max(vllm:kv_cache_usage_perc{{{selector}}}) > {KV_CACHE_ALERT:g}",
            "for": "5m",
            "severity": "warning",
            "summary": "KV cache above 90 %: preemptions and recomputation follow",
        },
    ]


def _gpu_alerts() -> list[dict[str, str]]:
    return [
        {
            "name": "LeanRagGpuIdleMoneyWasted",
            "expr": f"avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL) < {GPU_IDLE_PERCENT}",
            "for": GPU_IDLE_FOR,
            "severity": "info",
            "summary": f"GPU below {GPU_IDLE_PERCENT} % utilization for {GPU_IDLE_FOR}: "
            "paid for and unused — lower min replicas or let it scale in",
        }
    ]


def _dashboard(plan: DeploymentPlan) -> str:
    namespace = plan.namespaces.serving
    selector = f'namespace="{namespace}"'
    panels = [
        (
            "TTFT p95",
            "s",
            "histogram_quantile(0.95, sum by (le) (rate("
            f"vllm:time_to_first_token_seconds_bucket{{{selector}}}[5m])))",
            "p95",
        ),
        (
            "Inter-token latency p95",
            "s",
            "histogram_quantile(0.95, sum by (le) (rate("
            f"vllm:inter_token_latency_seconds_bucket{{{selector}}}[5m])))",
            "p95",
        ),
        (
            "Requests running / waiting",
            "short",
            f'sum by (__name__) ({{__name__=~"vllm:num_requests_(running|waiting)",{selector}}})',
            "{{__name__}}",
        ),
        ("KV-cache usage", "percentunit", f"vllm:kv_cache_usage_perc{{{selector}}}", "{{pod}}"),
        (
            "Output tokens/s",
            "short",
            f"sum(rate(vllm:generation_tokens_total{{{selector}}}[1m]))",
            "tokens/s",
        ),
        (
            "GPU utilization",
            "percent",
            "avg by (Hostname, gpu) (DCGM_FI_DEV_GPU_UTIL)",
            "{{Hostname}} GPU {{gpu}}",
        ),
    ]
    return render_text(
        "platform/grafana-dashboard.json.j2",
        title=f"Lean RAG — {plan.stack}",
        uid=f"leanrag-{plan.stack}",
        panels=[
            {
                "title": title,
                "unit": unit,
                "expr": expr,
                "legend": legend,
                "x": (index % 2) * 12,
                "y": (index // 2) * 8,
            }
            for index, (title, unit, expr, legend) in enumerate(panels)
        ],
    )


def build(plan: DeploymentPlan) -> Bundle:
    if plan.platform == "local":
        return Bundle(concern="observability")
    metrics_port, metrics_scheme = serving.metrics_endpoint(plan)
    objects = render(
        "platform/observability.yaml.j2",
        labels=PART_OF,
        serving_namespace=plan.namespaces.serving,
        monitoring_namespace=plan.namespaces.monitoring,
        gpu_namespace=gpu_operator.namespace(plan),
        milvus_namespace=plan.namespaces.milvus,
        milvus_name=MILVUS_NAME,
        milvus_in_cluster=milvus.in_cluster(plan),
        model_server_labels=MODEL_SERVER_LABELS,
        metrics_port=metrics_port,
        # LLMInferenceService pods serve vLLM over TLS with a self-signed certificate.
        metrics_scheme=metrics_scheme,
        serving_alerts=_serving_alerts(plan),
        gpu_alerts=_gpu_alerts(),
        dashboard_labels={**PART_OF, "grafana_dashboard": "1"},
        dashboard_json=_dashboard(plan),
    )
    return Bundle(concern="observability", objects=tuple(objects))
