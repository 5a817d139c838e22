"""The post-deploy benchmark gate Job (GuideLLM against the live service)."""

from __future__ import annotations

import dataclasses
import json
import math

from infra.builders.bundle import PART_OF, Bundle, render
from infra.builders.serving import BASELINE, SERVICE, metrics_endpoint, pod_labels
from infra.plan import DeploymentPlan
from workloads.contract import SEARCH_PROBES, level_bound, search_bounds

GATE = "leanrag-benchmark-gate"
RESULT_CONFIGMAP = "leanrag-gate-result"


QUALITY_REFERENCE = "quality-reference.json"  # workloads.quantize.core writes it


def gate_plan_json(plan: DeploymentPlan) -> str:
    """What the gate needs from the plan: targets, prediction, traffic shape."""
    return json.dumps(
        {
            "stack": plan.stack,
            "gate": dataclasses.asdict(plan.gate),
            "model": {"name": plan.model.name, "random_weights": plan.model.random_weights},
        },
        indent=2,
        sort_keys=True,
    )


def build(plan: DeploymentPlan) -> Bundle:
    if plan.platform == "local" or plan.images is None:
        return Bundle(concern="benchmark")
    namespace = plan.namespaces.serving
    port, scheme = metrics_endpoint(plan)
    # The gate reaches the model servers through its own Services, so it measures exactly
    # the optimized (and baseline) replicas, whatever the gateway implementation.
    services = [{"name": f"{SERVICE}-gate", "selector": pod_labels("optimized"), "port": port}]
    # The Service above balances over the replicas; their prefix-cache counters are read from
    # each one (is the uncached run uncached, the shared document served from the cache?):
    # a headless Service's name resolves to every ready replica.
    replicas = f"{SERVICE}-gate-replicas"
    services.append(
        {"name": replicas, "selector": pod_labels("optimized"), "port": port, "headless": True}
    )
    args = [
        "--plan",
        "/plan/plan.json",
        "--target",
        f"{scheme}://{SERVICE}-gate.{namespace}.svc.cluster.local:{port}",
        "--out",
        "/results",
        "--publish-configmap",
        RESULT_CONFIGMAP,
        "--metrics-service",
        f"{scheme}://{replicas}.{namespace}.svc.cluster.local:{port}/metrics",
    ]
    if plan.baseline_comparison:
        services.append(
            {"name": f"{BASELINE}-gate", "selector": pod_labels("baseline"), "port": port}
        )
        args += [
            "--baseline-target",
            f"{scheme}://{BASELINE}-gate.{namespace}.svc.cluster.local:{port}",
        ]
    if scheme == "https":
        args.append("--insecure")  # vLLM's in-cluster certificate is self-signed
    # The tokenizer sits beside the served weights: read it there, not from a model hub.
    model_volume = None
    if plan.model.checkpoint_uri.startswith("pvc://"):
        claim, _, path = plan.model.checkpoint_uri.removeprefix("pvc://").partition("/")
        model_volume = {"claim": claim}
        folder = f"/mnt/models/{path}".rstrip("/")
        args += ["--tokenizer", folder]
        if plan.model.needs_compression and plan.model.quality_budget is not None:
            # The live quality check replays what the quantize Job recorded beside the
            # checkpoint it published (an s3:// checkpoint is not mounted: no live check).
            args += ["--quality-reference", f"{folder}/{QUALITY_REFERENCE}"]
    # Each level and probe is bounded by its own time limit (3 × its predicted duration).
    level_s = level_bound(plan.gate, plan.gate.concurrency).time_limit_s
    search_s = sum(b.time_limit_s for b in search_bounds(plan.gate, SEARCH_PROBES))
    per_endpoint = level_s * (2 if plan.gate.shared_prefix_tokens else 1) + search_s
    endpoints = 2 if plan.baseline_comparison else 1
    objects = render(
        "benchmark/gate-job.yaml.j2",
        name=GATE,
        namespace=namespace,
        labels={**PART_OF, "leanrag.io/role": "benchmark-gate"},
        plan_json=gate_plan_json(plan),
        result_configmap=RESULT_CONFIGMAP,
        services=services,
        image=plan.images.benchmark,
        args=args,
        model_volume=model_volume,
        timeout_seconds=math.ceil(endpoints * per_endpoint) + 600,
    )
    return Bundle(concern="benchmark", objects=tuple(objects))
