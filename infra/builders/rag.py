"""The RAG app: Llama Stack (chat through the served model, Milvus, the stack's embeddings) and
the ingestion Job that fills Milvus from a PVC or S3 and publishes the corpus to Llama Stack."""

from __future__ import annotations

from typing import Any

from infra.builders import network
from infra.builders.bundle import PART_OF, Bundle, render, render_text
from infra.builders.llm_d import GATEWAY, OBJECTIVE_HEADER
from infra.builders.serving import (
    SERVICE,
    fetch_into_job,
    metrics_endpoint,
    restricted_container,
    s3_env,
)
from infra.plan import DeploymentPlan

LLAMA_STACK = "leanrag-rag"
LLAMA_STACK_PORT = 8321
RUN_CONFIG = "leanrag-llama-stack-run"
INGEST_JOB = "leanrag-ingest"
INGEST_ACCOUNT = "leanrag-ingest"
DOCUMENTS_VOLUME = "leanrag-documents"
STORAGE_PATH = "/data"
PACKAGED_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # in the ingest image
TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def embedding_name(plan: DeploymentPlan) -> str:
    """The embedding model's name in Llama Stack's registry (the last part of its id)."""
    return plan.rag.embedding_model.rsplit("/", 1)[-1]


def embedding_model_id(plan: DeploymentPlan) -> str:
    """The embedding model's id inside Llama Stack (provider `embeddings`)."""
    return f"embeddings/{embedding_name(plan)}"


def llama_stack_url(plan: DeploymentPlan) -> str:
    # The operator names the Service <distribution>-service.
    namespace = plan.namespaces.rag
    return f"http://{LLAMA_STACK}-service.{namespace}.svc.cluster.local:{LLAMA_STACK_PORT}"


def inference_endpoint(plan: DeploymentPlan) -> tuple[str, bool]:
    """(OpenAI base URL of the served model, verify TLS) for Llama Stack's chat requests."""
    if plan.rag.inference_url:
        return plan.rag.inference_url, True
    serving = plan.namespaces.serving
    if plan.features.llmd_router and plan.platform == "openshift":
        # Through the inference gateway, so llm-d routes each prompt to the replica that
        # holds its prefix; OpenShift names the gateway's Service <gateway>-<class>.
        host = f"{GATEWAY}-openshift-default.{serving}.svc.cluster.local"
        return f"http://{host}/{serving}/{SERVICE}/v1", True
    # Elsewhere the gateway's Service name is generated: use the optimized replicas'
    # Service (set rag.inferenceUrl to go through your gateway).
    port, scheme = metrics_endpoint(plan)
    host = f"{SERVICE}-gate.{serving}.svc.cluster.local"
    return f"{scheme}://{host}:{port}/v1", scheme == "http"  # vLLM's TLS is self-signed


def run_config(plan: DeploymentPlan) -> str:
    url, verify = inference_endpoint(plan)
    return render_text(
        "rag/llama-stack-run.yaml.j2",
        inference={
            "url": url,
            "verify_tls": verify,
            "model": plan.vllm.served_model_name,
            "max_tokens": plan.workload.output_tokens,
            "headers": {OBJECTIVE_HEADER: plan.shedding.interactive_objective}
            if plan.shedding.enabled
            else {},
        },
        embedding={
            "url": None,  # inline sentence-transformers inside the distribution
            "model": embedding_name(plan),
            "provider_model": plan.rag.embedding_model,
            "dimension": plan.rag.embedding_dimension,
        },
        vector_store={"db_path": None, "uri": plan.vector_store_uri},
        storage_dir=STORAGE_PATH,
        port=LLAMA_STACK_PORT,
        host=None,
        auth={
            "api_server_url": "https://kubernetes.default.svc",
            "ingest_principal": f"system:serviceaccount:{plan.namespaces.rag}:{INGEST_ACCOUNT}",
        },
    )


