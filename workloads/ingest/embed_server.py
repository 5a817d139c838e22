"""A minimal OpenAI-compatible embeddings server for one local sentence-transformers model.

The local stack runs it so Llama Stack embeds questions with the exact model the ingestion
used (in a cluster, Llama Stack's inline sentence-transformers provider does this).

    python -m workloads.ingest.embed_server --port 8001 [--model DIR] [--name NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from workloads.ingest.embed import DEFAULT_MODEL_NAME, LocalEmbedder, default_embedder


def make_handler(embedder: LocalEmbedder) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()  # one encode at a time: the model is not re-entrant on CPU

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                model = {"id": embedder.name, "object": "model", "owned_by": "leanrag"}
                self._send(200, {"object": "list", "data": [model]})
            elif self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/embeddings", "/embeddings"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                texts = request["input"]
                texts = [texts] if isinstance(texts, str) else list(texts)
                if not all(isinstance(t, str) for t in texts):
                    raise ValueError("input must be a string or a list of strings")
            except (ValueError, KeyError, TypeError) as error:
                self._send(400, {"error": {"message": f"bad request: {error}"}})
                return
            with lock:
                vectors = embedder.embed(texts)
            tokens = sum(len(embedder.tokenizer(t)["input_ids"]) for t in texts)
            self._send(
                200,
                {
                    "object": "list",
                    "model": embedder.name,
                    "data": [
                        {"object": "embedding", "index": i, "embedding": v}
                        for i, v in enumerate(vectors)
                    ],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"embed-server: {format % args}\n")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leanrag-embed-server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--model", type=Path, help="sentence-transformers folder")
    parser.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model id it answers to")
    args = parser.parse_args(argv)
    embedder = LocalEmbedder(args.model, name=args.name) if args.model else default_embedder()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(embedder))
    print(f"embeddings for {embedder.name} on http://{args.host}:{args.port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
