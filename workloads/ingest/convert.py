"""Documents → Docling documents → chunks with heading and page metadata (and token overlap)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workloads.ingest.errors import DocumentRejected, IngestError

# File suffixes Docling reads here, by input format.
SUFFIXES = {
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".docx": "docx",
    ".pptx": "pptx",
    ".pdf": "pdf",
}
# What a file of each binary format starts with (DOCX and PPTX are ZIP containers).
MAGIC = {"pdf": b"%PDF-", "docx": b"PK\x03\x04", "pptx": b"PK\x03\x04"}
# Larger documents are rejected, not converted: one huge file must not stall or exhaust the Job.
MAX_DOCUMENT_MB = 25.0
PDF_MODELS_FIX = (
    "PDF conversion needs Docling's layout models. On a machine with internet run "
    "`docling-tools models download -o DIR`, copy DIR next to the documents (a PVC or image "
    "layer in a cluster) and pass --artifacts-path DIR (or set DOCLING_ARTIFACTS_PATH)"
)


@dataclass(frozen=True)
class SourceDocument:
    """One input file: its identity in the store (path relative to the source root) and hash."""

    path: Path
    source: str
    digest: str


@dataclass(frozen=True)
class Chunk:
    """One retrievable piece of a document."""

    source: str
    index: int
    text: str  # what the store returns (with the overlap from the previous chunk)
    headings: tuple[str, ...]
    page: int  # first page the chunk comes from; 0 for formats without pages
    embed_text: str  # what is embedded: headings give the chunk its context

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass(frozen=True)
class ConvertedDocument:
    document: SourceDocument
    pages: int
    chunks: tuple[Chunk, ...]


def discover(root: Path) -> list[SourceDocument]:
    """Every supported file under `root` (or `root` itself), in a stable order."""
    if not root.exists():
        raise IngestError(f"--source {root}: no such file or directory; point it at the documents")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    documents = []
    for path in files:
        if path.suffix.lower() not in SUFFIXES:
            continue
        source = path.name if root.is_file() else path.relative_to(root).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        documents.append(SourceDocument(path=path, source=source, digest=digest))
    if not documents:
        raise IngestError(
            f"--source {root}: no documents found; supported: {', '.join(sorted(SUFFIXES))}"
        )
    return documents


class Converter:
    """Docling conversion and hybrid chunking with the embedding model's tokenizer."""

    def __init__(
        self,
        tokenizer: Any,
        max_tokens: int,
        overlap: int,
        artifacts_path: Path | None = None,
        max_document_mb: float = MAX_DOCUMENT_MB,
    ) -> None:
        if max_tokens < 16:
            raise IngestError(f"--max-tokens {max_tokens}: use at least 16 tokens per chunk")
        if not 0 <= overlap < max_tokens // 2:
            raise IngestError(
                f"--overlap {overlap}: use 0 up to half of --max-tokens ({max_tokens // 2 - 1})"
            )
        if artifacts_path is not None and not artifacts_path.is_dir():
            raise IngestError(
                f"--artifacts-path {artifacts_path}: not a directory. {PDF_MODELS_FIX}"
            )
        from docling.chunking import HybridChunker
        from docling_core.transforms.chunker.tokenizer.huggingface import HuggingFaceTokenizer

        self._tokenizer = tokenizer
        self._overlap = overlap
        self._max_bytes = max_document_mb * 1024 * 1024
        self._artifacts_path = artifacts_path
        self._chunker = HybridChunker(
            tokenizer=HuggingFaceTokenizer(tokenizer=tokenizer, max_tokens=max_tokens - overlap),
            merge_peers=True,
        )
        self._converter = self._docling_converter()

    def _docling_converter(self) -> Any:
        from docling.datamodel.base_models import InputFormat
        from docling.datamodel.pipeline_options import PdfPipelineOptions
        from docling.document_converter import DocumentConverter, PdfFormatOption

        pdf = PdfPipelineOptions(
            artifacts_path=self._artifacts_path, do_ocr=False, enable_remote_services=False
        )
        return DocumentConverter(
            allowed_formats=[
                InputFormat.MD,
                InputFormat.HTML,
                InputFormat.DOCX,
                InputFormat.PPTX,
                InputFormat.PDF,
            ],
            format_options={InputFormat.PDF: PdfFormatOption(pipeline_options=pdf)},
        )

    def check_pdf_models(self) -> None:
        """Load the PDF pipeline's models now, so a missing model fails before any write."""
        from docling.datamodel.base_models import InputFormat

        try:
            self._converter.initialize_pipeline(InputFormat.PDF)
        except Exception as error:  # huggingface_hub / OSError variants across versions
            raise IngestError(f"{PDF_MODELS_FIX} (Docling said: {error})") from None

    def check(self, document: SourceDocument) -> None:
        """Reject what must not reach Docling: empty, too big, not the format its name says."""
        size = document.path.stat().st_size
        if size == 0:
            raise DocumentRejected("empty file")
        if size > self._max_bytes:
            raise DocumentRejected(
                f"{size / 1048576:.1f} MB, over the {self._max_bytes / 1048576:g} MB limit "
                "(--max-document-mb)"
            )
        kind = SUFFIXES[document.path.suffix.lower()]
        if kind in MAGIC:
            with document.path.open("rb") as handle:
                head = handle.read(len(MAGIC[kind]))
            if head != MAGIC[kind]:
                raise DocumentRejected(f"not a {kind.upper()} file (its content is not {kind})")

    def convert(self, document: SourceDocument) -> ConvertedDocument:
        """Chunks of one document; DocumentRejected names why it has none."""
        self.check(document)
        try:
            result = self._converter.convert(document.path, raises_on_error=True)
        except Exception as error:
            if document.path.suffix.lower() == ".pdf" and _missing_models(error):
                raise IngestError(f"{document.source}: {PDF_MODELS_FIX} ({error})") from None
            reason = str(error).splitlines()[0][:300]
            raise DocumentRejected(f"damaged or unreadable: {reason}") from None
        docling_document = result.document
        chunks = tuple(self._chunks(document.source, docling_document))
        if not chunks:
            raise DocumentRejected("no text found in it")
        pages = max(1, len(getattr(docling_document, "pages", {}) or {}))
        return ConvertedDocument(document=document, pages=pages, chunks=chunks)

    def _chunks(self, source: str, docling_document: Any) -> Iterator[Chunk]:
        previous = ""
        index = 0
        for piece in self._chunker.chunk(dl_doc=docling_document):
            body = piece.text.strip()
            if not body:
                continue
            headings = tuple(piece.meta.headings or ())
            text = f"{self._tail(previous)} {body}".strip() if previous else body
            context = "\n".join(headings)
            yield Chunk(
                source=source,
                index=index,
                text=text,
                headings=headings,
                page=_first_page(piece),
                embed_text=f"{context}\n{text}" if context else text,
            )
            previous = body
            index += 1

    def _tail(self, text: str) -> str:
        """The last `overlap` tokens of `text`, cut at a token boundary of the original text."""
        if not self._overlap:
            return ""
        encoded = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        if len(offsets) <= self._overlap:
            return text
        return text[offsets[-self._overlap][0] :]


def _missing_models(error: Exception) -> bool:
    """Docling could not load its PDF models (a setup problem for the whole run)."""
    text = f"{type(error).__name__} {error}".lower()
    return any(word in text for word in ("artifacts", "model", "huggingface", "snapshot"))


def _first_page(piece: Any) -> int:
    pages = [
        prov.page_no
        for item in piece.meta.doc_items
        for prov in (getattr(item, "prov", None) or [])
    ]
    return min(pages) if pages else 0
