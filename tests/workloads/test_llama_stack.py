"""Llama Stack 0.7 for real (its own Python 3.12 environment): the cluster run config parses
as Llama Stack's own StackConfig, and the ingested corpus is published to and searched
through a running Llama Stack backed by Milvus Lite."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.builders import rag
from infra.local import processes
from infra.local.llama_stack import command, local_run_config, prepare_tiktoken_cache
from infra.plan import build_plan
from infra.stack_source import load_stack
from workloads.ingest.embed import default_embedder
from workloads.ingest.pipeline import IngestSettings, ingest
from workloads.ingest.publish import LlamaStack, ledger_rows, publish
from workloads.ingest.store import MilvusStore

PYTHON = os.environ.get("LEANRAG_LLAMA_STACK_PYTHON")
pytestmark = pytest.mark.skipif(
    not PYTHON, reason="LEANRAG_LLAMA_STACK_PYTHON not set (make test sets it)"
)
EMBEDDING = "all-MiniLM-L6-v2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cluster_run_config_is_a_valid_llama_stack_config(stack: str, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(rag.run_config(build_plan(load_stack(stack), stack)))
    check = (
        "import sys, yaml\n"
        "from llama_stack.core.datatypes import StackConfig\n"
        "c = StackConfig(**yaml.safe_load(open(sys.argv[1])))\n"
        "assert c.server.auth.provider_config.type == 'kubernetes'\n"
        "print(sorted(p.provider_type for ps in c.providers.values() for p in ps))\n"
        # The inference provider's own config class, as the server builds it at start-up.
        "from llama_stack.core.stack import replace_env_vars\n"
        "from llama_stack.providers.remote.inference.vllm.config import "
        "VLLMInferenceAdapterConfig as V\n"
        "(p,) = [p for p in c.providers['inference'] if p.provider_type == 'remote::vllm']\n"
        "v = V(**replace_env_vars(p.config))\n"
        "print('headers', v.network.headers)\n"
    )
    result = subprocess.run(
        [PYTHON, "-c", check, str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "remote::milvus" in result.stdout and "remote::vllm" in result.stdout
    # Through the inference gateway, the RAG app's requests carry its (interactive) objective.
    assert "headers {'x-llm-d-inference-objective': 'leanrag-interactive'}" in result.stdout


@pytest.fixture(scope="module")
def llama_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("llama-stack")
    embed_port, stack_port = free_port(), free_port()
    embedder = processes.start(
        "embeddings",
        [sys.executable, "-m", "workloads.ingest.embed_server", "--port", str(embed_port)],
        work / "embeddings.log",
    )
    config = work / "run.yaml"
    config.write_text(
        local_run_config(
            inference_url=f"http://127.0.0.1:{free_port()}/v1",  # no chat model needed here
            model="unused",
            max_tokens=64,
            embedding_url=f"http://127.0.0.1:{embed_port}/v1",
            embedding_model=EMBEDDING,
            embedding_dimension=384,
            milvus_db=work / "llama-stack-milvus.db",
            state_dir=work / "state",
            port=stack_port,
        )
    )
    python = Path(PYTHON)
    cache = prepare_tiktoken_cache(python, work / "tiktoken")
    server = None
    try:
        embedder.wait_until_ready(f"http://127.0.0.1:{embed_port}/health", 120)
        server = processes.start(
            "llama-stack",
            command(python, config, stack_port),
            work / "llama-stack.log",
            env={"TIKTOKEN_CACHE_DIR": str(cache)},
        )
        server.wait_until_ready(f"http://127.0.0.1:{stack_port}/v1/health", 240)
        yield f"http://127.0.0.1:{stack_port}"
    finally:
        for running in (server, embedder):
            if running:
                running.stop()
    assert not processes.group_alive(embedder.pid)


def test_publish_is_idempotent_and_replaces_the_corpus_atomically(
    llama_stack: str, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pumps.md").write_text(
        "# Pumps\n\n## Start-up\n\nOpen valve V3 before starting pump P1.\n\n"
        "## Shutdown\n\nStop pump P1 first, then close valve V3.\n"
    )
    (docs / "alarms.md").write_text(
        "# Alarms\n\nThe high level alarm trips at 92 percent of the tank height.\n"
    )
    embedder = default_embedder()
    settings = IngestSettings(source=docs, milvus_uri=str(tmp_path / "ledger.db"))
    ingest(settings, embedder)
    stack = LlamaStack(llama_stack)
    store = MilvusStore(settings.milvus_uri, settings.collection, 384, create=False)
    model = f"embeddings/{EMBEDDING}"
    first = publish(store, stack, model)
    assert first.published and first.chunks == store.count()
    again = publish(store, stack, model)
    assert (again.published, again.vector_store_id) == (False, first.vector_store_id)

    found = stack.call(
        "POST",
        f"/v1/vector_stores/{first.vector_store_id}/search",
        json={"query": "At what level does the high alarm trip?", "max_num_results": 1},
    )["data"]
    assert found[0]["attributes"]["source"] == "alarms.md"
    assert "92 percent" in found[0]["content"][0]["text"]

    (docs / "alarms.md").write_text("# Alarms\n\nThe high level alarm trips at 95 percent.\n")
    store.close()
    ingest(settings, embedder)
    store = MilvusStore(settings.milvus_uri, settings.collection, 384, create=False)
    replaced = publish(store, stack, model)
    store.close()
    assert replaced.published and replaced.vector_store_id != first.vector_store_id
    assert [s["id"] for s in stack.stores_named(settings.collection)] == [replaced.vector_store_id]
    found = stack.call(
        "POST",
        f"/v1/vector_stores/{replaced.vector_store_id}/search",
        json={"query": "At what level does the high alarm trip?", "max_num_results": 1},
    )["data"]
    assert "95 percent" in found[0]["content"][0]["text"]
    stack.close()


def test_publishing_interrupted_never_leaves_a_half_published_store(tmp_path: Path) -> None:
    """Real faults at random points of a publish: the publishing process SIGKILLed, and the
    Llama Stack server SIGKILLed under it (then restarted on its state). No store a reader
    can pick (marked complete) ever holds other than its ledger's chunks; the publisher that
    lost its server exits 2 naming Llama Stack; the next publish leaves exactly one complete
    store. (`benchmarks/faults/publish_faults.py` runs more trials for the README.)"""
    from benchmarks.faults.publish_faults import run_trials

    result = run_trials(tmp_path / "work", Path(PYTHON), 2, 7, ("publisher", "llama-stack"))
    trials = result["trials"]
    assert len(trials) == 4
    for trial in trials:
        assert trial["half_published"] == [], trial  # never a complete store of wrong content
        assert trial["resume_exit"] == 0 and trial["resumed_exactly"], trial
        if trial["kind"] == "llama-stack":
            # 0: its last call had returned before the server died; else 2, naming it.
            assert trial["publisher_exit"] in (0, 2), trial
        if trial["kind"] == "llama-stack" and trial["publisher_exit"] == 2:
            assert "Llama Stack" in trial["publisher_message"], trial
            assert "re-run" in trial["publisher_message"], trial
    full, less_one = (c["chunks"] for c in result["corpora"])
    assert full > less_one > 0


def test_a_store_llama_stack_forgot_on_restart_is_republished_and_never_read_empty(
    tmp_path: Path,
) -> None:
    """Llama Stack 0.7.3 on Milvus Lite forgets its vector stores when it restarts, even
    cleanly: listed and marked complete, they search to nothing. Publishing notices (it checks
    the store answers with every chunk) and republishes; the RAG client refuses the empty
    retrieval instead of answering without context."""
    from benchmarks.faults.publish_faults import Bench, Corpus
    from benchmarks.faults.publish_faults import publish as publish_cli
    from workloads.ingest.errors import IngestError
    from workloads.ingest.evaluate import SAMPLE_CORPUS
    from workloads.ingest.publish import serves
    from workloads.rag.answer import ask

    bench = Bench(tmp_path / "bench", Path(PYTHON))
    bench.start()
    try:
        corpus = Corpus("full", SAMPLE_CORPUS, tmp_path / "ledger.db")
        assert publish_cli(corpus, bench.url)[0] == 0
        assert bench.server is not None
        bench.server.stop()  # a clean restart
        bench.start_stack()
        stack = LlamaStack(bench.url)
        store = MilvusStore(str(corpus.ledger), "leanrag_docs", 384, create=False)
        try:
            rows = ledger_rows(store)
            (forgotten,) = stack.stores_named("leanrag_docs")
            assert (forgotten.get("metadata") or {}).get("leanrag_complete") == "true"
            assert not serves(stack, forgotten["id"], rows)
            with pytest.raises(IngestError, match="returned no chunks"):
                ask(stack, "unused", "What does the Heron gateway do?")
            again = publish(store, stack, f"embeddings/{EMBEDDING}")
            assert again.published and again.vector_store_id != forgotten["id"]
            (current,) = stack.stores_named("leanrag_docs")
            assert current["id"] == again.vector_store_id
            assert serves(stack, current["id"], rows)
        finally:
            store.close()
            stack.close()
    finally:
        bench.stop()
