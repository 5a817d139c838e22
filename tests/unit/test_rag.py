"""The RAG app's cluster objects: Llama Stack wired to the served model, Milvus and the
stack's embeddings; the ingestion Job reading a PVC or S3 and publishing to Llama Stack."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from infra.builders import rag
from infra.config import validate_stack
from infra.errors import ConfigError
from infra.plan import DeploymentPlan, build_plan
from tests.conftest import edited, stack_raw


def plan_of(raw: dict[str, Any], stack: str = "prod") -> DeploymentPlan:
    return build_plan(validate_stack(raw, stack), stack)


def objects(p: DeploymentPlan) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in rag.build(p).objects}


def ingest_container(found: dict) -> dict[str, Any]:
    return found[("Job", rag.INGEST_JOB)]["spec"]["template"]["spec"]["containers"][0]


def arg(container: dict[str, Any], flag: str) -> str:
    args = container["args"]
    return args[args.index(flag) + 1]


def test_llama_stack_uses_the_served_model_milvus_and_kubernetes_auth() -> None:
    p = plan_of(stack_raw("prod"))
    found = objects(p)
    distribution = found[("LlamaStackDistribution", rag.LLAMA_STACK)]["spec"]
    assert distribution["server"]["userConfig"]["configMapName"] == rag.RUN_CONFIG
    assert distribution["network"]["exposeRoute"] is True
    assert "openshift-ingress" in distribution["network"]["allowedFrom"]["namespaces"]
    config = yaml.safe_load(found[("ConfigMap", rag.RUN_CONFIG)]["data"]["run.yaml"])
    (chat,) = [p for p in config["providers"]["inference"] if p["provider_id"] == "vllm"]
    # Through the inference gateway, so llm-d's prefix-aware routing applies to RAG prompts.
    assert chat["config"]["base_url"] == (
        "http://leanrag-inference-openshift-default.leanrag-serving.svc.cluster.local"
        "/leanrag-serving/leanrag-llm/v1"
    )
    (milvus,) = config["providers"]["vector_io"]
    assert (milvus["provider_type"], milvus["config"]["uri"]) == (
        "remote::milvus",
        p.vector_store_uri,
    )
    models = {m["model_id"]: m for m in config["registered_resources"]["models"]}
    assert models[p.vllm.served_model_name]["model_type"] == "llm"
    assert models["all-MiniLM-L6-v2"]["provider_model_id"] == p.rag.embedding_model
    auth = config["server"]["auth"]
    assert auth["provider_config"]["type"] == "kubernetes"
    assert auth["access_policy"][0]["permit"]["principal"] == (
        "system:serviceaccount:leanrag-rag:leanrag-ingest"
    )


def test_ingest_job_reads_the_documents_volume_and_publishes() -> None:
    p = plan_of(stack_raw("prod"))
    found = objects(p)
    assert ("PersistentVolumeClaim", rag.DOCUMENTS_VOLUME) in found
    container = ingest_container(found)
    assert arg(container, "--source") == "/mnt/documents"
    assert arg(container, "--milvus-uri") == p.vector_store_uri
    assert (arg(container, "--max-tokens"), arg(container, "--overlap")) == ("256", "32")
    assert arg(container, "--index-type") == "HNSW"
    assert arg(container, "--llama-stack-url") == (
        "http://leanrag-rag-service.leanrag-rag.svc.cluster.local:8321"
    )
    assert arg(container, "--llama-stack-embedding-model") == "embeddings/all-MiniLM-L6-v2"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    job = found[("Job", rag.INGEST_JOB)]["spec"]["template"]["spec"]
    assert job["serviceAccountName"] == rag.INGEST_ACCOUNT
    assert job["initContainers"] == []


def test_documents_from_s3_are_synced_with_the_stack_s3_secret() -> None:
    section = {"documentsUri": "s3://acme-docs/handbooks/", "chunkTokens": 512}
    raw = edited(stack_raw("prod"), "rag", {**section, "chunkOverlapTokens": 64})
    found = objects(plan_of(raw))
    assert ("PersistentVolumeClaim", rag.DOCUMENTS_VOLUME) not in found
    job = found[("Job", rag.INGEST_JOB)]["spec"]["template"]["spec"]
    (sync,) = job["initContainers"]
    assert sync["args"][-2:] == ["s3://acme-docs/handbooks/", "/mnt/documents"]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in sync["env"]}
    assert refs == {"leanrag-s3"}
    assert arg(ingest_container(found), "--max-tokens") == "512"


def test_another_embedding_model_is_fetched_and_used_on_both_sides() -> None:
    raw = edited(stack_raw("prod"), "rag", {"embeddingModel": "BAAI/bge-small-en-v1.5"})
    p = plan_of(raw)
    found = objects(p)
    container = ingest_container(found)
    assert arg(container, "--embedding-model") == "/mnt/embedding"
    assert arg(container, "--llama-stack-embedding-model") == "embeddings/bge-small-en-v1.5"
    fetch = found[("Job", rag.INGEST_JOB)]["spec"]["template"]["spec"]["initContainers"][0]
    assert fetch["args"][0] == "hf://BAAI/bge-small-en-v1.5"
    config = yaml.safe_load(found[("ConfigMap", rag.RUN_CONFIG)]["data"]["run.yaml"])
    assert config["vector_stores"]["default_embedding_model"]["model_id"] == "bge-small-en-v1.5"


def test_without_llama_stack_there_is_no_rag_bundle() -> None:
    raw = edited(stack_raw("prod"), "features.llamaStack", False)
    assert rag.build(plan_of(raw)).objects == ()


@pytest.mark.parametrize(
    ("rag_section", "field"),
    [
        ({"documentsUri": "/data/docs"}, "rag.documentsUri"),
        ({"chunkTokens": 64, "chunkOverlapTokens": 40}, "rag"),
        ({"collection": "my-docs"}, "rag.collection"),
        ({"indexType": "DISKANN"}, "rag.indexType"),
    ],
)
def test_bad_rag_settings_name_the_field(rag_section: dict, field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        validate_stack(edited(stack_raw("prod"), "rag", rag_section), "prod")
    assert f"leanrag:{field}" in str(raised.value)
