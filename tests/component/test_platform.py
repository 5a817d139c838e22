"""Platform components under Pulumi mocks: what is registered, under which parent, after what."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pytest

import infra.k8s_apply as k8s_apply
import infra.program as program
from infra.builders.bundle import object_key, wave
from infra.builders.stack import platform_bundles
from infra.program import deploy, plan_from_pulumi
from tests.component.pulumi_harness import RecordingMocks, start
from tests.conftest import CLUSTER_STACKS, edited, stack_raw


@dataclass
class Recorded:
    mocks: RecordingMocks
    children: dict[str, tuple[Any, list[Any]]] = field(default_factory=dict)  # key → parent, deps
    component_deps: dict[str, list[str]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    bundles: list[Any] = field(default_factory=list)


def run_stack(
    stack: str,
    raw: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    secret_keys: tuple[str, ...] = (),
) -> Recorded:
    """Run the real program under mocks, recording parents and dependencies as they are set."""
    names: dict[int, str] = {}
    recorded: Recorded | None = None

    def recording(create: Any, key_of: Any) -> Any:
        def wrapper(item: Any, opts: pulumi.ResourceOptions) -> Any:
            resource = create(item, opts)
            key = key_of(item)
            names[id(resource)] = key
            deps = [names.get(id(d), f"prepared:{d._name}") for d in opts.depends_on]
            recorded.children[key] = (opts.parent, deps)
            return resource

        return wrapper

    monkeypatch.setattr(k8s_apply, "create_object", recording(k8s_apply.create_object, object_key))
    monkeypatch.setattr(
        k8s_apply,
        "create_chart",
        recording(k8s_apply.create_chart, lambda c: f"helmchart/{c.namespace}/{c.release}"),
    )
    monkeypatch.setattr(
        k8s_apply, "create_remote", recording(k8s_apply.create_remote, lambda m: f"remote/{m.name}")
    )

    components = dict(program.COMPONENTS)

    def recording_component(concern: str, base: type) -> type:
        class Recording(base):  # type: ignore[misc, valid-type]
            TYPE = base.TYPE

            def __init__(self, name: str, args: Any, opts: pulumi.ResourceOptions) -> None:
                recorded.component_deps[concern] = [names[id(d)] for d in opts.depends_on]
                super().__init__(name, args, opts)
                names[id(self)] = concern

        return Recording

    monkeypatch.setattr(
        program,
        "COMPONENTS",
        {concern: recording_component(concern, cls) for concern, cls in components.items()},
    )

    @pulumi.runtime.test
    def run() -> None:
        nonlocal recorded
        recorded = Recorded(mocks=start(stack, raw, secret_keys))
        plan = plan_from_pulumi()
        recorded.bundles = platform_bundles(plan)
        recorded.outputs = deploy(plan)

    run()
    assert recorded is not None
    return recorded


def kubernetes_raw(stack: str) -> dict[str, Any]:
    raw = edited(stack_raw(stack), "platform", "kubernetes")
    return edited(edited(raw, "gpuPool.aws"), "gpuPool.clusterAutoscaler")


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_every_bundle_object_is_registered_once(stack: str, monkeypatch) -> None:
    recorded = run_stack(stack, stack_raw(stack), monkeypatch)
    expected = {k8s_apply.logical_name(o) for b in recorded.bundles for o in b.objects}
    # Everything registered, less the one read: the gate's result ConfigMap.
    registered = [
        r.name
        for r in recorded.mocks.resources
        if r.typ.startswith("kubernetes:") and r.name != "gate-result"
    ]
    charts = sum(len(b.charts) + len(b.remote) for b in recorded.bundles)
    assert expected <= set(registered)
    assert len(registered) == len(set(registered)) == len(expected) + charts
    components = {r.typ for r in recorded.mocks.resources if r.typ.startswith("leanrag:")}
    assert components == {program.COMPONENTS[b.concern].TYPE for b in recorded.bundles}
    assert recorded.outputs["platformConcerns"] == [b.concern for b in recorded.bundles]


def test_children_hang_under_their_component_in_wave_order(monkeypatch) -> None:
    recorded = run_stack("prod", stack_raw("prod"), monkeypatch)
    for bundle in recorded.bundles:
        keys = {object_key(o): wave(o) for o in bundle.objects}
        for key, level in keys.items():
            parent, deps = recorded.children[key]
            assert isinstance(parent, program.COMPONENTS[bundle.concern])
            earlier = {k for k, w in keys.items() if w < level}
            assert earlier <= set(deps), (key, deps)
            assert not any(keys.get(d, -1) >= level for d in deps)
    # Custom resources wait for the operator that serves their CRD.
    _, cluster_policy_deps = recorded.children["clusterpolicy/_cluster/gpu-cluster-policy"]
    assert "subscription/nvidia-gpu-operator/gpu-operator-certified" in cluster_policy_deps
    _, dsc_deps = recorded.children["datasciencecluster/_cluster/default-dsc"]
    assert "subscription/redhat-ods-operator/rhods-operator" in dsc_deps


def test_concerns_wait_for_namespaces_and_the_serving_platform(monkeypatch) -> None:
    recorded = run_stack("prod", stack_raw("prod"), monkeypatch)
    deps = recorded.component_deps
    assert deps["namespaces"] == []
    assert all("namespaces" in d for c, d in deps.items() if c != "namespaces")
    assert "openshift-ai" in deps["llm-d"]
    assert {"gpu-operator", "milvus", "openshift-ai"} <= set(deps["observability"])


def test_plain_kubernetes_swaps_olm_for_charts(monkeypatch) -> None:
    recorded = run_stack("prod", kubernetes_raw("prod"), monkeypatch)
    types = {r.typ for r in recorded.mocks.resources}
    assert "leanrag:platform:KServe" in types
    assert "leanrag:platform:OpenShiftAI" not in types
    assert "leanrag:platform:GpuNodePool" not in types
    assert "kubernetes:operators.coreos.com/v1alpha1:Subscription" not in types
    charts = {
        r.inputs.get("chart")
        for r in recorded.mocks.resources
        if r.typ == "kubernetes:helm.sh/v4:Chart"
    }
    assert "gpu-operator" in charts
    assert "oci://ghcr.io/kserve/charts/kserve-llmisvc-crd" in charts
    assert "kubernetes:yaml/v2:ConfigFile" in types
    chart_deps = recorded.children["helmchart/gpu-operator/gpu-operator"][1]
    assert "namespace/_cluster/gpu-operator" in chart_deps


TOGGLES = [
    (
        "llm-d off",
        "features.llmdRouter",
        False,
        "leanrag:platform:LlmD",
        "kubernetes:gateway.networking.k8s.io/v1:Gateway",
    ),
    (
        "keda off",
        "features.keda",
        False,
        "leanrag:platform:Keda",
        "kubernetes:keda.sh/v1alpha1:TriggerAuthentication",
    ),
    (
        "milvus external",
        "features",
        {"milvus": "external", "milvusUri": "http://m.example:19530"},
        "leanrag:platform:Milvus",
        "kubernetes:milvus.io/v1beta1:Milvus",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "component", "kind"), [t[1:] for t in TOGGLES], ids=[t[0] for t in TOGGLES]
)
def test_feature_toggles_remove_their_resources(path, value, component, kind, monkeypatch) -> None:
    on = {r.typ for r in run_stack("prod", stack_raw("prod"), monkeypatch).mocks.resources}
    off = {
        r.typ
        for r in run_stack(
            "prod", edited(stack_raw("prod"), path, value), monkeypatch
        ).mocks.resources
    }
    assert {component, kind} <= on
    assert not {component, kind} & off


def test_standalone_inference_pool_replaces_the_router_preset(monkeypatch) -> None:
    raw = edited(stack_raw("prod"), "serving.api", "inferenceservice")
    types = {r.typ for r in run_stack("prod", raw, monkeypatch).mocks.resources}
    assert "kubernetes:inference.networking.k8s.io/v1:InferencePool" in types
    assert "kubernetes:apps/v1:Deployment" in types
    assert "kubernetes:serving.kserve.io/v1alpha2:LLMInferenceServiceConfig" not in types


def test_serving_waits_for_compression_and_creates_secrets_from_pulumi(monkeypatch) -> None:
    raw = edited(stack_raw("prod"), "modelHubToken", "hf_from_pulumi_secret")
    recorded = run_stack("prod", raw, monkeypatch, secret_keys=("modelHubToken",))
    secrets = [r for r in recorded.mocks.resources if r.typ == "kubernetes:core/v1:Secret"]
    assert [s.inputs["metadata"]["name"] for s in secrets] == ["leanrag-model-hub"]
    from pulumi.runtime import rpc

    envelope = secrets[0].inputs["stringData"]
    # The value reaches the provider still wrapped as a Pulumi secret (encrypted in state).
    assert envelope[rpc._special_sig_key] == rpc._special_secret_sig
    assert envelope["value"] == {"token": "hf_from_pulumi_secret"}
    _, job_deps = recorded.children["job/leanrag-serving/leanrag-quantize"]
    assert "persistentvolumeclaim/leanrag-serving/leanrag-models" in job_deps
    assert any(d.startswith("prepared:secret-leanrag-serving-leanrag-model-hub") for d in job_deps)
    _, service_deps = recorded.children["llminferenceservice/leanrag-serving/leanrag-llm"]
    assert "job/leanrag-serving/leanrag-quantize" in service_deps
    serving_after = recorded.component_deps["serving"]
    assert {"gpu-nodes", "gpu-operator", "openshift-ai", "llm-d", "keda"} <= set(serving_after)


def test_rendered_manifests_never_hold_secret_values(tmp_path) -> None:
    from infra.plan import build_plan
    from infra.render import render_stack
    from infra.stack_source import load_stack_file
    from tests.conftest import write_stack

    path = write_stack(tmp_path, "withsecret", stack_raw("prod"))
    path.write_text(path.read_text() + "  leanrag:modelHubToken:\n    secure: v1:ciphertext\n")
    plan = build_plan(load_stack_file(path), "withsecret")
    files = render_stack(plan, tmp_path / "out")
    kinds = {f.name.split(".")[0] for f in files}
    assert "secret" not in kinds
    assert not any("ciphertext" in f.read_text() for f in files)


def test_gate_runs_after_serving_and_its_verdict_is_a_stack_output(monkeypatch) -> None:
    recorded = run_stack("prod", stack_raw("prod"), monkeypatch)
    assert "serving" in recorded.component_deps["benchmark"]
    reads = [r for r in recorded.mocks.resources if r.name == "gate-result"]
    assert [r.resource_id for r in reads] == ["leanrag-serving/leanrag-gate-result"]
    assert isinstance(recorded.outputs["gateVerdict"], pulumi.Output)
