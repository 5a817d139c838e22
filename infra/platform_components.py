"""The cluster platform, one ComponentResource per concern.

Each component applies the bundle its builder (`infra/builders/<concern>.py`) made from the
plan; `leanrag render` writes the very same bundles as files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pulumi
import pulumi_kubernetes as k8s

from infra.builders.serving import MODEL_HUB_SECRET, S3_SECRET
from infra.k8s_apply import BundleArgs, BundleComponent


class StackNamespaces(BundleComponent):
    """The stack's namespaces (serving, RAG, Milvus, monitoring)."""

    TYPE = "leanrag:platform:Namespaces"


class GpuNodePool(BundleComponent):
    """OpenShift MachineSet + MachineAutoscaler (+ ClusterAutoscaler) for the GPU pool."""

    TYPE = "leanrag:platform:GpuNodePool"


class GpuOperator(BundleComponent):
    """Node Feature Discovery and the NVIDIA GPU Operator (ClusterPolicy, DCGM exporter)."""

    TYPE = "leanrag:platform:GpuOperator"


class OpenShiftAI(BundleComponent):
    """OpenShift AI operator, DSCInitialization and DataScienceCluster."""

    TYPE = "leanrag:platform:OpenShiftAI"


class KServe(BundleComponent):
    """Plain Kubernetes: cert-manager, Gateway API, inference-extension CRDs, KServe llmisvc."""

    TYPE = "leanrag:platform:KServe"


class LlmD(BundleComponent):
    """Inference Gateway and llm-d's prefix-cache-aware endpoint picker."""

    TYPE = "leanrag:platform:LlmD"


class Keda(BundleComponent):
    """KEDA (Custom Metrics Autoscaler on OpenShift) and its Prometheus access."""

    TYPE = "leanrag:platform:Keda"


class Milvus(BundleComponent):
    """Milvus operator and the Milvus instance for the RAG app."""

    TYPE = "leanrag:platform:Milvus"


class Observability(BundleComponent):
    """Monitors, SLO and GPU-waste alerts, Grafana dashboard."""

    TYPE = "leanrag:platform:Observability"


@dataclass(frozen=True)
class ServingArgs(BundleArgs):
    """The serving bundle plus the secret values Pulumi holds (never in the bundle or render)."""

    namespace: str = ""
    secrets: dict[str, pulumi.Output[str]] = field(default_factory=dict)


_S3_KEYS = {"AWS_ACCESS_KEY_ID": "s3AccessKeyId", "AWS_SECRET_ACCESS_KEY": "s3SecretAccessKey"}


def _secret_refs(node: object) -> set[str]:
    """Names of the Secrets that `secretKeyRef`s anywhere in `node` point at."""
    if isinstance(node, dict):
        found = {node["secretKeyRef"]["name"]} if "secretKeyRef" in node else set()
        return found.union(*(_secret_refs(v) for v in node.values()))
    if isinstance(node, list | tuple):
        return set().union(*(_secret_refs(v) for v in node))
    return set()


class _WithSecrets(BundleComponent):
    """A bundle whose pods read Secrets that Pulumi creates from the stack's secret config."""

    # Secret name → {key in the Secret: stack config key}; created only where configured.
    SECRETS: ClassVar[dict[str, dict[str, str]]] = {
        MODEL_HUB_SECRET: {"token": "modelHubToken"},
        S3_SECRET: _S3_KEYS,
    }

    def prepare(self, args: BundleArgs) -> list[pulumi.Resource]:
        assert isinstance(args, ServingArgs)
        created: list[pulumi.Resource] = []
        referenced = _secret_refs(args.bundle.objects)
        for secret_name, keys in self.SECRETS.items():
            if secret_name not in referenced:
                continue  # only the Secrets this bundle's pods read
            values = {
                key: args.secrets[config] for key, config in keys.items() if config in args.secrets
            }
            if values:
                created.append(
                    k8s.core.v1.Secret(
                        f"secret-{args.namespace}-{secret_name}",
                        metadata={"name": secret_name, "namespace": args.namespace},
                        string_data=values,
                        opts=pulumi.ResourceOptions(parent=self),
                    )
                )
        return created


class ModelServing(_WithSecrets):
    """Quantize Job, vLLM service(s) with probes, PDB and KEDA scaling, model-hub/S3 secrets."""

    TYPE = "leanrag:serving:ModelServing"


class BenchmarkGate(BundleComponent):
    """Post-deploy GuideLLM gate Job, its Services, RBAC and plan ConfigMap."""

    TYPE = "leanrag:benchmark:BenchmarkGate"


class RagApp(_WithSecrets):
    """Llama Stack distribution (run config, exposure) and the document ingestion Job."""

    TYPE = "leanrag:rag:RagApp"


COMPONENTS: dict[str, type[BundleComponent]] = {
    "namespaces": StackNamespaces,
    "gpu-nodes": GpuNodePool,
    "gpu-operator": GpuOperator,
    "openshift-ai": OpenShiftAI,
    "kserve": KServe,
    "llm-d": LlmD,
    "keda": Keda,
    "milvus": Milvus,
    "observability": Observability,
    "serving": ModelServing,
    "benchmark": BenchmarkGate,
    "rag": RagApp,
}
