"""The post-deploy benchmark gate Job (GuideLLM against the live service)."""

from __future__ import annotations

import dataclasses
import json

from infra.builders.bundle import PART_OF, Bundle, render
from infra.builders.serving import BASELINE, SERVICE, metrics_endpoint, pod_labels
from infra.plan import DeploymentPlan

GATE = "leanrag-benchmark-gate"
RESULT_CONFIGMAP = "leanrag-gate-result"
SECONDS_PER_LEVEL = 60


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
    args = [
        "--plan",
        "/plan/plan.json",
        "--target",
        f"{scheme}://{SERVICE}-gate.{namespace}.svc.cluster.local:{port}",
        "--seconds",
        str(SECONDS_PER_LEVEL),
        "--out",
        "/results",
        "--publish-configmap",
        RESULT_CONFIGMAP,
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
        args += ["--tokenizer", f"/mnt/models/{path}".rstrip("/")]
    runs = 3 * (2 if plan.gate.shared_prefix_tokens else 1) * (2 if plan.baseline_comparison else 1)
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
        timeout_seconds=runs * (SECONDS_PER_LEVEL + 60) + 600,
    )
    return Bundle(concern="benchmark", objects=tuple(objects))