def build(plan: DeploymentPlan) -> Bundle:
    if plan.platform == "local" or plan.images is None or not plan.features.llama_stack:
        return Bundle(concern="rag")
    namespace = plan.namespaces.rag
    objects = render(
        "rag/llama-stack.yaml.j2",
        name=LLAMA_STACK,
        namespace=namespace,
        labels={**PART_OF, "leanrag.io/role": "rag-app"},
        config_map=RUN_CONFIG,
        run_config=run_config(plan),
        replicas=1,  # its registry is SQLite on the distribution's volume
        image=plan.images.llama_stack,
        port=LLAMA_STACK_PORT,
        resources={
            "requests": {"cpu": "1", "memory": "3Gi"},
            "limits": {"cpu": "4", "memory": "6Gi"},
        },
        env=[{"name": "HF_HOME", "value": f"{STORAGE_PATH}/huggingface"}],
        storage_size="10Gi",
        storage_path=STORAGE_PATH,
        allowed_namespaces=sorted({namespace, *network.gateway_namespaces(plan)}),
        expose=True,
    )
    objects += _ingest_job(plan)
    return Bundle(concern="rag", objects=tuple(objects))


def _ingest_job(plan: DeploymentPlan) -> list[dict[str, Any]]:
    rag = plan.rag
    images = plan.images
    assert images is not None
    steps: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}]
    documents_volume = None
    if rag.documents_uri.startswith(f"pvc://{DOCUMENTS_VOLUME}/"):
        documents_volume = {"name": DOCUMENTS_VOLUME, "size": f"{rag.documents_volume_gib}Gi"}
    if rag.documents_uri.startswith("s3://"):
        volumes.append(
            {"name": "documents", "emptyDir": {"sizeLimit": f"{rag.documents_volume_gib}Gi"}}
        )
        mounts.append({"name": "documents", "mountPath": "/mnt/documents"})
        steps.append(
            {
                "name": "fetch-documents",
                "image": images.s3_sync,
                "args": ["s3", "sync", "--only-show-errors", rag.documents_uri, "/mnt/documents"],
                "env": s3_env(),
                "resources": _small(),
                "securityContext": restricted_container(),
                "volumeMounts": [{"name": "documents", "mountPath": "/mnt/documents"}],
            }
        )
        source = "/mnt/documents"
    else:
        source = fetch_into_job(
            rag.documents_uri, "documents", images.storage_initializer, steps, mounts, volumes, 1
        )
    args = [
        "--source", source,
        "--milvus-uri", plan.vector_store_uri,
        "--collection", rag.collection,
        "--max-tokens", str(rag.chunk_tokens),
        "--overlap", str(rag.chunk_overlap_tokens),
        "--index-type", rag.index_type,
        "--metric", rag.metric,
        "--delete-missing",
        "--no-progress",
        "--llama-stack-url", llama_stack_url(plan),
        "--llama-stack-embedding-model", embedding_model_id(plan),
        "--llama-stack-token-file", TOKEN_FILE,
    ]  # fmt: skip
    if rag.docling_artifacts_path:
        args += ["--artifacts-path", f"{source.rstrip('/')}/{rag.docling_artifacts_path}"]
    if rag.embedding_model != PACKAGED_EMBEDDING_MODEL:
        model_path = fetch_into_job(
            f"hf://{rag.embedding_model}", "embedding", images.storage_initializer,
            steps, mounts, volumes, 4,
        )  # fmt: skip
        args += ["--embedding-model", model_path]
    container = {
        "name": "ingest",
        "image": images.ingest,
        "args": args,
        "env": [
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "HOME", "value": "/tmp"},
        ],
        "resources": {
            "requests": {"cpu": "2", "memory": "4Gi"},
            "limits": {"cpu": "4", "memory": "8Gi"},
        },
        "securityContext": {**restricted_container(), "readOnlyRootFilesystem": True},
        "volumeMounts": mounts,
    }
    return render(
        "rag/ingest-job.yaml.j2",
        name=INGEST_JOB,
        account=INGEST_ACCOUNT,
        namespace=plan.namespaces.rag,
        labels={**PART_OF, "leanrag.io/role": "ingest"},
        documents_volume=documents_volume,
        init_containers=steps,
        containers=[container],
        volumes=volumes,
    )


def _small() -> dict[str, Any]:
    return {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
