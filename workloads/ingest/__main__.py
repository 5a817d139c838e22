"""CLI: `leanrag-ingest --source DIR --milvus-uri URI` (or python -m workloads.ingest).

Converts Markdown, HTML, DOCX, PPTX and PDF with Docling, chunks with the embedding model's
tokenizer, embeds, and upserts into Milvus: a file path (Milvus Lite) or http(s)://host:19530.
Exit codes: 0 every document ingested, 3 partial (the skipped documents are listed with why),
2 bad input or missing prerequisite (the message names the fix).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from workloads.ingest.convert import MAX_DOCUMENT_MB
from workloads.ingest.errors import IngestError
from workloads.ingest.pipeline import IngestSettings, ingest
from workloads.ingest.publish import PublishResult
from workloads.ingest.store import INDEX_TYPES, METRICS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leanrag-ingest", description=__doc__)
    parser.add_argument("--source", type=Path, required=True, help="document folder or file")
    parser.add_argument("--milvus-uri", required=True, help="./file.db or http://host:19530")
    parser.add_argument("--collection", default="leanrag_docs")
    parser.add_argument("--max-tokens", type=int, default=256, help="chunk size in tokens")
    parser.add_argument(
        "--overlap", type=int, default=32, help="tokens carried from the last chunk"
    )
    parser.add_argument("--index-type", default="AUTOINDEX", choices=INDEX_TYPES)
    parser.add_argument("--metric", default="COSINE", choices=METRICS)
    parser.add_argument(
        "--artifacts-path",
        type=Path,
        default=os.environ.get("DOCLING_ARTIFACTS_PATH") or None,
        help="pre-downloaded Docling models (PDFs on air-gapped clusters)",
    )
    parser.add_argument(
        "--embedding-model",
        type=Path,
        help="local sentence-transformers folder (default: the packaged all-MiniLM-L6-v2)",
    )
    parser.add_argument("--embedding-url", help="OpenAI-compatible base URL ending in /v1")
    parser.add_argument("--embedding-model-name", help="model name at --embedding-url")
    parser.add_argument(
        "--llama-stack-url", help="also publish the collection to this Llama Stack server"
    )
    parser.add_argument(
        "--llama-stack-embedding-model",
        help="Llama Stack's id of the same embedding model (default: embeddings/<name>)",
    )
    parser.add_argument(
        "--llama-stack-token-file",
        type=Path,
        help="bearer token file (in a cluster: the projected service-account token)",
    )
    parser.add_argument("--delete-missing", action="store_true", help="drop removed documents")
    parser.add_argument("--summary-json", type=Path, help="also write the summary here")
    parser.add_argument(
        "--max-document-mb",
        type=float,
        default=MAX_DOCUMENT_MB,
        help="skip (and list) documents larger than this",
    )
    parser.add_argument("--no-progress", action="store_true")
    return parser


def make_embedder(args: argparse.Namespace):  # noqa: ANN201 - returns an Embedder
    from workloads.ingest.embed import (
        EndpointEmbedder,
        LocalEmbedder,
        default_embedder,
        default_model_path,
    )

    if args.embedding_url:
        if not args.embedding_model_name:
            raise IngestError("--embedding-url needs --embedding-model-name (the served name)")
        return EndpointEmbedder(
            args.embedding_url,
            args.embedding_model_name,
            tokenizer_path=args.embedding_model or default_model_path(),
            api_key=os.environ.get("EMBEDDING_API_KEY"),
        )
    return LocalEmbedder(args.embedding_model) if args.embedding_model else default_embedder()


def _publish(
    args: argparse.Namespace, settings: IngestSettings, embedding_name: str
) -> PublishResult:
    from workloads.ingest.publish import LlamaStack, publish
    from workloads.ingest.store import MilvusStore

    token = os.environ.get("LLAMA_STACK_TOKEN")
    if args.llama_stack_token_file:
        token = args.llama_stack_token_file.read_text().strip()
    store = MilvusStore(
        settings.milvus_uri, settings.collection, 0, metric=settings.metric,
        token=settings.milvus_token, create=False,
    )  # fmt: skip
    stack = LlamaStack(args.llama_stack_url, token)
    try:
        model = args.llama_stack_embedding_model or f"embeddings/{embedding_name}"
        return publish(store, stack, model)
    finally:
        stack.close()
        store.close()


EXIT_PARTIAL = 3


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = IngestSettings(
        source=args.source,
        milvus_uri=args.milvus_uri,
        collection=args.collection,
        max_tokens=args.max_tokens,
        overlap=args.overlap,
        index_type=args.index_type,
        metric=args.metric,
        artifacts_path=Path(args.artifacts_path) if args.artifacts_path else None,
        delete_missing=args.delete_missing,
        milvus_token=os.environ.get("MILVUS_TOKEN"),
        max_document_mb=args.max_document_mb,
    )
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    try:
        embedder = make_embedder(args)
        columns = (TextColumn("ingest"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TextColumn("{task.description}"), disable=args.no_progress) as bar:
            task = bar.add_task("", total=None)

            def advance(done: int, total: int, source: str) -> None:
                bar.update(task, completed=done, total=total, description=source)

            summary = ingest(settings, embedder, advance)
        published = _publish(args, settings, embedder.name) if args.llama_stack_url else None
    except IngestError as error:
        print(f"leanrag-ingest: {error}", file=sys.stderr)
        return 2
    if published:
        state = "published" if published.published else "already up to date"
        print(f"Llama Stack vector store {published.vector_store_id}: {state}")
    print(
        f"{summary.files} files ({summary.skipped} already complete), {summary.pages} pages, "
        f"{summary.chunks} chunks written in {summary.seconds} s "
        f"({summary.chunks_per_second:.1f} chunks/s); "
        f"{summary.stored_chunks} chunks in {summary.collection}"
    )
    for rejected in summary.rejected:
        print(f"skipped {rejected['source']}: {rejected['reason']}", file=sys.stderr)
    if args.summary_json:
        args.summary_json.parent.mkdir(parents=True, exist_ok=True)
        args.summary_json.write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
    # 0: every document ingested; 3: partial (the skipped ones are listed, with why).
    return 0 if summary.complete else EXIT_PARTIAL


if __name__ == "__main__":
    sys.exit(main())
