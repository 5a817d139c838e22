"""The unit a builder returns, and how templates become Kubernetes objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from infra.stack_source import PROJECT_ROOT
from workloads.templating import render_text

TEMPLATES = PROJECT_ROOT / "templates"
PART_OF = {"app.kubernetes.io/part-of": "leanrag"}
# Namespaces the stack creates are either for its workloads (default-deny network policies,
# restricted pods) or for third-party operators (their own network and pod requirements).
WORKLOAD_NAMESPACE = {**PART_OF, "leanrag.io/namespace-role": "workload"}
OPERATOR_NAMESPACE = {**PART_OF, "leanrag.io/namespace-role": "operator"}
# Kinds that must exist before the custom resources of the same concern can be created.
_FIRST_WAVE = {"Namespace"}
_SECOND_WAVE = {
    "OperatorGroup", "Subscription", "ServiceAccount", "Secret", "ConfigMap", "Service",
    "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "PersistentVolumeClaim",
}  # fmt: skip
# One-off preparation (model compression) that the long-running objects wait for.
_THIRD_WAVE = {"Job"}
WAVES = (0, 1, 2, 3)


# Rendered charts become Flux objects in Flux's own namespace (it exists once Flux is
# installed, so `kubectl apply -f` of a folder never races the chart's target namespace).
FLUX_NAMESPACE = "flux-system"
FLUX_INTERVAL = "1h"


@dataclass(frozen=True)
class HelmChart:
    """A third-party chart, pinned. `pulumi up` installs it with Pulumi's Helm support;
    `leanrag render` writes it as a Flux HelmRepository + HelmRelease (real objects that
    `kubectl apply` and any GitOps tool accept, with the pinned version and the values)."""

    release: str
    namespace: str
    repository: str
    chart: str
    version: str
    values: dict[str, Any] = field(default_factory=dict)

    def flux_objects(self) -> list[dict[str, Any]]:
        name = f"{self.namespace}-{self.release}"
        metadata = {"name": name, "namespace": FLUX_NAMESPACE, "labels": dict(PART_OF)}
        oci = self.repository.startswith("oci://")
        repository: dict[str, Any] = {"url": self.repository, "interval": FLUX_INTERVAL}
        if oci:
            repository["type"] = "oci"
        return [
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "HelmRepository",
                "metadata": metadata,
                "spec": repository,
            },
            {
                "apiVersion": "helm.toolkit.fluxcd.io/v2",
                "kind": "HelmRelease",
                "metadata": metadata,
                "spec": {
                    "interval": FLUX_INTERVAL,
                    "releaseName": self.release,
                    "targetNamespace": self.namespace,
                    "storageNamespace": self.namespace,
                    "install": {"createNamespace": True, "crds": "CreateReplace"},
                    "upgrade": {"crds": "CreateReplace"},
                    "chart": {
                        "spec": {
                            "chart": self.chart,
                            "version": self.version,
                            "sourceRef": {"kind": "HelmRepository", "name": name},
                        }
                    },
                    "values": self.values,
                },
            },
        ]


@dataclass(frozen=True)
class RemoteManifest:
    """Upstream release YAML applied as published (CRDs without a chart)."""

    name: str
    url: str


@dataclass(frozen=True)
class Bundle:
    """Everything one concern applies, in the order it must be created."""

    concern: str
    objects: tuple[dict[str, Any], ...] = ()
    charts: tuple[HelmChart, ...] = ()
    remote: tuple[RemoteManifest, ...] = ()

    def object_keys(self) -> list[str]:
        return [object_key(obj) for obj in self.objects]


def wave(obj: dict[str, Any]) -> int:
    """0 namespaces; 1 operators, accounts, config, volumes; 2 Jobs; 3 everything else."""
    kind = obj["kind"]
    if kind in _FIRST_WAVE:
        return 0
    if kind in _SECOND_WAVE:
        return 1
    return 2 if kind in _THIRD_WAVE else 3


def object_key(obj: dict[str, Any]) -> str:
    """Stable identity: kind/namespace/name (cluster-scoped objects have no namespace)."""
    metadata = obj["metadata"]
    namespace = metadata.get("namespace", "_cluster")
    return f"{obj['kind'].lower()}/{namespace}/{metadata['name']}"


def render(template: str, **context: Any) -> list[dict[str, Any]]:
    """Render one template (one or more YAML documents) into Kubernetes objects."""
    text = render_text(template, **context)
    return [document for document in yaml.safe_load_all(text) if document]
