"""The ingestion run: discover → (per document) convert, chunk, embed, upsert, prune → summary.

A document is written only after it is fully converted and chunked; its rows carry the hash
of its version (file bytes, chunk settings, embedding model) and its chunk count, so a re-run
skips complete documents without converting them and redoes (upserting, never duplicating)
one that was interrupted or whose file or settings changed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workloads.ingest.convert import MAX_DOCUMENT_MB, Converter, discover
from workloads.ingest.embed import Embedder
from workloads.ingest.errors import DocumentRejected, IngestError
from workloads.ingest.store import MilvusStore, chunk_ids


@dataclass(frozen=True)
class IngestSettings:
    source: Path
    milvus_uri: str
    collection: str = "leanrag_docs"
    max_tokens: int = 256
    overlap: int = 32
    index_type: str = "AUTOINDEX"
    metric: str = "COSINE"
    artifacts_path: Path | None = None
    batch_size: int = 64
    delete_missing: bool = False
    milvus_token: str | None = None
    max_document_mb: float = MAX_DOCUMENT_MB


@dataclass
class IngestSummary:
    files: int = 0
    skipped: int = 0  # already complete from an earlier run
    pages: int = 0  # pages converted this run (paginated formats; one per other document)
    chunks: int = 0  # chunks written this run
    stored_chunks: int = 0  # rows in the collection afterwards
    seconds: float = 0.0
    collection: str = ""
    embedding_model: str = ""
    sources: list[str] = field(default_factory=list)
    # Documents not ingested this run, each with why ({"source": ..., "reason": ...}); what
    # an earlier run stored from them is kept.
    rejected: list[dict[str, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.rejected

    @property
    def chunks_per_second(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "chunks_per_second": round(self.chunks_per_second, 2)}


# Called after each document: (documents done, documents total, source).
Progress = Callable[[int, int, str], None]


def _is_pdf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"%PDF-"


def ingest(
    settings: IngestSettings, embedder: Embedder, progress: Progress | None = None
) -> IngestSummary:
    started = time.perf_counter()
    documents = discover(settings.source)
    max_tokens = min(settings.max_tokens, getattr(embedder, "max_tokens", settings.max_tokens))
    converter = Converter(
        embedder.tokenizer,
        max_tokens,
        settings.overlap,
        settings.artifacts_path,
        settings.max_document_mb,
    )
    if any(d.path.suffix.lower() == ".pdf" and _is_pdf(d.path) for d in documents):
        converter.check_pdf_models()  # before anything is written
    store = MilvusStore(
        settings.milvus_uri,
        settings.collection,
        embedder.dimension,
        settings.index_type,
        settings.metric,
        settings.milvus_token,
    )
    summary = IngestSummary(collection=settings.collection, embedding_model=embedder.name)
    from pymilvus.exceptions import MilvusException

    finished = 0  # documents done (stored, skipped or rejected), for a mid-run failure
    try:
        for number, document in enumerate(documents, start=1):
            summary.files += 1
            summary.sources.append(document.source)
            # The version a row belongs to: the file and what turned it into vectors.
            version = hashlib.sha256(
                f"{document.digest}/{max_tokens}/{settings.overlap}/{embedder.name}".encode()
            ).hexdigest()
            if store.complete(version):
                summary.skipped += 1  # nothing to convert: all its chunks are stored
            else:
                try:
                    converted = converter.convert(document)
                except DocumentRejected as rejected:
                    summary.rejected.append({"source": document.source, "reason": str(rejected)})
                    if progress:
                        progress(number, len(documents), document.source)
                    finished = number
                    continue  # nothing written for it; an earlier version's rows stay
                chunks = converted.chunks
                summary.pages += converted.pages
                ids = chunk_ids(chunks)
                for start in range(0, len(chunks), settings.batch_size):
                    batch = chunks[start : start + settings.batch_size]
                    vectors = embedder.embed([c.embed_text for c in batch])
                    store.upsert(
                        batch, ids[start : start + len(batch)], vectors, version, len(chunks)
                    )
                    summary.chunks += len(batch)
            store.prune(document.source, version)
            finished = number
            if progress:
                progress(number, len(documents), document.source)
        if settings.delete_missing:
            store.delete_sources_except(summary.sources)
        summary.stored_chunks = store.count()
    except MilvusException as error:
        raise IngestError(
            f"Milvus at {settings.milvus_uri} failed during ingestion after {finished} of "
            f"{len(documents)} documents ({error}): what it stored is kept; check that Milvus "
            "is up and has space, then re-run — finished documents are skipped"
        ) from None
    finally:
        store.close()
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary
