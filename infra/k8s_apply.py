"""Apply a builder's Bundle with Pulumi: typed resources for built-ins, CustomResource for CRs.

Ordering inside a bundle follows its waves (namespaces → operators, accounts and charts →
custom resources and workloads); each object depends on every object of the earlier waves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pulumi
import pulumi_kubernetes as k8s

from infra.builders.bundle import WAVES, Bundle, HelmChart, RemoteManifest, object_key, wave

_BUILTINS: dict[tuple[str, str], Any] = {
    ("v1", "Namespace"): k8s.core.v1.Namespace,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Secret"): k8s.core.v1.Secret,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("v1", "Service"): k8s.core.v1.Service,
    ("v1", "PersistentVolumeClaim"): k8s.core.v1.PersistentVolumeClaim,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("batch/v1", "Job"): k8s.batch.v1.Job,
    ("policy/v1", "PodDisruptionBudget"): k8s.policy.v1.PodDisruptionBudget,
    ("networking.k8s.io/v1", "NetworkPolicy"): k8s.networking.v1.NetworkPolicy,
    ("rbac.authorization.k8s.io/v1", "Role"): k8s.rbac.v1.Role,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): k8s.rbac.v1.RoleBinding,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
}
# Top-level manifest fields whose Python SDK argument is spelled differently.
_ARGUMENT_NAMES = {
    "stringData": "string_data",
    "binaryData": "binary_data",
    "roleRef": "role_ref",
    "automountServiceAccountToken": "automount_service_account_token",
    "imagePullSecrets": "image_pull_secrets",
}


def logical_name(obj: dict[str, Any]) -> str:
    """Pulumi resource name: the object's stable key, readable in `pulumi preview`."""
    return object_key(obj).replace("/_cluster/", "/").replace("/", "-")


def create_object(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    fields = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    builtin = _BUILTINS.get((obj["apiVersion"], obj["kind"]))
    if builtin is not None:
        arguments = {_ARGUMENT_NAMES.get(k, k): v for k, v in fields.items()}
        return builtin(logical_name(obj), **arguments, opts=opts)
    if obj["apiVersion"].partition("/")[0] in ("apps", "batch", "policy", "v1"):
        raise ValueError(f"{obj['kind']} has no typed Pulumi mapping: add it to _BUILTINS")
    extra = set(fields) - {"metadata", "spec"}
    if extra:
        raise ValueError(
            f"{obj['kind']} has top-level fields a CustomResource cannot carry: {extra}"
        )
    return k8s.apiextensions.CustomResource(
        logical_name(obj),
        api_version=obj["apiVersion"],
        kind=obj["kind"],
        metadata=obj["metadata"],
        spec=obj.get("spec"),
        opts=opts,
    )


def create_chart(chart: HelmChart, opts: pulumi.ResourceOptions) -> pulumi.Resource:
    oci = chart.repository.startswith("oci://")
    return k8s.helm.v4.Chart(
        f"helm-{chart.namespace}-{chart.release}",
        name=chart.release,
        namespace=chart.namespace,
        chart=f"{chart.repository}/{chart.chart}" if oci else chart.chart,
        version=chart.version,
        values=chart.values,
        repository_opts=None if oci else k8s.helm.v4.RepositoryOptsArgs(repo=chart.repository),
        opts=opts,
    )


def create_remote(manifest: RemoteManifest, opts: pulumi.ResourceOptions) -> pulumi.Resource:
    return k8s.yaml.v2.ConfigFile(f"remote-{manifest.name}", file=manifest.url, opts=opts)


@dataclass(frozen=True)
class BundleArgs:
    """What a platform component applies: one concern's bundle, built from the plan."""

    bundle: Bundle


class BundleComponent(pulumi.ComponentResource):
    """Base of the platform components: applies one Bundle as children, in wave order."""

    TYPE: ClassVar[str]

    def __init__(
        self, name: str, args: BundleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(self.TYPE, name, None, opts)
        bundle = args.bundle
        by_wave: dict[int, list[pulumi.Resource]] = {level: [] for level in WAVES}
        prepared = self.prepare(args)

        def child_opts(level: int) -> pulumi.ResourceOptions:
            earlier = [r for w in range(level) for r in by_wave[w]]
            after = earlier + (prepared if level > 0 else [])
            return pulumi.ResourceOptions(parent=self, depends_on=after)

        self.resources: dict[str, pulumi.Resource] = {}
        for level in WAVES:
            for obj in (o for o in bundle.objects if wave(o) == level):
                resource = create_object(obj, child_opts(level))
                self.resources[object_key(obj)] = resource
                by_wave[level].append(resource)
            if level == 1:  # charts and upstream CRDs install operators and their CRDs
                for chart in bundle.charts:
                    resource = create_chart(chart, child_opts(1))
                    self.resources[f"helmchart/{chart.namespace}/{chart.release}"] = resource
                    by_wave[1].append(resource)
                for manifest in bundle.remote:
                    resource = create_remote(manifest, child_opts(1))
                    self.resources[f"remote/{manifest.name}"] = resource
                    by_wave[1].append(resource)
        self.register_outputs({"resources": sorted(self.resources)})

    def prepare(self, args: BundleArgs) -> list[pulumi.Resource]:
        """Children that must exist before the bundle's objects (none by default)."""
        return []
