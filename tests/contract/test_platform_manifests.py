"""Every object each stack would apply validates against its upstream schema."""

from __future__ import annotations

from typing import Any

import pytest

from infra.builders.stack import platform_bundles
from infra.config import validate_stack
from infra.plan import DeploymentPlan, build_plan
from infra.render import bundle_files
from tests.conftest import CLUSTER_STACKS, edited, stack_raw
from tests.contract.crd_sources import NO_SCHEMAS
from tests.contract.schemas import (
    CRDS,
    SAMPLES,
    WITHOUT_UPSTREAM_SCHEMA,
    builtin_errors,
    crd_schemas,
    custom_resource_errors,
    is_builtin,
    sample_shape_errors,
)

pytestmark = pytest.mark.skipif(not CRDS.is_dir(), reason=NO_SCHEMAS)


def _kubernetes(raw: dict[str, Any]) -> dict[str, Any]:
    raw = edited(raw, "platform", "kubernetes")
    raw = edited(raw, "gpuPool.aws")
    return edited(raw, "gpuPool.clusterAutoscaler")


VARIANTS = {
    **{stack: lambda stack=stack: stack_raw(stack) for stack in CLUSTER_STACKS},
    "prod-kubernetes": lambda: _kubernetes(stack_raw("prod")),
    "prod-standalone-inferencepool": lambda: edited(
        stack_raw("prod"), "serving.api", "inferenceservice"
    ),
    "prod-prefill-decode": lambda: edited(stack_raw("prod"), "features.prefillDecodeSplit", True),
    "dev-kubernetes-keda": lambda: _kubernetes(stack_raw("dev")),
    "prod-checkpoint-on-s3": lambda: edited(
        stack_raw("prod"), "serving.checkpointUri", "s3://models/llama-fp8"
    ),
}


def plan_for(variant: str) -> DeploymentPlan:
    return build_plan(validate_stack(VARIANTS[variant](), "test"), variant)


def objects_for(variant: str) -> list[dict[str, Any]]:
    """Every object `leanrag render` writes (Helm charts as their Flux objects)."""
    bundles = platform_bundles(plan_for(variant))
    return [obj for bundle in bundles for obj in bundle_files(bundle).values()]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_object_validates_against_its_upstream_schema(variant: str) -> None:
    plan = plan_for(variant)
    failures: dict[str, list[str]] = {}
    for obj in objects_for(variant):
        key = (obj["apiVersion"], obj["kind"])
        if is_builtin(obj):
            errors = builtin_errors(obj, plan.kubernetes_version or "1.33")
        elif key in SAMPLES:
            errors = sample_shape_errors(obj)
        elif key in WITHOUT_UPSTREAM_SCHEMA:
            errors = [] if obj.get("spec") is not None else ["no spec"]
        elif key in crd_schemas():
            errors = custom_resource_errors(obj)
        else:
            errors = [f"no upstream schema for {key}: add its CRD to the contract"]
        if errors:
            failures[f"{obj['kind']}/{obj['metadata']['name']}"] = errors
    assert not failures, failures


def test_the_schema_check_rejects_unknown_fields() -> None:
    gateway = next(o for o in objects_for("prod") if o["kind"] == "Gateway")
    broken = {**gateway, "spec": {**gateway["spec"], "listenerz": []}}
    assert any("listenerz" in e for e in custom_resource_errors(broken))
    subscription = next(o for o in objects_for("prod") if o["kind"] == "Subscription")
    missing = {**subscription, "spec": {"channel": "stable"}}
    assert custom_resource_errors(missing)


def test_the_builtin_check_rejects_unknown_fields() -> None:
    namespace = next(o for o in objects_for("prod") if o["kind"] == "Namespace")
    assert builtin_errors({**namespace, "spek": {}}, "1.33")


def test_the_sample_check_rejects_unknown_components() -> None:
    dsc = next(o for o in objects_for("prod") if o["kind"] == "DataScienceCluster")
    broken = {
        **dsc,
        "spec": {"components": {"kserve": {"managementState": "On"}, "quantumcomputer": {}}},
    }
    errors = sample_shape_errors(broken)
    assert any("quantumcomputer" in e for e in errors)
    assert any("'On'" in e for e in errors)


def test_only_documented_kinds_lack_a_schema() -> None:
    emitted = {(o["apiVersion"], o["kind"]) for v in VARIANTS for o in objects_for(v)}
    unchecked = {k for k in emitted if k not in crd_schemas() and k not in SAMPLES}
    unchecked -= {
        (o["apiVersion"], o["kind"]) for v in VARIANTS for o in objects_for(v) if is_builtin(o)
    }
    assert unchecked == set(WITHOUT_UPSTREAM_SCHEMA)
