"""One RAG round trip through Llama Stack: retrieve from the corpus's vector store, answer
with the served model, return the answer with the chunks it was given (its citations).

    python -m workloads.rag.answer --llama-stack URL --model vllm/NAME --question "..."
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from workloads.ingest.errors import IngestError
from workloads.ingest.publish import COMPLETE, LlamaStack

SYSTEM = (
    "Answer the question using only the numbered context passages. Cite the passages you "
    "use as [1], [2], ... If the context does not answer it, say so."
)


@dataclass(frozen=True)
class Citation:
    number: int
    source: str
    text: str
    score: float


@dataclass(frozen=True)
class RagAnswer:
    question: str
    answer: str
    model: str
    vector_store_id: str
    citations: list[Citation]
    prompt: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def current_store(stack: LlamaStack, name: str) -> str:
    """The complete vector store of that name (publishing marks it complete)."""
    stores = [
        s for s in stack.stores_named(name) if (s.get("metadata") or {}).get(COMPLETE) == "true"
    ]
    if not stores:
        raise IngestError(f"no complete vector store named {name}: run the ingestion first")
    return max(stores, key=lambda s: s.get("created_at", 0))["id"]


def ask(
    stack: LlamaStack,
    model: str,
    question: str,
    store_name: str = "leanrag_docs",
    k: int = 4,
    max_tokens: int = 128,
) -> RagAnswer:
    store = current_store(stack, store_name)
    results = stack.call(
        "POST",
        f"/v1/vector_stores/{store}/search",
        json={"query": question, "max_num_results": k},
    )["data"]
    if not results:
        # Llama Stack 0.7.3 on Milvus Lite forgets its vector stores when it restarts: still
        # listed, they return nothing. An answer without context would look like one.
        raise IngestError(
            f"vector store {store} ({store_name}) returned no chunks: Llama Stack no longer "
            "serves it (it forgets Milvus Lite stores when restarted); re-run the ingestion, "
            "which republishes it"
        )
    citations = [
        Citation(
            number=i,
            source=(r.get("attributes") or {}).get("source", r.get("filename", "")),
            text=" ".join(part.get("text", "") for part in r["content"]),
            score=float(r.get("score", 0.0)),
        )
        for i, r in enumerate(results, start=1)
    ]
    context = "\n\n".join(f"[{c.number}] ({c.source}) {c.text}" for c in citations)
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"},
    ]
    completion = stack.call(
        "POST",
        "/v1/chat/completions",
        json={"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0},
    )
    answer = completion["choices"][0]["message"]["content"] or ""
    return RagAnswer(question, answer, model, store, citations, messages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.rag.answer", description=__doc__)
    parser.add_argument("--llama-stack", required=True, help="e.g. http://127.0.0.1:8321")
    parser.add_argument("--model", required=True, help="Llama Stack model id, e.g. vllm/NAME")
    parser.add_argument("--question", required=True)
    parser.add_argument("--vector-store-name", default="leanrag_docs")
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, help="write the answer JSON here")
    args = parser.parse_args(argv)
    stack = LlamaStack(args.llama_stack)
    try:
        result = ask(
            stack, args.model, args.question, args.vector_store_name, args.k, args.max_tokens
        )
    except IngestError as error:
        print(f"rag: {error}", file=sys.stderr)
        return 2
    finally:
        stack.close()
    print(f"Q: {result.question}\nA: {result.answer}")
    for c in result.citations:
        print(f"  [{c.number}] {c.source} ({c.score:.2f})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
