"""Publishing to Llama Stack interrupted at random points: never half-published, then resumed.

Two faults, each at a random point of the publish itself — from the moment the new vector
store appears to the end of an uninterrupted publish (ingestion's own checks come first and
are not what is tested here):

- `publisher`: the publishing process (`leanrag-ingest ... --llama-stack-url`) is SIGKILLed;
- `llama-stack`: the Llama Stack server is SIGKILLed under it, then restarted on its state.

After each fault, every vector store of the corpus's name that is marked complete must hold
exactly the chunks of the ledger it was published from (readers only pick a complete one:
`workloads/rag/answer.py`), and the next publish must leave exactly one store of that name,
complete, holding the ledger's chunks. Trials alternate between two versions of the corpus
(the sample corpus and the same less one document), so every publish replaces a complete
store that readers are using.

    .venv-workloads/bin/python -m benchmarks.faults.publish_faults [--trials 10] [--seed 1]

Writes benchmarks/results/faults_publish.{json,md}. Needs the Llama Stack environment
(LEANRAG_LLAMA_STACK_PYTHON, default .venv-llamastack/bin/python).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.local import processes
from infra.local.llama_stack import command, local_run_config, prepare_tiktoken_cache
from workloads.ingest.errors import IngestError
from workloads.ingest.evaluate import SAMPLE_CORPUS
from workloads.ingest.publish import COMPLETE, FINGERPRINT, LlamaStack

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
EMBEDDING = "all-MiniLM-L6-v2"
COLLECTION = "leanrag_docs"
DROPPED = "products/heron-gateway.html"  # left out of the second corpus version


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Corpus:
    """One version of the corpus: its folder, ledger, and what a publish of it must hold."""

    name: str
    source: Path
    ledger: Path
    chunks: int = 0
    fingerprint: str = ""


@dataclass
class Bench:
    """An embedding server and a Llama Stack on Milvus Lite, restartable on the same state."""

    work: Path
    python: Path
    embed_port: int = field(default_factory=_free_port)
    stack_port: int = field(default_factory=_free_port)
    embedder: processes.Server | None = None
    server: processes.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.stack_port}"

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.embedder = processes.start(
            "embeddings",
            [sys.executable, "-m", "workloads.ingest.embed_server", "--port",
             str(self.embed_port)],
            self.work / "embeddings.log",
        )  # fmt: skip
        config = self.work / "run.yaml"
        config.write_text(
            local_run_config(
                inference_url=f"http://127.0.0.1:{_free_port()}/v1",  # no chat model needed
                model="unused",
                max_tokens=64,
                embedding_url=f"http://127.0.0.1:{self.embed_port}/v1",
                embedding_model=EMBEDDING,
                embedding_dimension=384,
                milvus_db=self.work / "llama-stack-milvus.db",
                state_dir=self.work / "state",
                port=self.stack_port,
            )
        )
        self.cache = prepare_tiktoken_cache(self.python, self.work / "tiktoken")
        self.embedder.wait_until_ready(f"http://127.0.0.1:{self.embed_port}/health", 120)
        self.start_stack()

    def start_stack(self) -> None:
        self.server = processes.start(
            "llama-stack",
            command(self.python, self.work / "run.yaml", self.stack_port),
            self.work / "llama-stack.log",
            env={"TIKTOKEN_CACHE_DIR": str(self.cache)},
        )
        self.server.wait_until_ready(f"{self.url}/v1/health", 240)

    def kill_stack(self) -> None:
        assert self.server is not None
        os.killpg(self.server.pid, signal.SIGKILL)
        self.server.process.wait()

    def stop(self) -> None:
        for running in (self.server, self.embedder):
            if running:
                running.stop()


def publisher(corpus: Corpus, url: str) -> list[str]:
    return [
        sys.executable, "-m", "workloads.ingest", "--source", str(corpus.source),
        "--milvus-uri", str(corpus.ledger), "--collection", COLLECTION, "--no-progress",
        "--delete-missing", "--llama-stack-url", url,
        "--llama-stack-embedding-model", f"embeddings/{EMBEDDING}",
    ]  # fmt: skip


def publish(corpus: Corpus, url: str) -> tuple[int, float, str]:
    """Run the publisher to the end: (exit code, seconds, its last error line)."""
    started = time.monotonic()
    done = subprocess.run(publisher(corpus, url), capture_output=True, text=True, cwd=ROOT)
    errors = [line for line in done.stderr.splitlines() if "leanrag-ingest:" in line]
    return done.returncode, time.monotonic() - started, (errors or [""])[-1][:400]


def stores(url: str) -> list[dict[str, Any]]:
    """Every store of the corpus's name: id, complete mark, fingerprint, the chunks a query
    returns (None when the store is listed but cannot be queried)."""
    stack = LlamaStack(url)
    try:
        found = []
        for store in stack.stores_named(COLLECTION):
            metadata = store.get("metadata") or {}
            try:
                chunks: int | None = len(
                    stack.call(
                        "POST",
                        "/v1/vector-io/query",
                        json={"vector_store_id": store["id"], "query": "gateway",
                              "params": {"max_chunks": 10_000, "score_threshold": -1e9}},
                    )["chunks"]
                )  # fmt: skip
            except IngestError:
                chunks = None
            found.append({
                "id": store["id"], "complete": metadata.get(COMPLETE) == "true",
                "fingerprint": metadata.get(FINGERPRINT), "chunks": chunks,
            })  # fmt: skip
        return found
    finally:
        stack.close()


def half_published(found: list[dict[str, Any]], corpora: list[Corpus]) -> list[str]:
    """Stores a reader could pick (complete) that answer with other than exactly their ledger's
    chunks. (A complete store Llama Stack no longer serves at all is counted apart: `lost`.)"""
    by_fingerprint = {c.fingerprint: c for c in corpora}
    wrong = []
    for store in found:
        if not store["complete"] or store["chunks"] is None:
            continue
        corpus = by_fingerprint.get(store["fingerprint"])
        if corpus is None or store["chunks"] != corpus.chunks:
            expected = corpus.chunks if corpus else "an unknown ledger"
            wrong.append(f"{store['id']}: complete with {store['chunks']} chunks of {expected}")
    return wrong


def prepare(work: Path, bench: Bench) -> list[Corpus]:
    """Both corpus versions ingested into their own ledgers and published once each."""
    smaller = work / "corpus-less-one"
    shutil.copytree(SAMPLE_CORPUS, smaller)
    (smaller / DROPPED).unlink()
    corpora = [
        Corpus("full", SAMPLE_CORPUS, work / "ledger-full.db"),
        Corpus("less-one", smaller, work / "ledger-less-one.db"),
    ]
    for corpus in corpora:
        code, _, error = publish(corpus, bench.url)
        if code != 0:
            raise SystemExit(f"publishing {corpus.name} failed ({code}): {error}")
        (store,) = [s for s in stores(bench.url) if s["complete"]]
        corpus.chunks, corpus.fingerprint = store["chunks"], store["fingerprint"]
    return corpora


def _store_ids(url: str) -> set[str]:
    stack = LlamaStack(url, timeout=5)
    try:
        return {s["id"] for s in stack.stores_named(COLLECTION)}
    finally:
        stack.close()


def start_publishing(corpus: Corpus, url: str) -> tuple[subprocess.Popen[str], float]:
    """Start the publisher; return it once its new store exists (the publish has begun),
    with the time that took."""
    before = _store_ids(url)
    started = time.monotonic()
    process = subprocess.Popen(
        publisher(corpus, url), cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    while process.poll() is None and not (_store_ids(url) - before):
        time.sleep(0.05)
    return process, time.monotonic() - started


def trial(
    kind: str, number: int, corpus: Corpus, corpora: list[Corpus], bench: Bench, delay: float
) -> dict[str, Any]:
    process, _ = start_publishing(corpus, bench.url)
    time.sleep(delay)
    interrupted = process.poll() is None
    faulted = time.monotonic()
    if interrupted and kind == "publisher":
        os.killpg(process.pid, signal.SIGKILL)
    elif interrupted:
        bench.kill_stack()
    _, stderr = process.communicate(timeout=600)
    verdict_s = time.monotonic() - faulted
    message = ([ln for ln in stderr.splitlines() if "leanrag-ingest:" in ln] or [""])[-1]
    if kind == "llama-stack" and interrupted:
        bench.start_stack()  # on the same state: what an operator's restart does
    after_fault = stores(bench.url)
    resume_code, resume_s, resume_error = publish(corpus, bench.url)
    final = stores(bench.url)
    return {
        "kind": kind, "trial": number, "corpus": corpus.name, "fault_after_s": round(delay, 2),
        "interrupted": interrupted, "publisher_exit": process.returncode,
        "publisher_message": message[:400], "verdict_s": round(verdict_s, 2),
        "stores_after_fault": len(after_fault),
        "complete_after_fault": sum(s["complete"] for s in after_fault),
        "half_published": half_published(after_fault, corpora),
        # Complete but no longer served: Llama Stack 0.7.3 on Milvus Lite forgets its vector
        # stores on any restart (listed, search returns nothing, vector-io query 404s).
        "lost_after_restart": sum(1 for s in after_fault if s["complete"] and s["chunks"] is None),
        "resume_exit": resume_code, "resume_error": resume_error, "resume_s": round(resume_s, 1),
        "stores_after_resume": len(final),
        "resumed_exactly": [
            (s["complete"], s["fingerprint"], s["chunks"]) for s in final
        ] == [(True, corpus.fingerprint, corpus.chunks)],
    }  # fmt: skip


def run_trials(
    work: Path, python: Path, trials: int, seed: int, kinds: tuple[str, ...]
) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    bench = Bench(work, python)
    try:
        bench.start()
        corpora = prepare(work, bench)
        # How long one publish of a changed corpus takes once its store exists, uninterrupted:
        # the window the faults are drawn from.
        process, _ = start_publishing(corpora[0], bench.url)
        begun = time.monotonic()
        _, error = process.communicate(timeout=600)
        window = time.monotonic() - begun
        if process.returncode != 0:
            raise SystemExit(f"uninterrupted publish failed ({process.returncode}): {error}")
        rng = random.Random(seed)
        results = []
        for kind in kinds:
            for number in range(trials):
                corpus = corpora[(len(results) + 1) % 2]  # always a changed corpus
                delay = rng.uniform(0.0, window)
                results.append(trial(kind, number, corpus, corpora, bench, delay))
                print(json.dumps(results[-1]), flush=True)
    finally:
        bench.stop()
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
        "corpora": [{"name": c.name, "chunks": c.chunks} for c in corpora],
        "publish_window_s": round(window, 1),
        "trials": results,
        "summary": {
            kind: {
                "trials": len(mine),
                "interrupted": sum(t["interrupted"] for t in mine),
                "half_published": sum(len(t["half_published"]) for t in mine),
                "lost_after_restart": sum(t["lost_after_restart"] for t in mine),
                "resumed_exactly": sum(t["resumed_exactly"] for t in mine),
                "max_verdict_s": max(t["verdict_s"] for t in mine),
                "max_resume_s": max(t["resume_s"] for t in mine),
            }
            for kind in kinds
            if (mine := [t for t in results if t["kind"] == kind])
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="per fault kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "faults-publish")
    parser.add_argument(
        "--kinds", nargs="+", default=["publisher", "llama-stack"],
        choices=["publisher", "llama-stack"],
    )  # fmt: skip
    args = parser.parse_args(argv)
    python = Path(
        os.environ.get("LEANRAG_LLAMA_STACK_PYTHON", ROOT / ".venv-llamastack/bin/python")
    )
    result = run_trials(args.work, python, args.trials, args.seed, tuple(args.kinds))
    result["command"] = "python -m benchmarks.faults.publish_faults " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    (RESULTS / "faults_publish.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "".join(
        f"| {kind} | {s['trials']} | {s['interrupted']} | {s['half_published']} "
        f"| {s['lost_after_restart']} | {s['resumed_exactly']} | {s['max_verdict_s']} s "
        f"| {s['max_resume_s']} s |\n"
        for kind, s in result["summary"].items()
    )
    sizes = " and ".join(f"{c['chunks']} ({c['name']})" for c in result["corpora"])
    (RESULTS / "faults_publish.md").write_text(
        "# Publishing to Llama Stack interrupted at random points\n\n"
        f"Measured {result['measured_at']} on {result['machine']}: corpora of {sizes} "
        f"chunks, alternating; a publish takes {result['publish_window_s']} s uninterrupted from "
        "the moment its new store exists (the window the faults are drawn from).\n\n"
        "| SIGKILLed | trials | interrupted mid-publish | complete stores not holding their "
        "ledger | complete stores no longer served after the restart | re-run left exactly "
        "one complete store | fault → publisher's verdict | re-run |\n"
        "|---|---|---|---|---|---|---|---|\n"
        f"{rows}\n"
        "Llama Stack 0.7.3 with Milvus Lite forgets every vector store on a restart, clean or "
        "not: the store stays listed, its search returns nothing and `vector-io/query` answers "
        "404. Publishing therefore checks that a complete store answers with all its chunks "
        "before calling it up to date (the re-run republishes), and the RAG client refuses an "
        "empty retrieval instead of answering without context.\n\n"
        f"Per trial: `faults_publish.json`. Reproduce: `{result['command']}`.\n"
    )
    print(json.dumps(result["summary"]))
    broken = any(
        s["half_published"] or s["resumed_exactly"] != s["trials"]
        for s in result["summary"].values()
    )
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
