"""Milvus (Lite: a file path; server: http(s)://host:19530) — the same code for both.

One row per chunk. The primary key is derived from the chunk's content (source + text +
occurrence), so re-ingesting upserts instead of duplicating. Each row also records the hash of
the whole document it came from and that document's chunk count: a document is complete when
that many rows carry its hash, which is how an interrupted run resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workloads.ingest.convert import Chunk
from workloads.ingest.errors import IngestError

INDEX_TYPES = ("AUTOINDEX", "FLAT", "IVF_FLAT", "HNSW")
METRICS = ("COSINE", "IP", "L2")
_TEXT_LIMIT = 65_535


@dataclass(frozen=True)
class Hit:
    source: str
    text: str
    headings: str
    page: int
    score: float


def chunk_ids(chunks: Sequence[Chunk]) -> list[str]:
    """Stable ids: the same text in the same document keeps its id across runs and edits."""
    seen: dict[str, int] = {}
    ids = []
    for chunk in chunks:
        occurrence = seen.get(chunk.content_hash, 0)
        seen[chunk.content_hash] = occurrence + 1
        key = f"{chunk.source}\0{chunk.content_hash}\0{occurrence}"
        ids.append(hashlib.sha256(key.encode()).hexdigest())
    return ids


def _literal(value: str) -> str:
    return json.dumps(value)  # a double-quoted, escaped Milvus string literal


class MilvusStore:
    def __init__(
        self,
        uri: str,
        collection: str,
        dimension: int,
        index_type: str = "AUTOINDEX",
        metric: str = "COSINE",
        token: str | None = None,
        create: bool = True,
    ) -> None:
        if index_type not in INDEX_TYPES:
            raise IngestError(f"--index-type {index_type}: use one of {', '.join(INDEX_TYPES)}")
        if metric not in METRICS:
            raise IngestError(f"--metric {metric}: use one of {', '.join(METRICS)}")
        from pymilvus import MilvusClient

        if "://" not in uri:  # Milvus Lite: a local file; its folder is created on first use
            Path(uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client = MilvusClient(uri=uri, token=token or "")
        except Exception as error:
            raise IngestError(
                f"--milvus-uri {uri}: cannot connect ({error}); use a file path ending in .db "
                "for Milvus Lite or http://host:19530 for a Milvus server"
            ) from None
        self.collection = collection
        self.metric = metric
        if create:
            self._ensure(dimension, index_type)
        elif not self.client.has_collection(collection):
            raise IngestError(f"--collection {collection}: not found at {uri}; ingest first")
        else:
            # A reader in a new process finds the collection released (pymilvus 3 / Milvus
            # Lite 3): searching it needs it loaded first.
            self.client.load_collection(collection)

    def _ensure(self, dimension: int, index_type: str) -> None:
        from pymilvus import DataType, MilvusClient

        client = self.client
        if client.has_collection(self.collection):
            fields = client.describe_collection(self.collection)["fields"]
            vector = next(f for f in fields if f["name"] == "vector")
            existing = int(vector["params"]["dim"])
            if existing != dimension:
                raise IngestError(
                    f"--collection {self.collection}: holds {existing}-dimensional vectors but "
                    f"the embedding model makes {dimension}; use the same model or a new "
                    "collection"
                )
            client.load_collection(self.collection)
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_field("text", DataType.VARCHAR, max_length=_TEXT_LIMIT)
        schema.add_field("source", DataType.VARCHAR, max_length=1024)
        schema.add_field("headings", DataType.VARCHAR, max_length=4096)
        schema.add_field("page", DataType.INT64)
        schema.add_field("chunk_index", DataType.INT64)
        schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
        schema.add_field("document_hash", DataType.VARCHAR, max_length=64)
        schema.add_field("document_chunks", DataType.INT64)
        index = client.prepare_index_params()
        params = {"HNSW": {"M": 16, "efConstruction": 200}, "IVF_FLAT": {"nlist": 128}}
        index.add_index(
            "vector", index_type=index_type, metric_type=self.metric,
            params=params.get(index_type, {}),
        )  # fmt: skip
        client.create_collection(self.collection, schema=schema, index_params=index)

    def complete(self, document_hash: str) -> bool:
        """True when every chunk of this document version is stored (its rows say how many)."""
        expression = f"document_hash == {_literal(document_hash)}"
        rows = self.client.query(
            self.collection, filter=expression, output_fields=["document_chunks"], limit=1
        )
        return bool(rows) and self.count(expression) == rows[0]["document_chunks"]

    def count(self, expression: str = "") -> int:
        rows = self.client.query(self.collection, filter=expression, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def upsert(
        self,
        chunks: Sequence[Chunk],
        ids: Sequence[str],
        vectors: Sequence[Sequence[float]],
        document_hash: str,
        document_chunks: int,
    ) -> None:
        rows: list[dict[str, Any]] = [
            {
                "id": chunk_id,
                "vector": list(vector),
                "text": chunk.text[:_TEXT_LIMIT],
                "source": chunk.source,
                "headings": " > ".join(chunk.headings)[:4096],
                "page": chunk.page,
                "chunk_index": chunk.index,
                "content_hash": chunk.content_hash,
                "document_hash": document_hash,
                "document_chunks": document_chunks,
            }
            for chunk, chunk_id, vector in zip(chunks, ids, vectors, strict=True)
        ]
        if rows:
            self.client.upsert(self.collection, rows)

    def prune(self, source: str, document_hash: str) -> None:
        """Drop rows of earlier versions of `source` (kept until the new version is complete)."""
        self.client.delete(
            self.collection,
            filter=f"source == {_literal(source)} and document_hash != {_literal(document_hash)}",
        )

    def delete_sources_except(self, sources: Sequence[str]) -> None:
        listed = ", ".join(_literal(s) for s in sources)
        self.client.delete(self.collection, filter=f"source not in [{listed}]")

    def search(self, vector: Sequence[float], limit: int = 5) -> list[Hit]:
        results = self.client.search(
            self.collection,
            data=[list(vector)],
            limit=limit,
            anns_field="vector",
            search_params={"metric_type": self.metric},
            output_fields=["source", "text", "headings", "page"],
        )
        return [
            Hit(
                source=hit["entity"]["source"],
                text=hit["entity"]["text"],
                headings=hit["entity"]["headings"],
                page=int(hit["entity"]["page"]),
                score=float(hit["distance"]),
            )
            for hit in results[0]
        ]

    def close(self) -> None:
        from pymilvus.exceptions import MilvusException

        # A server that already went away cannot be closed politely; the error that stopped
        # the run is the one to report.
        with contextlib.suppress(MilvusException):
            self.client.close()
