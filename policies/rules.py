"""The policy rules, as pure functions over Kubernetes object shapes.

Each resource rule takes one object (apiVersion, kind, metadata, spec...) and returns its
violations as messages; each stack rule takes every object of the stack. The CrossGuard pack
(`policies/__main__.py`) and the tests call the same functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

GPU = "nvidia.com/gpu"
# A credential's name; token *counts* and tokenizer settings (MAX_TOKENS, DETOKENIZER_...) are not.
SENSITIVE = re.compile(
    r"(TOKEN(?!S(?:$|_)|IZER)|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY)", re.IGNORECASE
)
_TAG = re.compile(r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")
Obj = dict[str, Any]


# --- where pods hide in the kinds this stack emits -------------------------------------------


def pod_specs(obj: Obj) -> Iterator[tuple[str, Obj, list[Obj]]]:
    """(where, pod-level spec, containers) for every pod an object runs."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        pod = (spec.get("template") or {}).get("spec") or {}
        yield "spec.template.spec", pod, _containers(pod)
    elif kind == "CronJob":
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        yield "spec.jobTemplate.spec.template.spec", pod, _containers(pod)
    elif kind == "Pod":
        yield "spec", spec, _containers(spec)
    elif kind == "LLMInferenceService":
        for part in ("template", "prefill", "worker"):
            pod = spec.get(part) or {}
            if part == "prefill":
                pod = pod.get("template") or {}
            if pod:
                yield f"spec.{part}", pod, _containers(pod)
    elif kind == "InferenceService":
        predictor = spec.get("predictor") or {}
        model = predictor.get("model")
        yield "spec.predictor", predictor, _containers(predictor) + ([model] if model else [])
    elif kind == "ServingRuntime":
        yield "spec", spec, _containers(spec)


def _containers(pod: Obj) -> list[Obj]:
    return list(pod.get("initContainers") or []) + list(pod.get("containers") or [])


def _name(obj: Obj) -> str:
    metadata = obj.get("metadata") or {}
    return f"{obj.get('kind')} {metadata.get('namespace', '')}/{metadata.get('name')}".replace(
        " /", " "
    )


def _labels(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


# --- resource rules --------------------------------------------------------------------------


def gpu_workloads_are_bounded(obj: Obj) -> list[str]:
    """GPU containers request and limit GPUs, CPU and memory; their pods land on GPU nodes."""
    found = []
    for where, pod, containers in pod_specs(obj):
        gpu_containers = [c for c in containers if _uses_gpu(c)]
        for container in gpu_containers:
            resources = container.get("resources") or {}
            for section in ("requests", "limits"):
                missing = [
                    r for r in (GPU, "cpu", "memory") if r not in (resources.get(section) or {})
                ]
                if missing:
                    found.append(
                        f"{_name(obj)} {where} container {container.get('name')}: "
                        f"set {section} for {', '.join(missing)}"
                    )
        if gpu_containers:
            tolerations = pod.get("tolerations") or []
            if not any(t.get("key") == GPU for t in tolerations):
                found.append(f"{_name(obj)} {where}: tolerate the {GPU} taint")
            if not pod.get("nodeSelector") and not pod.get("affinity"):
                found.append(f"{_name(obj)} {where}: select GPU nodes (nodeSelector or affinity)")
    return found


def _uses_gpu(container: Obj) -> bool:
    resources = container.get("resources") or {}
    return any(GPU in (resources.get(s) or {}) for s in ("requests", "limits"))


def images_are_pinned(obj: Obj) -> list[str]:
    """Every image has a version tag (never `latest`) or a digest."""
    found = []
    images = [(c.get("name"), c.get("image")) for _, _, cs in pod_specs(obj) for c in cs]
    if obj.get("kind") == "Milvus":
        images.append(("milvus", ((obj.get("spec") or {}).get("components") or {}).get("image")))
    for name, image in images:
        if not image:
            continue
        if "@sha256:" in image:
            continue
        tag = _TAG.search(image.rsplit("/", 1)[-1])
        if tag is None or tag["tag"] == "latest":
            found.append(f"{_name(obj)} container {name}: pin {image!r} by version tag or digest")
    return found


def pods_are_restricted(obj: Obj) -> list[str]:
    """Pod Security "restricted" (OpenShift restricted-v2) compatible pods."""
    found = []
    for where, pod, containers in pod_specs(obj):
        pod_security = pod.get("securityContext") or {}
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(flag):
                found.append(f"{_name(obj)} {where}: {flag} is not allowed")
        for volume in pod.get("volumes") or []:
            if "hostPath" in volume:
                found.append(f"{_name(obj)} {where}: hostPath volume {volume.get('name')}")
        for container in containers:
            security = container.get("securityContext") or {}
            label = f"{_name(obj)} {where} container {container.get('name')}"
            if security.get("privileged"):
                found.append(f"{label}: privileged is not allowed")
            if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
                found.append(f"{label}: set runAsNonRoot: true (pod or container)")
            if security.get("allowPrivilegeEscalation") is not False:
                found.append(f"{label}: set allowPrivilegeEscalation: false")
            if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
                found.append(f"{label}: drop ALL capabilities")
    return found


def root_filesystem_is_read_only(obj: Obj) -> list[str]:
    """Advisory: containers that could run with a read-only root filesystem."""
    return [
        f"{_name(obj)} {where} container {c.get('name')}: consider readOnlyRootFilesystem: true"
        for where, _, containers in pod_specs(obj)
        for c in containers
        if not (c.get("securityContext") or {}).get("readOnlyRootFilesystem")
    ]


def no_secret_values(obj: Obj) -> list[str]:
    """Secrets reach pods only through Secret references, never as literal values."""
    found = []
    for where, _, containers in pod_specs(obj):
        for container in containers:
            for variable in container.get("env") or []:
                if SENSITIVE.search(variable.get("name", "")) and "value" in variable:
                    found.append(
                        f"{_name(obj)} {where} container {container.get('name')}: "
                        f"{variable['name']} must come from a Secret (valueFrom)"
                    )
    if obj.get("kind") == "ConfigMap":
        for key in obj.get("data") or {}:
            if SENSITIVE.search(key):
                found.append(f"{_name(obj)}: key {key!r} looks like a secret; use a Secret")
    if obj.get("kind") == "Secret":
        for section in ("data", "stringData"):
            for key, value in (obj.get(section) or {}).items():
                if not _is_pulumi_secret(value):
                    found.append(
                        f"{_name(obj)}: {section}.{key} is plain text; set it with "
                        "`pulumi config set --secret` or an external secret manager"
                    )
    return found


def _is_pulumi_secret(value: object) -> bool:
    # pulumi_policy hands secret values to policies wrapped in its Secret type.
    return type(value).__name__ == "Secret" and type(value).__module__.startswith("pulumi_policy")


def serving_is_lean(obj: Obj) -> list[str]:
    """Optimized serving: compressed weights, FP8 KV cache where native, tuned batching."""
    if obj.get("kind") not in ("LLMInferenceService", "ServingRuntime", "InferenceService"):
        return []
    labels = _labels(obj)
    if labels.get("leanrag.io/profile") == "baseline":
        return []  # stock vLLM on purpose: the gate's before/after reference
    found = []
    if labels.get("leanrag.io/quantization", "none") == "none":
        found.append(f"{_name(obj)}: serve a compressed model (fp8, int8-w8a8 or w4a16)")
    fp8_capable = ((obj.get("metadata") or {}).get("annotations") or {}).get(
        "leanrag.io/fp8-kv-capable"
    ) == "true"
    for where, _, containers in pod_specs(obj):
        for container in containers:
            args = [str(a) for a in container.get("args") or []]
            if not any(a.startswith("--gpu-memory-utilization") for a in args):
                continue  # not a vLLM server container
            flags = _flags(args)
            label = f"{_name(obj)} {where} container {container.get('name')}"
            if fp8_capable and flags.get("--kv-cache-dtype") != "fp8":
                found.append(f"{label}: use --kv-cache-dtype fp8 (the GPU supports it)")
            utilization = float(flags.get("--gpu-memory-utilization", "0"))
            if not 0.80 <= utilization <= 0.95:
                found.append(
                    f"{label}: --gpu-memory-utilization {utilization:g} outside [0.80, 0.95]"
                )
            for feature in ("prefix-caching", "chunked-prefill"):
                if f"--no-enable-{feature}" in args or f"--enable-{feature}" not in args:
                    found.append(f"{label}: turn on --enable-{feature}")
    return found


def _flags(args: list[str]) -> dict[str, str]:
    flags: dict[str, str] = {}
    for index, arg in enumerate(args):
        if "=" in arg and arg.startswith("--"):
            key, value = arg.split("=", 1)
            flags[key] = value
        elif (
            arg.startswith("--") and index + 1 < len(args) and not args[index + 1].startswith("--")
        ):
            flags[arg] = args[index + 1]
    return flags


def autoscaling_is_bounded(obj: Obj) -> list[str]:
    """Autoscaled serving states its minimum and maximum replicas, min ≤ max."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "LLMInferenceService" and "scaling" in spec:
        low, high = spec["scaling"].get("minReplicas"), spec["scaling"].get("maxReplicas")
    elif kind == "ScaledObject":
        low, high = spec.get("minReplicaCount"), spec.get("maxReplicaCount")
    else:
        return []
    if low is None or high is None:
        return [f"{_name(obj)}: set both minimum and maximum replicas"]
    if low > high:
        return [f"{_name(obj)}: minimum replicas {low} exceed maximum {high}"]
    return []


# Verbs that grant more than the rules list (RBAC escalation paths).
ESCALATING_VERBS = frozenset({"escalate", "bind", "impersonate"})
# Built-in roles that grant (nearly) everything in their scope.
BROAD_ROLES = frozenset({"cluster-admin", "admin", "edit"})


def rbac_is_least_privilege(obj: Obj) -> list[str]:
    """Roles name exactly what they grant: no wildcard API group, resource or verb, no
    escalation verbs, secrets never listed or watched (a list returns every value); bindings
    never hand out the built-in admin/edit roles."""
    kind = obj.get("kind")
    found = []
    if kind in ("Role", "ClusterRole"):
        if obj.get("aggregationRule"):
            found.append(f"{_name(obj)}: aggregated role: list its rules instead")
        for index, rule in enumerate(obj.get("rules") or []):
            where = f"{_name(obj)} rule {index}"
            for key in ("apiGroups", "resources", "verbs", "nonResourceURLs"):
                if "*" in (rule.get(key) or []):
                    found.append(f"{where}: wildcard in {key}: name each one it needs")
            verbs = set(rule.get("verbs") or [])
            if verbs & ESCALATING_VERBS:
                found.append(f"{where}: {sorted(verbs & ESCALATING_VERBS)} can escalate privileges")
            if "secrets" in (rule.get("resources") or []) and verbs & {"list", "watch"}:
                found.append(f"{where}: list/watch on secrets reads every value: use get by name")
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        role = (obj.get("roleRef") or {}).get("name")
        if role in BROAD_ROLES:
            found.append(f"{_name(obj)}: binds the built-in {role!r} role: bind a narrow role")
    return found


RESOURCE_RULES = {
    "gpu-workloads-are-bounded": gpu_workloads_are_bounded,
    "images-are-pinned": images_are_pinned,
    "pods-are-restricted": pods_are_restricted,
    "root-filesystem-is-read-only": root_filesystem_is_read_only,
    "no-secret-values": no_secret_values,
    "serving-is-lean": serving_is_lean,
    "autoscaling-is-bounded": autoscaling_is_bounded,
    "rbac-is-least-privilege": rbac_is_least_privilege,
}


# --- stack rules -----------------------------------------------------------------------------


def namespaces_default_deny(objects: list[Obj]) -> list[str]:
    """Every namespace the stack creates has default-deny plus explicit allows."""
    found = []
    policies: dict[str, list[Obj]] = {}
    for obj in objects:
        if obj.get("kind") == "NetworkPolicy":
            policies.setdefault(obj["metadata"].get("namespace", ""), []).append(obj)
    for obj in objects:
        if obj.get("kind") != "Namespace":
            continue
        name = obj["metadata"]["name"]
        mine = policies.get(name, [])
        if not any(_is_default_deny(p) for p in mine):
            found.append(f"namespace {name}: add a default-deny NetworkPolicy")
        elif not any(not _is_default_deny(p) for p in mine):
            found.append(f"namespace {name}: default-deny without any allow policy")
    return found


def _is_default_deny(policy: Obj) -> bool:
    spec = policy.get("spec") or {}
    return (
        spec.get("podSelector") in ({}, None)
        and not spec.get("ingress")
        and not spec.get("egress")
        and set(spec.get("policyTypes") or []) >= {"Ingress", "Egress"}
    )


def serving_is_highly_available(objects: list[Obj]) -> list[str]:
    """Production: at least two serving replicas and a PodDisruptionBudget that covers them."""
    found = []
    budgets = [o for o in objects if o.get("kind") == "PodDisruptionBudget"]
    for obj in objects:
        if (
            obj.get("kind") != "LLMInferenceService"
            or _labels(obj).get("leanrag.io/profile") == "baseline"
        ):
            continue
        spec = obj.get("spec") or {}
        minimum = (spec.get("scaling") or {}).get("minReplicas", spec.get("replicas", 1))
        if minimum < 2:
            found.append(f"{_name(obj)}: run at least 2 replicas (minimum is {minimum})")
        pod_labels = spec.get("labels") or {}
        covered = any(
            pod_labels.items()
            >= ((b.get("spec") or {}).get("selector") or {}).get("matchLabels", {}).items()
            and b["metadata"].get("namespace") == obj["metadata"].get("namespace")
            for b in budgets
        )
        if not covered:
            found.append(f"{_name(obj)}: add a PodDisruptionBudget selecting its pods")
    return found


def benchmark_gate_exists(objects: list[Obj]) -> list[str]:
    """Every cluster stack runs the post-deploy benchmark gate."""
    gates = [
        o
        for o in objects
        if o.get("kind") == "Job" and _labels(o).get("leanrag.io/role") == "benchmark-gate"
    ]
    return [] if gates else ["add the benchmark gate Job (leanrag.io/role: benchmark-gate)"]


def _picker_thresholds(obj: Obj) -> dict[str, float]:
    """The llm-d endpoint picker's shedding thresholds in an object that carries its config
    (a LLMInferenceServiceConfig inline, or the standalone picker's ConfigMap)."""
    config: Any = None
    if obj.get("kind") == "LLMInferenceServiceConfig":
        scheduler = ((obj.get("spec") or {}).get("router") or {}).get("scheduler") or {}
        config = (scheduler.get("config") or {}).get("inline")
    elif obj.get("kind") == "ConfigMap" and "epp-config.yaml" in (obj.get("data") or {}):
        try:
            config = yaml.safe_load(obj["data"]["epp-config.yaml"])
        except yaml.YAMLError:
            return {}
    if not isinstance(config, dict) or "flowControl" not in (config.get("featureGates") or []):
        return {}
    for plugin in config.get("plugins") or []:
        if plugin.get("type") == "utilization-detector":
            parameters = plugin.get("parameters") or {}
            # The picker's own defaults where a threshold is left out.
            return {
                "num_requests_waiting": float(parameters.get("queueDepthThreshold", 5)),
                "kv_cache_usage_perc": float(parameters.get("kvCacheUtilThreshold", 0.8)),
            }
    return {"num_requests_waiting": 5.0, "kv_cache_usage_perc": 0.8}


def _keda_triggers(obj: Obj) -> list[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "LLMInferenceService":
        return ((spec.get("scaling") or {}).get("keda") or {}).get("triggers") or []
    if obj.get("kind") == "ScaledObject":
        return spec.get("triggers") or []
    return []


def autoscaling_before_shedding(objects: list[Obj]) -> list[str]:
    """Where load is shed — by vLLM (--max-num-queued-reqs) or by llm-d's endpoint picker
    (flow control's saturation detector) — KEDA scales out first: its per-replica targets are
    below the shedding thresholds, so a new replica is on its way before requests are
    refused. vLLM admits a queue of the in-flight cap minus --max-num-seqs; the picker holds
    requests once the waiting queue or the KV-cache use per replica reaches its thresholds."""
    limits: dict[str, dict[str, tuple[float, str]]] = {}

    def limit(namespace: str, metric: str, value: float, who: str) -> None:
        current = limits.setdefault(namespace, {}).get(metric)
        if current is None or value < current[0]:
            limits[namespace][metric] = (value, who)

    for obj in objects:
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        for _, _, containers in pod_specs(obj):
            for container in containers:
                flags = _flags([str(a) for a in container.get("args") or []])
                if "--max-num-queued-reqs" in flags and "--max-num-seqs" in flags:
                    queue = int(flags["--max-num-queued-reqs"]) - int(flags["--max-num-seqs"])
                    limit(namespace, "num_requests_waiting", queue, "vLLM sheds beyond")
        for metric, value in _picker_thresholds(obj).items():
            limit(namespace, metric, value, "the endpoint picker sheds from")
    found = []
    for obj in objects:
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        for trigger in _keda_triggers(obj):
            metadata = trigger.get("metadata") or {}
            query = str(metadata.get("query", ""))
            for metric, (value, who) in limits.get(namespace, {}).items():
                if metric not in query:
                    continue
                threshold = float(metadata.get("threshold", "inf"))
                if threshold >= value:
                    found.append(
                        f"{_name(obj)}: KEDA scales out at {metric} {threshold:g} per replica, "
                        f"but {who} {value:g}: lower the KEDA target below the shedding threshold"
                    )
    return found


STACK_RULES = {
    "autoscaling-before-shedding": autoscaling_before_shedding,
    "namespaces-default-deny": namespaces_default_deny,
    "serving-is-highly-available": serving_is_highly_available,
    "benchmark-gate-exists": benchmark_gate_exists,
}


def violations(objects: list[Obj]) -> dict[str, list[str]]:
    """Every rule's violations over a whole stack (rules with none are omitted)."""
    result: dict[str, list[str]] = {}
    for name, rule in RESOURCE_RULES.items():
        found = [message for obj in objects for message in rule(obj)]
        if found:
            result[name] = found
    for name, rule in STACK_RULES.items():
        found = rule(objects)
        if found:
            result[name] = found
    return result
