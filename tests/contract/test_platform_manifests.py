"""Every object each stack would apply validates against its upstream schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

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


EPP_CONFIG_SCHEMA = Path(__file__).with_name("schemas") / "endpoint_picker_config.schema.json"


def endpoint_picker_configs(variant: str) -> list[dict[str, Any]]:
    """The picker configurations a variant ships: inline in the LLMInferenceServiceConfig, or
    the standalone picker's ConfigMap."""
    found = []
    for obj in objects_for(variant):
        if obj["kind"] == "LLMInferenceServiceConfig":
            found.append(obj["spec"]["router"]["scheduler"]["config"]["inline"])
        elif obj["kind"] == "ConfigMap" and "epp-config.yaml" in obj.get("data", {}):
            found.append(yaml.safe_load(obj["data"]["epp-config.yaml"]))
    return found


def epp_config_errors(config: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(EPP_CONFIG_SCHEMA.read_text()))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(config)]
    declared = {p.get("name") or p["type"] for p in config.get("plugins", [])}
    references = [r["pluginRef"] for p in config["schedulingProfiles"] for r in p["plugins"]]
    references += [
        section["pluginRef"]
        for section in (
            config.get("saturationDetector"),
            (config.get("flowControl") or {}).get("saturationDetector"),
        )
        if section
    ]
    errors += [f"{ref} is referenced but not declared" for ref in references if ref not in declared]
    if config.get("flowControl") and "flowControl" not in config.get("featureGates", []):
        errors.append("flowControl is configured but its feature gate is off")
    return errors


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_endpoint_picker_configuration_validates(variant: str) -> None:
    configs = endpoint_picker_configs(variant)
    assert configs, "every cluster stack routes through llm-d's endpoint picker"
    for config in configs:
        assert not epp_config_errors(config), epp_config_errors(config)


def test_the_picker_sheds_with_the_plans_thresholds() -> None:
    """Flow control is on, with the thresholds the plan derived from its capacity at the SLO."""
    plan = plan_for("prod")
    (config,) = endpoint_picker_configs("prod")
    (detector,) = [p for p in config["plugins"] if p["type"] == "utilization-detector"]
    assert detector["parameters"] == {
        "queueDepthThreshold": plan.shedding.queue_depth_threshold,
        "kvCacheUtilThreshold": plan.shedding.kv_cache_util_threshold,
    }
    flow = config["flowControl"]
    assert flow["defaultRequestTTL"] == f"{plan.gate.ttft_p95_ms / 1e3:g}s"
    assert flow["maxRequests"] == str(plan.shedding.max_queued_requests)
    assert flow["saturationDetector"] == {"pluginRef": "utilization-detector"}


def test_the_picker_schema_rejects_what_the_picker_rejects() -> None:
    """Parameters moved in the llm-d router (the prefix scorer's into its producer) fail the
    picker's strict decoding at start-up; the check catches them, and bad flow-control values."""
    (config,) = endpoint_picker_configs("prod")
    stale = copy.deepcopy(config)
    scorer = next(p for p in stale["plugins"] if p["type"] == "prefix-cache-scorer")
    scorer["parameters"] = {"hashBlockSize": 16}
    assert epp_config_errors(stale)
    bad_ttl = copy.deepcopy(config)
    bad_ttl["flowControl"]["defaultRequestTTL"] = "2 seconds"
    assert epp_config_errors(bad_ttl)
    undeclared = copy.deepcopy(config)
    undeclared["plugins"] = [p for p in config["plugins"] if p["type"] != "utilization-detector"]
    assert any("utilization-detector" in e for e in epp_config_errors(undeclared))
