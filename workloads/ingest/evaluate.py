"""Retrieval quality on a question set: recall@k and MRR@k by source document.

A question is answered at rank r when the r-th retrieved chunk comes from the document the
question names. recall@k: share of questions answered within the top k; MRR@k: mean of 1/r
(0 beyond k).

    leanrag-rag-eval --milvus-uri out/rag.db [--questions FILE] [--output results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from workloads.ingest.embed import Embedder
from workloads.ingest.errors import IngestError
from workloads.ingest.store import MilvusStore

SAMPLE_CORPUS = Path(__file__).resolve().parent / "sample_corpus"
SAMPLE_QUESTIONS = SAMPLE_CORPUS / "questions.yaml"


@dataclass(frozen=True)
class Question:
    question: str
    source: str
    answer: str


@dataclass(frozen=True)
class Ranked:
    question: str
    source: str
    rank: int | None  # 1-based rank of the first chunk from `source`, None if not in top k
    retrieved: list[str]


@dataclass(frozen=True)
class RetrievalReport:
    k: int
    questions: int
    recall_at_k: float
    mrr_at_k: float
    results: list[Ranked]

    def as_dict(self) -> dict:
        return asdict(self)


def load_questions(path: Path) -> list[Question]:
    try:
        items = yaml.safe_load(path.read_text())
        return [Question(**item) for item in items]
    except (OSError, TypeError, yaml.YAMLError) as error:
        raise IngestError(
            f"--questions {path}: expected a YAML list of {{question, source, answer}} ({error})"
        ) from None


def rank_of(source: str, retrieved: list[str]) -> int | None:
    return next((i for i, s in enumerate(retrieved, start=1) if s == source), None)


def score(ranked: list[Ranked], k: int) -> RetrievalReport:
    if not ranked:
        raise IngestError("the question set is empty")
    found = [r.rank for r in ranked if r.rank is not None and r.rank <= k]
    return RetrievalReport(
        k=k,
        questions=len(ranked),
        recall_at_k=round(len(found) / len(ranked), 4),
        mrr_at_k=round(sum(1 / r for r in found) / len(ranked), 4),
        results=ranked,
    )


def evaluate(
    store: MilvusStore, embedder: Embedder, questions: list[Question], k: int = 5
) -> RetrievalReport:
    vectors = embedder.embed([q.question for q in questions])
    ranked = []
    for question, vector in zip(questions, vectors, strict=True):
        retrieved = [hit.source for hit in store.search(vector, limit=k)]
        ranked.append(
            Ranked(
                question.question, question.source, rank_of(question.source, retrieved), retrieved
            )
        )
    return score(ranked, k)


def markdown(report: RetrievalReport, context: dict) -> str:
    lines = [
        "# Retrieval quality on the sample corpus",
        "",
        f"- recall@{report.k}: **{report.recall_at_k:.3f}**, MRR@{report.k}: "
        f"**{report.mrr_at_k:.3f}** over {report.questions} questions",
        *(f"- {key}: {value}" for key, value in context.items()),
        "",
        "| question | expected document | rank |",
        "| --- | --- | --- |",
    ]
    for item in report.results:
        lines.append(f"| {item.question} | {item.source} | {item.rank or 'miss'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from workloads.ingest.embed import LocalEmbedder, default_embedder

    parser = argparse.ArgumentParser(prog="leanrag-rag-eval", description=__doc__)
    parser.add_argument("--milvus-uri", required=True)
    parser.add_argument("--collection", default="leanrag_docs")
    parser.add_argument("--questions", type=Path, default=SAMPLE_QUESTIONS)
    parser.add_argument("--embedding-model", type=Path)
    parser.add_argument("--metric", default="COSINE")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--output", type=Path, help="results JSON (Markdown written beside it)")
    parser.add_argument("--context", default="{}", help="JSON facts to record (e.g. settings)")
    args = parser.parse_args(argv)
    try:
        embedder = (
            LocalEmbedder(args.embedding_model) if args.embedding_model else default_embedder()
        )
        store = MilvusStore(
            args.milvus_uri, args.collection, embedder.dimension, metric=args.metric, create=False
        )
        started = time.perf_counter()
        report = evaluate(store, embedder, load_questions(args.questions), args.k)
        stored = store.count()
        store.close()
    except IngestError as error:
        print(f"leanrag-rag-eval: {error}", file=sys.stderr)
        return 2
    context = {
        "embedding model": embedder.name,
        "collection": f"{args.collection} ({stored} chunks)",
        "machine": f"{platform.machine()} CPU, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "seconds": round(time.perf_counter() - started, 2),
        **json.loads(args.context),
    }
    print(f"recall@{report.k} {report.recall_at_k:.3f}  MRR@{report.k} {report.mrr_at_k:.3f}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps({**report.as_dict(), "context": context}, indent=2) + "\n"
        )
        args.output.with_suffix(".md").write_text(markdown(report, context))
    return 0


if __name__ == "__main__":
    sys.exit(main())
