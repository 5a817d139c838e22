"""The Pulumi program: stack config → plan → components → stack outputs.

`infra/__main__.py` calls `main()`; tests call `plan_from_pulumi()` and `deploy()` under
Pulumi mocks. Nothing is registered before the configuration has been validated and the
workload shown to fit, so a bad stack applies nothing.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.builders.benchmark import GATE, RESULT_CONFIGMAP
from infra.builders.stack import DEPENDS_ON, platform_bundles
from infra.errors import ConfigError
from infra.k8s_apply import BundleArgs, BundleComponent
from infra.plan import DeploymentPlan, build_plan
from infra.platform_components import COMPONENTS, ServingArgs
from infra.report import plan_as_dict
from infra.stack_source import load_from_pulumi


def plan_from_pulumi() -> DeploymentPlan:
    """Validate the running stack's configuration and plan it; stop cleanly when it is bad."""
    try:
        config = load_from_pulumi()
    except ConfigError as error:
        raise pulumi.RunError(error.message) from None
    plan = build_plan(config, pulumi.get_stack())
    if plan.platform == "local":
        raise pulumi.RunError(
            f"stack {plan.stack} is the local stack (no cluster): run `leanrag local up` instead"
        )
    if not plan.fits:
        details = "; ".join(f"{p.what} — smallest fix: {p.fix}" for p in plan.problems)
        raise pulumi.RunError(f"stack {plan.stack}: the workload does not fit: {details}")
    return plan


def deploy(plan: DeploymentPlan) -> dict[str, Any]:
    """Create the stack's resources from the plan; return the stack outputs."""
    components: dict[str, BundleComponent] = {}
    for bundle in platform_bundles(plan):
        after = [
            components[c]
            for c in ("namespaces", *DEPENDS_ON.get(bundle.concern, ()))
            if c in components and c != bundle.concern
        ]
        # Pods of these concerns read the stack's secrets (model hub token, S3 keys).
        secret_namespaces = {"serving": plan.namespaces.serving, "rag": plan.namespaces.rag}
        args = (
            ServingArgs(bundle, secret_namespaces[bundle.concern], _secret_values(plan))
            if bundle.concern in secret_namespaces
            else BundleArgs(bundle)
        )
        components[bundle.concern] = COMPONENTS[bundle.concern](
            bundle.concern, args, pulumi.ResourceOptions(depends_on=after)
        )
    outputs: dict[str, Any] = {}
    if "benchmark" in components:
        outputs["gateVerdict"] = _gate_verdict(plan, components["benchmark"])
    return outputs | {
        "platformConcerns": list(components),
        "plan": plan_as_dict(plan),
        "vllmArgs": plan.vllm.as_cli(),
        "replicas": plan.sizing.replicas,
        "gpus": plan.sizing.gpus,
        "predictedRequestsPerSecond": plan.gate.predicted_requests_per_s,
        "costPerRequestUsd": plan.sizing.cost_per_request_usd,
    }


def _gate_verdict(plan: DeploymentPlan, gate: BundleComponent) -> pulumi.Output[str]:
    """Read the gate's result ConfigMap once its Job has finished (unknown during preview)."""
    namespace = plan.namespaces.serving
    job = gate.resources[f"job/{namespace}/{GATE}"]
    assert isinstance(job, k8s.batch.v1.Job)
    # An id derived from the Job's output defers the read until the Job exists and is done.
    result_id = job.metadata.apply(lambda _: f"{namespace}/{RESULT_CONFIGMAP}")
    result = k8s.core.v1.ConfigMap.get(
        "gate-result", result_id, opts=pulumi.ResourceOptions(depends_on=[job])
    )
    return result.data.apply(lambda data: (data or {}).get("verdict", "unknown"))


def _secret_values(plan: DeploymentPlan) -> dict[str, pulumi.Output[str]]:
    """The secret values themselves, read only here, only as Pulumi secrets."""
    config = pulumi.Config("leanrag")
    return {name: config.require_secret(name) for name in plan.secrets}


def main() -> None:
    for name, value in deploy(plan_from_pulumi()).items():
        pulumi.export(name, value)
