"""The policy pack: every stack passes its environment's enforcement; each break trips exactly
the policy that guards it."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, Secret

from infra.builders.stack import platform_bundles
from infra.plan import build_plan
from infra.stack_source import load_stack
from policies.pack import as_object, build_policies
from policies.rules import RESOURCE_RULES, STACK_RULES, no_secret_values, violations

CONFIG = Path(__file__).resolve().parents[2] / "policies" / "config"
Obj = dict[str, Any]


def stack_objects(stack: str) -> list[Obj]:
    plan = build_plan(load_stack(stack), stack)
    return [copy.deepcopy(o) for b in platform_bundles(plan) for o in b.objects]


def mandatory(found: dict[str, list[str]], environment: str) -> dict[str, list[str]]:
    config = json.loads((CONFIG / f"{environment}.json").read_text())
    levels = {p.name: p.enforcement_level for p in build_policies()}

    def level(name: str) -> str:
        return config.get(name, config.get("all", levels[name].value))

    return {name: messages for name, messages in found.items() if level(name) == "mandatory"}


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_passes_its_environment(stack: str) -> None:
    assert mandatory(violations(stack_objects(stack)), stack) == {}


def test_prod_passes_even_the_advisory_policies_but_read_only_root() -> None:
    assert set(violations(stack_objects("prod"))) == {"root-filesystem-is-read-only"}


def test_dev_only_misses_what_dev_relaxes() -> None:
    assert set(violations(stack_objects("dev"))) == {
        "root-filesystem-is-read-only",
        "serving-is-highly-available",
    }


def find(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    return next(
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    )


def vllm(objects: list[Obj]) -> Obj:
    return find(objects, "LLMInferenceService", "leanrag-llm")["spec"]["template"]["containers"][0]


def _set_arg(container: Obj, flag: str, value: str) -> None:
    args = container["args"]
    args[args.index(flag) + 1] = value


def _drop_default_deny(objects: list[Obj], namespace: str) -> None:
    objects.remove(
        next(
            p
            for p in objects
            if p["kind"] == "NetworkPolicy"
            and p["metadata"]["name"] == "default-deny"
            and p["metadata"]["namespace"] == namespace
        )
    )


BREAKS: dict[str, tuple[Callable[[list[Obj]], None], set[str]]] = {
    "latest image": (
        lambda o: vllm(o).update(image="docker.io/vllm/vllm-openai:latest"),
        {"images-are-pinned"},
    ),
    "untagged image": (
        lambda o: find(o, "Job", "leanrag-benchmark-gate")["spec"]["template"]["spec"][
            "containers"
        ][0].update(image="quay.io/leanrag/benchmark"),
        {"images-are-pinned"},
    ),
    "privileged gate": (
        lambda o: find(o, "Job", "leanrag-benchmark-gate")["spec"]["template"]["spec"][
            "containers"
        ][0]["securityContext"].update(privileged=True),
        {"pods-are-restricted"},
    ),
    "host network": (
        lambda o: find(o, "Job", "leanrag-quantize")["spec"]["template"]["spec"].update(
            hostNetwork=True
        ),
        {"pods-are-restricted"},
    ),
    "no gpu limits": (
        lambda o: vllm(o)["resources"]["limits"].pop("memory"),
        {"gpu-workloads-are-bounded"},
    ),
    "no gpu toleration": (
        lambda o: find(o, "LLMInferenceService")["spec"]["template"].update(tolerations=[]),
        {"gpu-workloads-are-bounded"},
    ),
    "token in plain env": (
        lambda o: vllm(o)["env"].append({"name": "HF_TOKEN", "value": "hf_x"}),
        {"no-secret-values"},
    ),
    "16-bit kv cache": (
        lambda o: _set_arg(vllm(o), "--kv-cache-dtype", "auto"),
        {"serving-is-lean"},
    ),
    "utilization 0.99": (
        lambda o: _set_arg(vllm(o), "--gpu-memory-utilization", "0.99"),
        {"serving-is-lean"},
    ),
    "uncompressed model": (
        lambda o: find(o, "LLMInferenceService")["metadata"]["labels"].update(
            {"leanrag.io/quantization": "none"}
        ),
        {"serving-is-lean"},
    ),
    "prefix caching off": (
        lambda o: vllm(o)["args"].remove("--enable-prefix-caching"),
        {"serving-is-lean"},
    ),
    "scaling min above max": (
        lambda o: find(o, "LLMInferenceService")["spec"]["scaling"].update(minReplicas=20),
        {"autoscaling-is-bounded"},
    ),
    "one replica": (
        lambda o: find(o, "LLMInferenceService")["spec"]["scaling"].update(minReplicas=1),
        {"serving-is-highly-available"},
    ),
    "no disruption budget": (
        lambda o: o.remove(find(o, "PodDisruptionBudget")),
        {"serving-is-highly-available"},
    ),
    "no default deny": (
        lambda o: _drop_default_deny(o, "leanrag-rag"),
        {"namespaces-default-deny"},
    ),
    "operator namespace without default deny": (
        lambda o: _drop_default_deny(o, "openshift-keda"),
        {"namespaces-default-deny"},
    ),
    "no gate": (
        lambda o: o.remove(find(o, "Job", "leanrag-benchmark-gate")),
        {"benchmark-gate-exists"},
    ),
    "wildcard verbs": (
        lambda o: find(o, "Role", "leanrag-benchmark-gate")["rules"][0].update(verbs=["*"]),
        {"rbac-is-least-privilege"},
    ),
    "wildcard resources": (
        lambda o: find(o, "Role", "leanrag-benchmark-gate")["rules"][0].update(resources=["*"]),
        {"rbac-is-least-privilege"},
    ),
    "secrets listed": (
        lambda o: find(o, "Role", "leanrag-benchmark-gate")["rules"].append(
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}
        ),
        {"rbac-is-least-privilege"},
    ),
    "role can escalate": (
        lambda o: find(o, "Role", "leanrag-benchmark-gate")["rules"].append(
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"]}
        ),
        {"rbac-is-least-privilege"},
    ),
    "cluster-admin binding": (
        lambda o: find(o, "ClusterRoleBinding")["roleRef"].update(name="cluster-admin"),
        {"rbac-is-least-privilege"},
    ),
}


@pytest.mark.parametrize("change", sorted(BREAKS))
def test_each_break_violates_exactly_its_policy(change: str) -> None:
    objects = stack_objects("prod")
    mutate, expected = BREAKS[change]
    mutate(objects)
    found = violations(objects)
    assert set(mandatory(found, "prod")) == expected, found


def test_secret_objects_must_hold_pulumi_secrets() -> None:
    plain = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "stringData": {"token": "hf_abc"},
    }
    assert no_secret_values(plain)
    wrapped = {**plain, "stringData": {"token": Secret("hf_abc")}}
    assert no_secret_values(wrapped) == []
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"S3_SECRET_ACCESS_KEY": "x"},
    }
    assert no_secret_values(config_map)


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("HF_TOKEN", True),
        ("GITHUB_TOKEN_FILE", True),
        ("hfToken", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("OPENAI_API_KEY", True),
        ("MAX_TOKENS", False),
        ("LEANRAG_DETOKENIZER_PRIME_TOKENS", False),
        ("TOKENIZERS_PARALLELISM", False),
    ],
)
def test_secret_names_are_credentials_not_token_counts(name: str, sensitive: bool) -> None:
    job = find(stack_objects("prod"), "Job", "leanrag-benchmark-gate")
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [*(container.get("env") or []), {"name": name, "value": "x"}]
    assert bool(no_secret_values(job)) is sensitive


def test_digest_pinned_images_pass() -> None:
    job = find(stack_objects("prod"), "Job", "leanrag-benchmark-gate")
    job["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "quay.io/leanrag/benchmark@sha256:" + "a" * 64
    )
    assert RESOURCE_RULES["images-are-pinned"](job) == []


def test_pack_wires_every_rule_with_its_default_level() -> None:
    policies = {p.name: p for p in build_policies()}
    assert set(policies) == set(RESOURCE_RULES) | set(STACK_RULES)
    assert policies["root-filesystem-is-read-only"].enforcement_level == EnforcementLevel.ADVISORY
    assert policies["pods-are-restricted"].enforcement_level == EnforcementLevel.MANDATORY


def test_pack_reads_pulumi_resources_as_kubernetes_objects() -> None:
    gate = find(stack_objects("prod"), "Job", "leanrag-benchmark-gate")
    props = {k: v for k, v in gate.items() if k not in ("apiVersion", "kind")}
    gate["spec"]["template"]["spec"]["containers"][0]["image"] = "quay.io/x/y:latest"
    reported: list[str] = []
    policy = next(p for p in build_policies() if p.name == "images-are-pinned")
    policy.validate(
        SimpleNamespace(resource_type="kubernetes:batch/v1:Job", props=props),
        lambda message, urn: reported.append(message),
    )
    assert reported and "quay.io/x/y:latest" in reported[0]
    assert as_object("kubernetes:core/v1:Namespace", {})["apiVersion"] == "v1"
    assert as_object("kubernetes:helm.sh/v4:Chart", {}) is None
    assert as_object("leanrag:platform:Keda", {}) is None


def test_stack_policy_sees_the_whole_stack() -> None:
    objects = [o for o in stack_objects("prod") if o["kind"] != "Job"]
    resources = [
        SimpleNamespace(
            resource_type=f"kubernetes:{o['apiVersion']}:{o['kind']}"
            if "/" in o["apiVersion"]
            else f"kubernetes:core/v1:{o['kind']}",
            props=o,
        )
        for o in objects
    ]
    reported: list[str] = []
    policy = next(p for p in build_policies() if p.name == "benchmark-gate-exists")
    policy.validate(SimpleNamespace(resources=resources), lambda m, urn: reported.append(m))
    assert reported == ["add the benchmark gate Job (leanrag.io/role: benchmark-gate)"]


def test_keda_scales_out_before_vllm_sheds() -> None:
    """With admission control on (a vLLM that has it), the plan's KEDA target sits below the
    queue vLLM still admits; a target above it is a violation."""
    from infra.config import validate_stack
    from tests.conftest import edited, stack_raw

    raw = edited(stack_raw("prod"), "images.vllm", "docker.io/vllm/vllm-openai:v0.29.0")
    plan = build_plan(validate_stack(raw, "prod-vllm-0.29"), "prod")
    objects = [copy.deepcopy(o) for b in platform_bundles(plan) for o in b.objects]
    serving = find(objects, "LLMInferenceService", "leanrag-llm")
    assert "--max-num-queued-reqs" in json.dumps(serving)
    assert "autoscaling-before-shedding" not in violations(objects)
    for trigger in serving["spec"]["scaling"]["keda"]["triggers"]:
        if "num_requests_waiting" in trigger["metadata"]["query"]:
            trigger["metadata"]["threshold"] = str(plan.admission.max_num_queued_reqs)
    assert set(mandatory(violations(objects), "prod")) == {"autoscaling-before-shedding"}


def _keda_triggers(objects: list[dict]) -> list[dict]:
    return [
        trigger
        for o in objects
        if o["kind"] in ("LLMInferenceService", "ScaledObject")
        for trigger in (
            o["spec"]["scaling"]["keda"]["triggers"]
            if o["kind"] == "LLMInferenceService"
            else o["spec"]["triggers"]
        )
    ]


def test_keda_scales_out_before_the_endpoint_picker_sheds() -> None:
    """The picker's flow control holds requests once a replica's waiting queue or KV-cache use
    reaches its thresholds; KEDA's targets sit below both, in prod as planned, and a KEDA
    target at or above either one is a violation — in the inline config and the standalone
    picker's ConfigMap alike."""
    from infra.config import validate_stack
    from tests.conftest import edited, stack_raw

    for api in ("llminferenceservice", "inferenceservice"):
        plan = build_plan(validate_stack(edited(stack_raw("prod"), "serving.api", api), "p"), "p")
        objects = [copy.deepcopy(o) for b in platform_bundles(plan) for o in b.objects]
        assert "autoscaling-before-shedding" not in violations(objects), api
        assert plan.autoscaling.waiting_requests_per_replica < plan.shedding.queue_depth_threshold
        assert plan.autoscaling.kv_cache_usage_threshold < plan.shedding.kv_cache_util_threshold
        for metric, raised in (
            ("num_requests_waiting", plan.shedding.queue_depth_threshold),
            ("kv_cache_usage_perc", plan.shedding.kv_cache_util_threshold),
        ):
            broken = copy.deepcopy(objects)
            triggers = [t for t in _keda_triggers(broken) if metric in t["metadata"]["query"]]
            assert triggers, (api, metric)
            for trigger in triggers:
                trigger["metadata"]["threshold"] = str(raised)
            messages = violations(broken).get("autoscaling-before-shedding", [])
            assert any("endpoint picker" in m and metric in m for m in messages), (api, metric)


def test_the_readme_lists_every_service_account_and_its_roles() -> None:
    """The README's table names each service account any stack variant creates, and each
    account the stacks bind a role to; the table cannot drift from the manifests."""
    from infra.config import validate_stack
    from tests.conftest import edited, stack_raw

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("### Service accounts and what they may do", 1)[1].split("\n### ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \(", table, flags=re.M))
    created: set[str] = set()
    for raw in (stack_raw("prod"), edited(stack_raw("prod"), "serving.api", "inferenceservice")):
        objects = stack_objects_of(build_plan(validate_stack(raw, "p"), "p"))
        created |= {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"}
        for binding in (o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
            created |= {s["name"] for s in binding["subjects"] if s["kind"] == "ServiceAccount"}
    # The KEDA operator's own account (bound to mint the Prometheus token) is the operator's.
    assert listed == created - {"keda-operator"}, listed ^ created


def stack_objects_of(plan: Any) -> list[Obj]:
    return [copy.deepcopy(o) for b in platform_bundles(plan) for o in b.objects]
